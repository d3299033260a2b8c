//! A request as it goes on the wire: request line, headers and body in one
//! buffer, written with one call. The configured URL's request is encoded
//! once at build and shared by every run; a redirect's hop is encoded when
//! it is made.

use bytes::Bytes;
use http::Method;
use http::header::{CONTENT_LENGTH, HeaderMap};

/// `method target HTTP/1.1`, the headers in `headers`' order, a
/// `content-length` when there is a body (or the method expects one and none
/// was configured), the blank line and the body.
pub(super) fn encode(method: &Method, target: &str, headers: &HeaderMap, body: &[u8]) -> Bytes {
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let mut out = Vec::with_capacity(64 + target.len() + header_bytes + body.len());
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let expects_body = matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    if (!body.is_empty() || expects_body) && !headers.contains_key(CONTENT_LENGTH) {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HOST, HeaderValue, USER_AGENT};

    fn headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, HeaderValue::from_static("keeper/test"));
        headers.insert(HOST, HeaderValue::from_static("example.test:8080"));
        headers
    }

    #[test]
    fn a_get_is_its_line_and_headers_without_a_length() {
        let wire = encode(&Method::GET, "/health?x=1", &headers(), b"");
        assert_eq!(
            &wire[..],
            b"GET /health?x=1 HTTP/1.1\r\nuser-agent: keeper/test\r\n\
              host: example.test:8080\r\n\r\n"
        );
    }

    #[test]
    fn a_body_follows_its_length_and_an_empty_post_says_zero() {
        let wire = encode(&Method::POST, "/", &headers(), b"{\"a\":1}");
        assert!(
            wire.ends_with(b"content-length: 7\r\n\r\n{\"a\":1}"),
            "{wire:?}"
        );
        let empty = encode(&Method::PUT, "/", &HeaderMap::new(), b"");
        assert_eq!(&empty[..], b"PUT / HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
    }

    #[test]
    fn a_configured_length_is_not_sent_twice() {
        let mut headers = headers();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("2"));
        let wire = encode(&Method::POST, "/", &headers, b"hi");
        let text = String::from_utf8_lossy(&wire);
        assert_eq!(text.matches("content-length").count(), 1, "{text}");
    }
}
