//! Health checks of an app on 127.0.0.1: `tcp` (a connection is accepted) or `http` (a GET
//! answered with a 2xx status). A plain HTTP/1.0 request over a TCP stream: no HTTP client
//! library for one status line.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::manifest::HealthCheck;

/// Check `check` against `127.0.0.1:port` within `timeout`: `Ok` with a short description,
/// or why it failed.
pub async fn check(check: &HealthCheck, port: u16, timeout: Duration) -> Result<String, String> {
    match tokio::time::timeout(timeout, probe(check, port)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        )),
    }
}

async fn probe(check: &HealthCheck, port: u16) -> Result<String, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect to 127.0.0.1:{port}: {e}"))?;
    let path = match check {
        HealthCheck::Tcp => return Ok(format!("tcp {port} accepts")),
        HealthCheck::Http(path) => path,
    };
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send the request: {e}"))?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("read the answer: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or_default().trim().to_owned();
    match status_code(&line) {
        Some(code) if (200..300).contains(&code) => Ok(format!("GET {path}: {code}")),
        Some(code) => Err(format!("GET {path}: {code}")),
        None => Err(format!("GET {path}: not an HTTP answer: {line:?}")),
    }
}

/// The status code of an HTTP status line (`HTTP/1.1 200 OK` → 200), pure.
pub fn status_code(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_code("HTTP/1.0 200 OK"), Some(200));
        assert_eq!(status_code("HTTP/1.1 404 Not Found"), Some(404));
        assert_eq!(status_code("HTTP/2 204"), Some(204));
        assert_eq!(status_code("SSH-2.0-OpenSSH"), None);
        assert_eq!(status_code(""), None);
        assert_eq!(status_code("HTTP/1.1 abc"), None);
    }

    #[tokio::test]
    async fn http_and_tcp_against_a_real_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for answer in ["HTTP/1.0 200 OK\r\n\r\n", "HTTP/1.0 503 Busy\r\n\r\n", ""] {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 512];
                let _ = socket.read(&mut buf).await;
                socket.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        let timeout = Duration::from_secs(5);
        let http = HealthCheck::Http("/ready".into());
        assert_eq!(
            check(&http, port, timeout).await,
            Ok("GET /ready: 200".into())
        );
        assert_eq!(
            check(&http, port, timeout).await,
            Err("GET /ready: 503".into())
        );
        assert_eq!(
            check(&HealthCheck::Tcp, port, timeout).await,
            Ok(format!("tcp {port} accepts"))
        );
        server.await.unwrap();
        let closed = check(&HealthCheck::Tcp, port, timeout).await;
        assert!(
            closed.is_err_and(|e| e.contains("connect")),
            "nothing listens any more"
        );
    }
}
