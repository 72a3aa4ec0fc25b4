//! Gives the HTTP library's own error answers (400, 414, 431 for a request it cannot parse)
//! the documented JSON error body, by rewriting them on their way to the socket.
//!
//! Why here: hyper answers a request line or head it cannot parse before any handler runs,
//! with an empty body and no hook to change it. Every answer the node's handlers make has a
//! JSON body (or is a `204` without `content-length`), so an error status with
//! `content-length: 0` can only be one of hyper's; [`JsonParseErrors`] sits between hyper and
//! the socket and swaps such a head for the same status with a body as `cluster/API.md`
//! documents. hyper is told the connection cannot write vectored, so each answer comes as one
//! buffer that starts with its status line.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose empty-bodied error answers get a JSON body (see the module docs).
pub struct JsonParseErrors<S> {
    inner: S,
    /// A rewritten answer not yet fully written.
    out: Vec<u8>,
    written: usize,
}

impl<S> JsonParseErrors<S> {
    /// Wraps a connection.
    pub fn new(inner: S) -> JsonParseErrors<S> {
        JsonParseErrors {
            inner,
            out: Vec::new(),
            written: 0,
        }
    }
}

/// The message for a status hyper answers on its own.
fn message(status: u16) -> &'static str {
    match status {
        414 => "request line too long (the URI, with the key, is limited to 65534 bytes)",
        431 => "request head too large",
        400 => "malformed HTTP request",
        _ => "request refused by the HTTP layer",
    }
}

/// If `buf` is an error answer with an empty body, the same answer with a JSON error body.
pub fn rewrite(buf: &[u8]) -> Option<Vec<u8>> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    if head_end != buf.len() {
        return None;
    }
    let head = std::str::from_utf8(&buf[..head_end - 4]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()?;
    if status < 400 {
        return None;
    }
    let mut kept = Vec::new();
    let mut empty = false;
    for l in lines {
        let name = l.split(':').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("content-length") {
            empty = l.split(':').nth(1).is_some_and(|v| v.trim() == "0");
        } else if !name.eq_ignore_ascii_case("content-type") {
            kept.push(l);
        }
    }
    if !empty {
        return None;
    }
    let body =
        serde_json::json!({"error": message(status), "definite": true, "leader": null}).to_string();
    let mut out = format!("{status_line}\r\n");
    for l in kept {
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ));
    Some(out.into_bytes())
}

impl<S: AsyncWrite + Unpin> JsonParseErrors<S> {
    /// Writes what is left of a rewritten answer.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.out.len() {
            let n = std::task::ready!(
                Pin::new(&mut self.inner).poll_write(cx, &self.out[self.written..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.out.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonParseErrors<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.drain(cx))?;
        // Only an error answer is looked at: the check is a prefix compare otherwise.
        if buf.starts_with(b"HTTP/1.1 4") || buf.starts_with(b"HTTP/1.1 5") {
            if let Some(out) = rewrite(buf) {
                self.out = out;
                // The caller's bytes are taken in full; the rewrite goes out from `out`.
                let _ = self.drain(cx)?;
                return Poll::Ready(Ok(buf.len()));
            }
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_error_answer_gets_a_json_body_and_others_are_left_alone() {
        let hyper_414 =
            b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = String::from_utf8(rewrite(hyper_414).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(head.contains("connection: close"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["definite"], true);
        assert!(v["error"].as_str().unwrap().contains("65534"));
        // A node's own error (JSON body), a success, a 204, a partial head: untouched.
        let own = b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}";
        assert!(rewrite(own).is_none());
        assert!(rewrite(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(rewrite(b"HTTP/1.1 204 No Content\r\n\r\n").is_none());
        assert!(rewrite(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n").is_none());
    }
}
