#!/usr/bin/env python3
"""The README tour's pager: prints each notification keeper POSTs to it.

    python3 examples/receiver.py            # listens on 127.0.0.1:9999
"""
import http.server
import json


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        page = json.loads(body)
        for n in page if isinstance(page, list) else [page]:
            print(f"PAGE {n['state']:<12} {n['severity']:<8} {n['check']}: {n['message']}", flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", 9999), Receiver).serve_forever()
