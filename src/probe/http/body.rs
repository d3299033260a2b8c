//! A response body off the wire, as its head framed it (RFC 9112 §6): a
//! declared length, chunks, or everything until the peer closes; read up to
//! a limit, and whether the connection ended cleanly after it, ready for
//! another request.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// How the body's end is known.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Framing {
    /// No body: a HEAD request, 1xx, 204 or 304.
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither: the body ends when the peer closes.
    UntilClose,
}

/// A body as far as it was read.
#[derive(Debug)]
pub(super) struct Body {
    pub bytes: Bytes,
    /// More followed the limit.
    pub truncated: bool,
    /// The body ended where its framing said, and nothing came after it:
    /// the connection can carry another request.
    pub clean_end: bool,
}

/// Why a body could not be read: the words that follow "reading the body
/// from ADDR: ".
pub(super) type BodyError = String;

/// The most a chunk-size line or the trailers may take.
const LINE_LIMIT: usize = 64 * 1024;

/// Reads the body that starts in `buf` (what arrived with the head) and
/// goes on in `io`, keeping at most `limit` bytes.
pub(super) async fn read(
    io: &mut (impl AsyncRead + Unpin),
    mut buf: BytesMut,
    framing: Framing,
    limit: usize,
) -> Result<Body, BodyError> {
    match framing {
        Framing::Empty => Ok(Body {
            bytes: Bytes::new(),
            truncated: false,
            clean_end: buf.is_empty(),
        }),
        Framing::Length(declared) => {
            let want = usize::try_from(declared).map_or(limit, |d| d.min(limit));
            buf.reserve(want.saturating_sub(buf.len()));
            while buf.len() < want {
                if io.read_buf(&mut buf).await.map_err(|e| io_words(&e))? == 0 {
                    return Err(CLOSED_EARLY.into());
                }
            }
            let truncated = declared > want as u64;
            let clean_end = !truncated && buf.len() == want;
            buf.truncate(want);
            Ok(Body {
                bytes: buf.freeze(),
                truncated,
                clean_end,
            })
        }
        Framing::Chunked => Chunks { io, buf }.read(limit).await,
        Framing::UntilClose => {
            while buf.len() <= limit {
                match read_more(io, &mut buf).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    // A TLS peer that closes without saying so (no
                    // close_notify) still ended the body, as browsers read it.
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(io_words(&e)),
                }
            }
            let truncated = buf.len() > limit;
            buf.truncate(limit);
            Ok(Body {
                bytes: buf.freeze(),
                truncated,
                clean_end: false,
            })
        }
    }
}

/// The words for a peer that closed before the response ended.
pub(super) const CLOSED_EARLY: &str = "connection closed before a complete response";

/// Reads what the peer sent next into `buf`, making room first when little
/// is left; `Ok(0)` at the end of the stream.
pub(super) async fn read_more(
    io: &mut (impl AsyncRead + Unpin + ?Sized),
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < 512 {
        buf.reserve(8192);
    }
    io.read_buf(buf).await
}

fn io_words(err: &std::io::Error) -> String {
    crate::probe::tcp::io_reason(err)
}

/// A chunked body being decoded: `buf` holds what arrived and was not used.
struct Chunks<'a, R> {
    io: &'a mut R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> Chunks<'_, R> {
    async fn read(mut self, limit: usize) -> Result<Body, BodyError> {
        let mut out = BytesMut::new();
        loop {
            let size = self.size_line().await?;
            if size == 0 {
                self.trailers().await?;
                return Ok(Body {
                    bytes: out.freeze(),
                    truncated: false,
                    clean_end: self.buf.is_empty(),
                });
            }
            let mut left = size;
            while left > 0 {
                if self.buf.is_empty() {
                    self.more().await?;
                }
                let n = usize::try_from(left).map_or(self.buf.len(), |l| l.min(self.buf.len()));
                if out.len() + n > limit {
                    out.extend_from_slice(&self.buf[..limit - out.len()]);
                    return Ok(Body {
                        bytes: out.freeze(),
                        truncated: true,
                        clean_end: false,
                    });
                }
                out.extend_from_slice(&self.buf[..n]);
                self.buf.advance(n);
                left -= n as u64;
            }
            while self.buf.len() < 2 {
                self.more().await?;
            }
            if &self.buf[..2] != b"\r\n" {
                return Err("invalid chunked body: a chunk does not end with CRLF".into());
            }
            self.buf.advance(2);
        }
    }

    /// The next chunk's size, its line consumed.
    async fn size_line(&mut self) -> Result<u64, BodyError> {
        loop {
            match httparse::parse_chunk_size(&self.buf) {
                Ok(httparse::Status::Complete((used, size))) => {
                    self.buf.advance(used);
                    return Ok(size);
                }
                Ok(httparse::Status::Partial) if self.buf.len() < LINE_LIMIT => self.more().await?,
                Ok(httparse::Status::Partial) => {
                    return Err("invalid chunked body: a chunk-size line over 64 KiB".into());
                }
                Err(_) => return Err("invalid chunked body: a bad chunk-size line".into()),
            }
        }
    }

    /// The trailer fields after the last chunk, up to the blank line.
    async fn trailers(&mut self) -> Result<(), BodyError> {
        let mut seen = 0;
        loop {
            match self.buf.windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    self.buf.advance(2);
                    return Ok(());
                }
                Some(end) => {
                    seen += end + 2;
                    self.buf.advance(end + 2);
                }
                None => self.more().await?,
            }
            if seen + self.buf.len() > LINE_LIMIT {
                return Err("invalid chunked body: trailers over 64 KiB".into());
            }
        }
    }

    /// Reads what the peer sent next; its end here is too early.
    async fn more(&mut self) -> Result<(), BodyError> {
        match read_more(&mut *self.io, &mut self.buf).await {
            Ok(0) => Err(CLOSED_EARLY.into()),
            Ok(_) => Ok(()),
            Err(e) => Err(io_words(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a body whose first `arrived` bytes came with the head and the
    /// rest from the stream.
    async fn body(wire: &[u8], arrived: usize, framing: Framing, limit: usize) -> Body {
        try_body(wire, arrived, framing, limit).await.unwrap()
    }

    async fn try_body(
        wire: &[u8],
        arrived: usize,
        framing: Framing,
        limit: usize,
    ) -> Result<Body, BodyError> {
        let mut rest = &wire[arrived..];
        read(&mut rest, BytesMut::from(&wire[..arrived]), framing, limit).await
    }

    #[tokio::test]
    async fn a_declared_length_is_read_exactly_and_ends_cleanly() {
        let read = body(b"hello", 2, Framing::Length(5), 100).await;
        assert_eq!(
            (&read.bytes[..], read.truncated, read.clean_end),
            (&b"hello"[..], false, true)
        );
        // Bytes past the declared length: the body is right, the connection is not.
        let extra = body(b"hello!", 6, Framing::Length(5), 100).await;
        assert_eq!((&extra.bytes[..], extra.clean_end), (&b"hello"[..], false));
        let short = try_body(b"hel", 0, Framing::Length(5), 100).await;
        assert_eq!(short.unwrap_err(), CLOSED_EARLY);
    }

    #[tokio::test]
    async fn a_length_over_the_limit_is_cut_and_not_waited_for() {
        // Only 4 of the declared 1,000 bytes exist: reading stops at the limit.
        let read = body(b"abcd", 0, Framing::Length(1000), 3).await;
        assert_eq!(
            (&read.bytes[..], read.truncated, read.clean_end),
            (&b"abc"[..], true, false)
        );
    }

    #[tokio::test]
    async fn chunks_split_anywhere_are_joined_with_extensions_and_trailers_skipped() {
        let wire =
            b"4;name=v\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nx-sum: 1\r\n\r\n";
        for arrived in [0, 1, 7, 15, 30, wire.len()] {
            let read = body(wire, arrived, Framing::Chunked, 1000).await;
            assert_eq!(
                &read.bytes[..],
                b"Wikipedia in\r\n\r\nchunks.",
                "split at {arrived}"
            );
            assert!(read.clean_end && !read.truncated);
        }
    }

    #[tokio::test]
    async fn chunks_past_the_limit_are_cut_and_bad_chunks_are_errors() {
        let read = body(
            b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n",
            0,
            Framing::Chunked,
            7,
        )
        .await;
        assert_eq!((&read.bytes[..], read.truncated), (&b"hellowo"[..], true));
        let bad_size = try_body(b"zz\r\nhello\r\n", 0, Framing::Chunked, 100).await;
        assert!(bad_size.unwrap_err().contains("chunk-size"));
        let no_crlf = try_body(b"5\r\nhelloXX0\r\n\r\n", 0, Framing::Chunked, 100).await;
        assert!(no_crlf.unwrap_err().contains("CRLF"));
        let cut = try_body(b"5\r\nhel", 0, Framing::Chunked, 100).await;
        assert_eq!(cut.unwrap_err(), CLOSED_EARLY);
    }

    #[tokio::test]
    async fn until_close_reads_to_the_end_and_never_keeps_the_connection() {
        let read = body(b"all of it", 3, Framing::UntilClose, 100).await;
        assert_eq!(
            (&read.bytes[..], read.truncated, read.clean_end),
            (&b"all of it"[..], false, false)
        );
        let cut = body(b"all of it", 0, Framing::UntilClose, 3).await;
        assert_eq!((&cut.bytes[..], cut.truncated), (&b"all"[..], true));
    }

    #[tokio::test]
    async fn no_body_leaves_the_connection_clean_unless_bytes_follow() {
        assert!(body(b"", 0, Framing::Empty, 10).await.clean_end);
        assert!(!body(b"junk", 4, Framing::Empty, 10).await.clean_end);
    }
}
