//! The scheduler against a slow loopback server that counts connections open
//! at once: one check never overlaps itself, and `concurrency` caps all checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::app::spawn_app;
use crate::support::config::{Check, TestConfig};
use crate::support::db::Backend;
use crate::support::wait_until;

/// Answers every connection with `200 OK` after `hold`, recording the most
/// connections it ever had open at once.
struct SlowServer {
    addr: std::net::SocketAddr,
    served: Arc<AtomicUsize>,
    max_open: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl SlowServer {
    async fn start(hold: Duration) -> SlowServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let max_open = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (served, max_open) = (served.clone(), max_open.clone());
            async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    let now_open = open.fetch_add(1, Ordering::SeqCst) + 1;
                    max_open.fetch_max(now_open, Ordering::SeqCst);
                    let (open, served) = (open.clone(), served.clone());
                    tokio::spawn(async move {
                        let mut buf = [0u8; 4096];
                        let _ = socket.read(&mut buf).await;
                        tokio::time::sleep(hold).await;
                        let _ = socket
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n")
                            .await;
                        open.fetch_sub(1, Ordering::SeqCst);
                        served.fetch_add(1, Ordering::SeqCst);
                    });
                }
            }
        });
        SlowServer {
            addr,
            served,
            max_open,
            task,
        }
    }
}

impl Drop for SlowServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn http_check(name: &str, server: &SlowServer, interval: &str) -> Check {
    Check::http(name, format!("http://{}/", server.addr))
        .interval(interval)
        .timeout("5s")
}

#[tokio::test]
async fn a_check_never_runs_twice_at_once_and_skipped_runs_are_counted() {
    let server = SlowServer::start(Duration::from_millis(400)).await;
    let config = TestConfig::new().check(http_check("slow", &server, "50ms"));
    let app = spawn_app(Backend::Sqlite, config).await;
    wait_until(
        "three slow runs finished",
        Duration::from_secs(20),
        || async { server.served.load(Ordering::SeqCst) >= 3 },
    )
    .await;
    let metrics = app.get_text("/metrics").await;
    let skipped =
        crate::e2e::metric_value(&metrics, "keeper_probe_runs_skipped_total{check=\"slow\"}")
            .expect("skipped runs counter");
    assert!(
        skipped > 0.0,
        "runs due while one was going are skipped:\n{metrics}"
    );
    assert_eq!(
        server.max_open.load(Ordering::SeqCst),
        1,
        "never two runs of one check at once"
    );
    app.stop().await;
}

#[tokio::test]
async fn concurrency_limits_probes_across_checks() {
    let server = SlowServer::start(Duration::from_millis(200)).await;
    let mut config = TestConfig::new().defaults("concurrency", 1);
    for i in 0..4 {
        config = config.check(http_check(&format!("c{i}"), &server, "100ms"));
    }
    let app = spawn_app(Backend::Sqlite, config).await;
    wait_until("eight runs finished", Duration::from_secs(20), || async {
        server.served.load(Ordering::SeqCst) >= 8
    })
    .await;
    assert_eq!(
        server.max_open.load(Ordering::SeqCst),
        1,
        "concurrency = 1 runs one probe at a time"
    );
    app.stop().await;
}
