//! The framing and messages between a parent and its child.
//!
//! A frame is a little-endian `u32` kind, a `u64` length and that many bytes,
//! on a `SOCK_STREAM` Unix socket (no size limit of its own, unlike
//! `SOCK_SEQPACKET`). The parent reads with deadlines on a non-blocking end;
//! the child writes and reads blocking.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::PanicInfo;
use crate::sys;

/// Parent to child: the call header, then the argument bytes.
pub(crate) const CALL: u32 = 1;
/// Parent to child: the serialized arguments.
pub(crate) const ARGS: u32 = 2;
/// Child to parent: the postcard-encoded [`Outcome`].
pub(crate) const OUTCOME: u32 = 3;

/// What a re-executed child needs to know before it runs the function.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct CallHeader {
    /// `exe_fingerprint()` of the parent: the child refuses to decode the
    /// entry point if its own executable differs.
    pub(crate) fingerprint: (u64, u64, u64, i64),
    /// The entry point, as an offset from the anchor (see `sys::encode_entry`).
    pub(crate) entry: i64,
    /// The type name of the entry, for error messages.
    pub(crate) entry_name: String,
    /// How many descriptors follow the arguments (see `fdpass`).
    pub(crate) nfds: u32,
    pub(crate) info: ChildInfo,
}

/// The identity a child takes on, seen through `current_process()`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct ChildInfo {
    pub(crate) name: String,
    pub(crate) daemon: bool,
    pub(crate) parent_pid: u32,
    pub(crate) parent_name: String,
    pub(crate) method: u8,
    pub(crate) identity: Vec<u32>,
    pub(crate) max_message: u64,
    /// The program's function key (see `function`), shared by every process
    /// of one program tree.
    pub(crate) key: u64,
    /// The limits the child sets on itself as it starts.
    pub(crate) limits: ChildLimits,
}

/// A child's time limit and memory cap (see `sys::limits`).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ChildLimits {
    pub(crate) time: Option<std::time::Duration>,
    pub(crate) memory: Option<u64>,
}

/// How the function call ended in the child.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum Outcome {
    /// The serialized return value.
    Ok(Vec<u8>),
    /// The function panicked.
    Panic(PanicInfo),
    /// The child could not run the function or send its result.
    Failed(ChildFailure),
}

/// A failure the child detected and reports in words.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum ChildFailure {
    /// Arguments could not be decoded, or the result encoded.
    Serialization(String),
    /// The result is larger than the parent's limit.
    TooLarge { size: u64, limit: u64 },
    /// The entry point could not be resolved in the child.
    Unresolvable(String),
}

/// Payloads up to this size go out in one write with their head: one
/// system call, and one wake-up of the reader, instead of two.
const ONE_WRITE: usize = 64 * 1024;

/// Writes one frame, blocking (child side).
pub(crate) fn write_frame(mut w: impl Write, kind: u32, payload: &[u8]) -> io::Result<()> {
    if payload.len() <= ONE_WRITE {
        return w.write_all(&frame(kind, payload));
    }
    w.write_all(&head(kind, payload.len()))?;
    w.write_all(payload)
}

/// Receives `n` descriptors sent by [`ParentConn::send_fds`], blocking
/// (child side): batches of `crate::recv_fds` messages.
pub(crate) fn recv_fds(conn: &UnixStream, n: usize) -> io::Result<Vec<std::os::fd::OwnedFd>> {
    let mut fds = Vec::with_capacity(n);
    while fds.len() < n {
        fds.extend(crate::fdpass::recv_fds(conn)?);
    }
    Ok(fds)
}

/// Encodes one frame into a buffer.
pub(crate) fn frame(kind: u32, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(12 + payload.len());
    buf.extend_from_slice(&head(kind, payload.len()));
    buf.extend_from_slice(payload);
    buf
}

/// Reads one frame, blocking (child side).
pub(crate) fn read_frame(mut r: impl Read, limit: u64) -> io::Result<(u32, Vec<u8>)> {
    let mut head = [0u8; 12];
    r.read_exact(&mut head)?;
    let (kind, len) = split_head(&head);
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds {limit}"),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf)?;
    Ok((kind, buf))
}

/// A frame's head: its kind and its payload's length, little-endian
/// ([`split_head`] reads it back).
fn head(kind: u32, len: usize) -> [u8; 12] {
    let mut head = [0u8; 12];
    head[..4].copy_from_slice(&kind.to_le_bytes());
    head[4..].copy_from_slice(&(len as u64).to_le_bytes());
    head
}

fn split_head(head: &[u8; 12]) -> (u32, u64) {
    let kind = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
    let len = u64::from_le_bytes(head[4..].try_into().expect("8 bytes"));
    (kind, len)
}

/// Why a deadline read or write stopped.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The deadline passed; call again to go on where it stopped.
    Timeout,
    /// The peer closed, or the watched process exited, before a whole frame.
    Closed,
    /// The frame announced more bytes than the limit.
    TooLarge(u64),
    Io(io::Error),
}

/// The parent's end of a child connection: non-blocking, resumable reads.
#[derive(Debug)]
pub(crate) struct ParentConn {
    sock: UnixStream,
    head: Vec<u8>,
    body: Vec<u8>,
    want: Option<(u32, u64)>,
}

impl ParentConn {
    pub(crate) fn new(sock: UnixStream) -> io::Result<ParentConn> {
        sys::set_nonblocking(sock.as_fd(), true)?;
        Ok(ParentConn {
            sock,
            head: Vec::with_capacity(12),
            body: Vec::new(),
            want: None,
        })
    }

    /// Writes what the socket takes now, without waiting; returns the
    /// number of bytes written.
    pub(crate) fn write_now(&mut self, buf: &[u8]) -> Result<usize, Stop> {
        let mut done = 0;
        while done < buf.len() {
            match self.sock.write(&buf[done..]) {
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Err(Stop::Closed),
                Err(e) => return Err(Stop::Io(e)),
            }
        }
        Ok(done)
    }

    /// Writes all of `buf` before `deadline`; a full socket waits for room.
    pub(crate) fn write_all(
        &mut self,
        mut buf: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), Stop> {
        loop {
            let n = self.write_now(buf)?;
            buf = &buf[n..];
            if buf.is_empty() {
                return Ok(());
            }
            let left = remaining(deadline)?;
            sys::poll_write(self.sock.as_fd(), left).map_err(Stop::Io)?;
        }
    }

    /// Sends `fds` as SCM_RIGHTS, in batches of `crate::send_fds`
    /// messages, before `deadline`.
    pub(crate) fn send_fds(
        &mut self,
        fds: &[RawFd],
        deadline: Option<Instant>,
    ) -> Result<(), Stop> {
        for batch in fds.chunks(crate::MAX_FDS_PER_MESSAGE) {
            loop {
                match crate::fdpass::send_raw(self.sock.as_fd(), batch) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        let left = remaining(deadline)?;
                        sys::poll_write(self.sock.as_fd(), left).map_err(Stop::Io)?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Err(Stop::Closed),
                    Err(e) => return Err(Stop::Io(e)),
                }
            }
        }
        Ok(())
    }

    /// Reads one frame before `deadline`. `exited` is a descriptor that
    /// becomes readable when the child is gone: a child that died while a
    /// sibling still holds a copy of its socket end is noticed anyway.
    pub(crate) fn read_frame(
        &mut self,
        exited: Option<BorrowedFd<'_>>,
        limit: u64,
        deadline: Option<Instant>,
    ) -> Result<(u32, Vec<u8>), Stop> {
        let mut exit_seen = false;
        loop {
            match self.try_read(limit) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
            if exit_seen {
                // The child is gone and the socket had nothing more.
                return Err(Stop::Closed);
            }
            let left = remaining(deadline)?;
            let mut fds = vec![self.sock.as_fd()];
            fds.extend(exited);
            let ready = sys::poll_read(&fds, left).map_err(Stop::Io)?;
            if ready.get(1) == Some(&true) {
                exit_seen = true;
            }
        }
    }

    /// [`read_frame`](ParentConn::read_frame) without waiting: a frame if
    /// one is whole now, `Ok(None)` while the child lives and more is to
    /// come, [`Stop::Closed`] once `exited` is readable and the socket has
    /// nothing more.
    pub(crate) fn read_frame_now(
        &mut self,
        exited: Option<BorrowedFd<'_>>,
        limit: u64,
    ) -> Result<Option<(u32, Vec<u8>)>, Stop> {
        if let Some(frame) = self.try_read(limit)? {
            return Ok(Some(frame));
        }
        let Some(fd) = exited else { return Ok(None) };
        if !sys::poll_read(&[fd], Some(std::time::Duration::ZERO)).map_err(Stop::Io)?[0] {
            return Ok(None);
        }
        // Gone: everything it wrote is in the socket by now.
        self.try_read(limit)?.map(Some).ok_or(Stop::Closed)
    }

    /// Reads what is available; `Ok(None)` when more is needed.
    fn try_read(&mut self, limit: u64) -> Result<Option<(u32, Vec<u8>)>, Stop> {
        loop {
            let target: &mut Vec<u8>;
            let need = match self.want {
                None => {
                    let need = 12 - self.head.len();
                    target = &mut self.head;
                    need
                }
                Some((_, len)) => {
                    let need = len as usize - self.body.len();
                    target = &mut self.body;
                    need
                }
            };
            if need == 0 {
                match self.want {
                    None => {
                        let head: [u8; 12] = self.head[..].try_into().expect("12 bytes");
                        let (kind, len) = split_head(&head);
                        if len > limit {
                            return Err(Stop::TooLarge(len));
                        }
                        self.want = Some((kind, len));
                        self.body = Vec::with_capacity(len as usize);
                        continue;
                    }
                    Some((kind, _)) => {
                        self.want = None;
                        self.head.clear();
                        return Ok(Some((kind, std::mem::take(&mut self.body))));
                    }
                }
            }
            let start = target.len();
            let chunk = need.min(1 << 20);
            target.resize(start + chunk, 0);
            match self.sock.read(&mut target[start..]) {
                Ok(0) => {
                    target.truncate(start);
                    return Err(Stop::Closed);
                }
                Ok(n) => target.truncate(start + n),
                Err(e) => {
                    target.truncate(start);
                    match e.kind() {
                        io::ErrorKind::WouldBlock => return Ok(None),
                        io::ErrorKind::Interrupted => {}
                        io::ErrorKind::ConnectionReset => return Err(Stop::Closed),
                        _ => return Err(Stop::Io(e)),
                    }
                }
            }
        }
    }
}

/// Time left until `deadline`, or `Stop::Timeout` when it has passed.
pub(crate) fn remaining(deadline: Option<Instant>) -> Result<Option<std::time::Duration>, Stop> {
    match deadline {
        None => Ok(None),
        Some(d) => {
            let now = Instant::now();
            if now >= d {
                Err(Stop::Timeout)
            } else {
                Ok(Some(d - now))
            }
        }
    }
}

impl AsFd for ParentConn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}
