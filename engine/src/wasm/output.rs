//! A guest's stdout and stderr: into the host's log, line by line, with the projection's name.
//!
//! Bounded whatever the guest prints: a line keeps at most [`MAX_LINE_BYTES`] (the rest is
//! counted, not stored), and at most [`MAX_LINES_PER_CALL`] lines of each stream are logged per
//! call into the guest (a batch); the lines beyond are counted and reported in one record when
//! the call ends. Memory held per stream is therefore one line, and the log gets at most a
//! few hundred records per batch from a guest printing megabytes.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Bytes of one line kept for the log; the rest of a longer line is dropped and counted.
pub const MAX_LINE_BYTES: usize = 1024;
/// Lines of one stream logged per call into the guest; further lines are counted only.
pub const MAX_LINES_PER_CALL: usize = 100;
/// Lines of the current call kept to explain a trap (a Rust panic prints its message there).
const RECENT_LINES: usize = 4;
/// What a guest may write at once (a permit of WASI's `check-write`); the stream never blocks.
const PERMIT: usize = 64 << 10;

/// Which of the guest's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One of a guest's output streams, logging complete lines. Cheap to clone; clones share the
/// line being assembled.
#[derive(Clone)]
pub(crate) struct GuestOutput(Arc<Mutex<Lines>>);

struct Lines {
    projection: String,
    stream: Stream,
    /// The line being assembled, at most [`MAX_LINE_BYTES`].
    line: Vec<u8>,
    /// Bytes of the current line beyond [`MAX_LINE_BYTES`].
    cut: usize,
    /// Lines logged during the current call.
    logged: usize,
    /// Lines not logged during the current call, past [`MAX_LINES_PER_CALL`].
    dropped: usize,
    /// The last [`RECENT_LINES`] lines of the current call, logged or not.
    recent: VecDeque<String>,
}

impl GuestOutput {
    pub(crate) fn new(projection: &str, stream: Stream) -> Self {
        GuestOutput(Arc::new(Mutex::new(Lines {
            projection: projection.to_owned(),
            stream,
            line: Vec::new(),
            cut: 0,
            logged: 0,
            dropped: 0,
            recent: VecDeque::new(),
        })))
    }

    /// The last lines printed during the current call (an unfinished one included), joined
    /// with ` / `; `None` when there are none.
    pub(crate) fn recent(&self) -> Option<String> {
        let lines = self.lock();
        let pending = String::from_utf8_lossy(&lines.line);
        let mut recent: Vec<&str> = lines.recent.iter().map(String::as_str).collect();
        if !pending.is_empty() {
            recent.push(&pending);
        }
        (!recent.is_empty()).then(|| recent.join(" / "))
    }

    /// Ends a call into the guest: logs an unfinished line and how many lines were dropped,
    /// and gives the next call a fresh allowance of lines.
    pub(crate) fn end_call(&self) {
        let mut lines = self.lock();
        if !lines.line.is_empty() || lines.cut > 0 {
            lines.end_line();
        }
        if lines.dropped > 0 {
            let (projection, stream, dropped) = (lines.projection.as_str(), lines.stream.as_str(), lines.dropped);
            tracing::warn!(
                target: "refract::guest",
                projection,
                stream,
                dropped,
                "{dropped} more lines of the projection's {stream} were not logged (at most {MAX_LINES_PER_CALL} per batch)"
            );
        }
        lines.logged = 0;
        lines.dropped = 0;
        lines.recent.clear();
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut lines = self.lock();
        let mut rest = bytes;
        while !rest.is_empty() {
            let (part, newline) = match rest.iter().position(|b| *b == b'\n') {
                Some(end) => (&rest[..end], Some(end)),
                None => (rest, None),
            };
            let room = MAX_LINE_BYTES - lines.line.len();
            let kept = part.len().min(room);
            lines.line.extend_from_slice(&part[..kept]);
            lines.cut += part.len() - kept;
            match newline {
                Some(end) => {
                    lines.end_line();
                    rest = &rest[end + 1..];
                }
                None => break,
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Lines> {
        // A line half-assembled when another thread panicked is still a line to log.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Lines {
    fn end_line(&mut self) {
        let text = String::from_utf8_lossy(self.line.strip_suffix(b"\r").unwrap_or(&self.line)).into_owned();
        if self.logged >= MAX_LINES_PER_CALL {
            self.dropped += 1;
        } else {
            self.logged += 1;
            let (projection, stream) = (self.projection.as_str(), self.stream.as_str());
            let cut = self.cut;
            match (self.stream, cut) {
                (Stream::Stdout, 0) => tracing::info!(target: "refract::guest", projection, stream, "{text}"),
                (Stream::Stderr, 0) => tracing::warn!(target: "refract::guest", projection, stream, "{text}"),
                (Stream::Stdout, _) => {
                    tracing::info!(target: "refract::guest", projection, stream, "{text}… ({cut} more bytes not logged)")
                }
                (Stream::Stderr, _) => {
                    tracing::warn!(target: "refract::guest", projection, stream, "{text}… ({cut} more bytes not logged)")
                }
            }
        }
        if self.recent.len() == RECENT_LINES {
            self.recent.pop_front();
        }
        self.recent.push_back(text);
        self.line.clear();
        self.cut = 0;
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(output: &GuestOutput) -> (usize, usize, usize, usize) {
        let lines = output.lock();
        (lines.line.len(), lines.cut, lines.logged, lines.dropped)
    }

    #[test]
    fn long_lines_are_cut_and_lines_past_the_allowance_only_counted() {
        let output = GuestOutput::new("p", Stream::Stdout);
        output.write_bytes(&vec![b'a'; 10 * MAX_LINE_BYTES]);
        assert_eq!(state(&output), (MAX_LINE_BYTES, 9 * MAX_LINE_BYTES, 0, 0), "one line, bounded");
        output.write_bytes(b"\nb\nc");
        assert_eq!(state(&output), (1, 0, 2, 0), "two lines ended, `c` pending");
        output.write_bytes(&b"x\n".repeat(2 * MAX_LINES_PER_CALL));
        assert_eq!(state(&output), (0, 0, MAX_LINES_PER_CALL, MAX_LINES_PER_CALL + 2));
        output.write_bytes(b"panicked at:\npoison\nnote");
        assert_eq!(output.recent().as_deref(), Some("x / x / panicked at: / poison / note"));
        output.end_call();
        assert_eq!(state(&output), (0, 0, 0, 0), "a fresh allowance for the next call");
        assert_eq!(output.recent(), None);
    }
}
