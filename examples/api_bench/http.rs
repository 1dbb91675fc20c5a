//! Just enough HTTP for the benchmark, over `std::net::TcpStream` as the integration tests
//! do (no client library between the clock and the socket): HTTP/1.1 requests on a
//! keep-alive connection, answers read by `Content-Length` or chunked; and an event stream
//! (`GET /api/v1/events`, HTTP/1.0 so that the body is the stream itself) read event by
//! event.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// One answer: its status and body.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// An HTTP/1.1 connection to the daemon's API, kept open between requests.
pub struct Connection {
    reader: BufReader<TcpStream>,
    port: u16,
}

impl Connection {
    pub fn open(port: u16) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(("127.0.0.1", port)).context("connecting to the API")?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Connection {
            reader: BufReader::new(stream),
            port,
        })
    }

    /// `GET path`, with `Authorization: Bearer SECRET` if given; the whole answer read.
    pub fn get(&mut self, path: &str, secret: Option<&str>) -> anyhow::Result<Answer> {
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n", self.port);
        if let Some(secret) = secret {
            request += &format!("Authorization: Bearer {secret}\r\n");
        }
        request += "\r\n";
        self.reader.get_mut().write_all(request.as_bytes())?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("not an HTTP status line: {line:?}"))?;
        let (mut length, mut chunked) = (None, false);
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                bail!("the connection closed in the answer's head");
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            if name == "content-length" {
                length = Some(value.parse::<usize>()?);
            } else if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .with_context(|| format!("not a chunk size: {line:?}"))?;
                let start = body.len();
                body.resize(start + size, 0);
                self.reader.read_exact(&mut body[start..])?;
                line.clear();
                self.reader.read_line(&mut line)?; // the chunk's CRLF (or the trailer's end)
                if size == 0 {
                    break;
                }
            }
        } else {
            let length = length.context("an answer with neither length nor chunks")?;
            body.resize(length, 0);
            self.reader.read_exact(&mut body)?;
        }
        Ok(Answer { status, body })
    }
}

/// One event of an event stream, and when its last line arrived.
#[derive(Debug, Clone)]
pub struct Event {
    pub name: String,
    pub data: String,
    pub at: Instant,
}

/// An open `GET /api/v1/events`.
pub struct EventStream {
    reader: BufReader<TcpStream>,
}

impl EventStream {
    /// Open the stream with `secret`; an error unless it is answered 200.
    pub fn open(port: u16, secret: &str) -> anyhow::Result<EventStream> {
        let stream = TcpStream::connect(("127.0.0.1", port)).context("connecting to the API")?;
        stream.set_nodelay(true)?;
        let request = format!(
            "GET /api/v1/events HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer \
             {secret}\r\nAccept: text/event-stream\r\n\r\n"
        );
        (&stream).write_all(request.as_bytes())?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                break;
            }
        }
        if status != 200 {
            bail!("GET /api/v1/events answered {status}");
        }
        Ok(EventStream { reader })
    }

    /// A handle that shuts the stream's socket down (ending a blocked [`EventStream::next`]).
    pub fn closer(&self) -> anyhow::Result<TcpStream> {
        Ok(self.reader.get_ref().try_clone()?)
    }

    /// The next event (comments skipped); `None` when the stream ended.
    pub fn next(&mut self) -> Option<Event> {
        let (mut name, mut data, mut any) = ("message".to_string(), String::new(), false);
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if any {
                    return Some(Event {
                        name,
                        data,
                        at: Instant::now(),
                    });
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            any = true;
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => name = value.to_string(),
                "data" => data += value,
                _ => {}
            }
        }
    }
}
