//! The pool's task stream: framed messages on a `SOCK_STREAM` socket pair
//! per worker, parent to worker (results come back through the worker's
//! shared-memory block, see `block`). A frame is a 12-byte header (kind
//! `u32`, body length `u64`, little-endian) and its body.
//!
//! [`DEFINE`] (a function id and its encoded `RawFunction`, sent once per
//! worker before the first task that uses it), [`TASK`] (a function id and
//! the encoded argument), [`TASK_FDS`] (the same for an argument that holds
//! descriptors, which wait on the worker's descriptor socket), [`EXIT`]
//! (finish and exit), [`LIMITS`] (the time limits of the next task, only
//! before a task that has any).
//!
//! Tasks carry no id: a worker runs its tasks in the order they arrive and
//! answers in that order, so the parent matches results to the front of its
//! per-worker list of outstanding tasks.

use std::io::{self, Read};

/// Parent to worker: `[fid u32][postcard RawFunction]`.
pub(crate) const DEFINE: u32 = 1;
/// Parent to worker: `[fid u32][argument bytes]`.
pub(crate) const TASK: u32 = 2;
/// Parent to worker: `[fid u32][descriptors u32][argument bytes]`; the
/// descriptors are the next message on the descriptor socket.
pub(crate) const TASK_FDS: u32 = 4;
/// Parent to worker: empty; the worker finishes and exits.
pub(crate) const EXIT: u32 = 3;
/// Parent to worker: `[soft ns u64][hard ns u64]` (0: none), the time
/// limits of the next task; sent only before a task that has one.
pub(crate) const LIMITS: u32 = 5;

/// The header's size.
pub(crate) const HEADER: usize = 12;

/// Frames larger than this are refused: a corrupt stream, not a task.
const MAX_FRAME: u64 = 1 << 40;

/// Appends a frame header.
pub(crate) fn put_header(out: &mut Vec<u8>, kind: u32, len: usize) {
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&(len as u64).to_le_bytes());
}

/// Whether `buf` starts with a whole frame.
pub(crate) fn has_frame(buf: &[u8]) -> bool {
    buf.len() >= HEADER && {
        let len = u64::from_le_bytes(buf[4..12].try_into().expect("8 bytes"));
        (buf.len() - HEADER) as u64 >= len
    }
}

/// The kind and body length of the frame `buf` starts with, which
/// [`has_frame`] says is whole.
pub(crate) fn parse_header(buf: &[u8]) -> (u32, usize) {
    let kind = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes"));
    let len = u64::from_le_bytes(buf[4..12].try_into().expect("8 bytes"));
    (kind, len as usize)
}

/// Reads one frame into `body`; `Ok(None)` at a clean end of stream.
pub(crate) fn read_frame(r: &mut impl Read, body: &mut Vec<u8>) -> io::Result<Option<u32>> {
    let Some((kind, len)) = read_header(r)? else {
        return Ok(None);
    };
    body.clear();
    body.resize(len, 0);
    r.read_exact(body)?;
    Ok(Some(kind))
}

/// Reads a frame's header: its kind and body length; `Ok(None)` at a
/// clean end of stream.
pub(crate) fn read_header(r: &mut impl Read) -> io::Result<Option<(u32, usize)>> {
    let mut header = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let kind = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
    let len = u64::from_le_bytes(header[4..12].try_into().expect("8 bytes"));
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes"),
        ));
    }
    Ok(Some((kind, len as usize)))
}

/// Reads exactly `n` bytes into a new vector (without zeroing it first).
pub(crate) fn read_vec(r: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut v = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut v)?;
    if v.len() < n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(v)
}

/// Writes one frame (the tests' way to make streams).
#[cfg(test)]
pub(crate) fn write_frame(w: &mut impl std::io::Write, kind: u32, body: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(HEADER + body.len());
    put_header(&mut out, kind, body.len());
    out.extend_from_slice(body);
    w.write_all(&out)
}

/// A reader over a byte slice, for frame bodies.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor { buf }
    }

    pub(crate) fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "truncated frame body",
            ));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }

    pub(crate) fn rest(self) -> &'a [u8] {
        self.buf
    }
}
