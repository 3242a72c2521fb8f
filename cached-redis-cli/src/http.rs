//! A plain `GET` of a metrics page over `http://`, on std's `TcpStream`.
//!
//! One request, no redirects, no TLS, no compression: a `/metrics`
//! endpoint is scraped over plain HTTP inside the network, and a client
//! library would be the CLI's largest dependency for that one request.
//! The request is HTTP/1.0, so the server answers with the body to the
//! end of the connection rather than in chunks (a chunked answer is
//! decoded anyway).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The largest page read: far beyond any metrics page.
const MAX_BODY: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url}: {reason}")]
    Url { url: String, reason: &'static str },
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{address}: {source}")]
    Io {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url} answered {status}")]
    Status { url: String, status: String },
    #[error("{url}: not an HTTP response")]
    Malformed { url: String },
}

impl HttpError {
    pub fn is_connection(&self) -> bool {
        matches!(self, HttpError::Connect { .. })
    }
}

/// The parts of an `http://host[:port][/path]` URL.
#[derive(Debug, PartialEq, Eq)]
struct Target<'a> {
    host: &'a str,
    port: u16,
    path: &'a str,
}

fn parse(url: &str) -> Result<Target<'_>, HttpError> {
    let bad = |reason| HttpError::Url {
        url: url.to_owned(),
        reason,
    };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err(bad("credentials in the URL are not supported"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (
            host,
            port.parse().map_err(|_| bad("the port is not a number"))?,
        ),
        _ => (authority, 80),
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok(Target { host, port, path })
}

/// The body of a `200` answer to `GET url`, each step bounded by `timeout`.
pub fn get(url: &str, timeout: Duration) -> Result<String, HttpError> {
    let target = parse(url)?;
    let address = format!("{}:{}", target.host, target.port);
    let connect_error = |source| HttpError::Connect {
        address: address.clone(),
        source,
    };
    let host = target.host.trim_start_matches('[').trim_end_matches(']');
    let candidates = (host, target.port)
        .to_socket_addrs()
        .map_err(connect_error)?;
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    let mut stream = None;
    for candidate in candidates {
        match TcpStream::connect_timeout(&candidate, timeout) {
            Ok(connected) => {
                stream = Some(connected);
                break;
            }
            Err(err) => last = err,
        }
    }
    let mut stream = stream.ok_or_else(|| connect_error(last))?;
    let io_error = |source| HttpError::Io {
        address: address.clone(),
        source,
    };
    stream.set_read_timeout(Some(timeout)).map_err(io_error)?;
    stream.set_write_timeout(Some(timeout)).map_err(io_error)?;
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nAccept: text/plain\r\nUser-Agent: cached-redis-cli/{}\r\nConnection: close\r\n\r\n",
        target.path,
        address,
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(request.as_bytes()).map_err(io_error)?;
    let mut answer = Vec::new();
    stream
        .take(MAX_BODY)
        .read_to_end(&mut answer)
        .map_err(io_error)?;
    body(url, &answer)
}

/// The body of a raw response, after checking its status.
fn body(url: &str, answer: &[u8]) -> Result<String, HttpError> {
    let malformed = || HttpError::Malformed {
        url: url.to_owned(),
    };
    let split = answer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(malformed)?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let rest = &answer[split + 4..];
    let mut lines = head.lines();
    let status_line = lines.next().ok_or_else(malformed)?;
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(malformed());
    };
    if !version.starts_with("HTTP/") {
        return Err(malformed());
    }
    if code != "200" {
        return Err(HttpError::Status {
            url: url.to_owned(),
            status: status_line.trim_start_matches(version).trim().to_owned(),
        });
    }
    let chunked = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let body = if chunked {
        dechunk(rest).ok_or_else(malformed)?
    } else {
        rest.to_vec()
    };
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Decodes a chunked body; `None` if it is cut short or malformed.
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&rest[..end]).ok()?;
        let size = size.split(';').next()?.trim();
        let size = usize::from_str_radix(size, 16).ok()?;
        rest = &rest[end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse("http://127.0.0.1:9090/metrics").unwrap(),
            Target {
                host: "127.0.0.1",
                port: 9090,
                path: "/metrics"
            }
        );
        assert_eq!(
            parse("http://svc").unwrap(),
            Target {
                host: "svc",
                port: 80,
                path: "/"
            }
        );
        assert_eq!(parse("http://[::1]:80/m").unwrap().host, "[::1]");
        assert!(parse("https://svc/metrics").is_err());
        assert!(parse("http://u:p@svc/metrics").is_err());
        assert!(parse("http://svc:port/").is_err());
    }

    #[test]
    fn responses() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\na 1\n";
        assert_eq!(body("u", ok).unwrap(), "a 1\n");
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\na 1\n\r\n4\r\nb 2\n\r\n0\r\n\r\n";
        assert_eq!(body("u", chunked).unwrap(), "a 1\nb 2\n");
        let missing = b"HTTP/1.1 404 Not Found\r\n\r\n";
        assert_eq!(
            body("u", missing).unwrap_err().to_string(),
            "u answered 404 Not Found"
        );
        assert!(body("u", b"garbage").is_err());
    }
}
