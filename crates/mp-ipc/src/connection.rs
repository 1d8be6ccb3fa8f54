//! `Pipe` and `Connection`: framed messages over a Unix stream socket, with
//! the framing of CPython's `multiprocessing.connection`, and `wait`.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use mp_process::SharedFd;
use rustix::net::{AddressFamily, Shutdown, SocketFlags, SocketType};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;
use crate::sock;

mod asyncs;

/// The default limit on the length of one incoming message: 1 GiB. A
/// longer frame header closes the connection with
/// [`Error::MessageTooLong`]; see [`Connection::set_max_message_size`].
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 1 << 30;

/// Receive buffer: small messages are parsed out of it, several per `recv`
/// call when they arrive together.
const RBUF: usize = 64 * 1024;

/// Messages up to this size are copied behind their header and sent with
/// one `send`; longer ones go out as header + payload with one `sendmsg`,
/// without the copy (CPython's threshold is the same).
const COPY_MAX: usize = 16 * 1024;

/// Socket buffer asked for (the kernel caps it at `net.core.wmem_max`):
/// bigger buffers mean fewer sleeps and wake-ups per megabyte.
pub(crate) const SOCKET_BUFFER: usize = 4 << 20;

/// One end of a [`pipe`], or a connection made by a
/// [`Listener`](crate::Listener) or a [`Client`](crate::Client).
///
/// Messages are frames: a 4-byte big-endian length (or `-1` and an 8-byte
/// length for 2 GiB and more), then the payload, exactly as CPython's
/// `Connection.send_bytes` writes them. [`send`](Connection::send) and
/// [`recv`](Connection::recv) carry serde values (postcard inside a frame);
/// [`send_bytes`](Connection::send_bytes) and
/// [`recv_bytes`](Connection::recv_bytes) carry raw bytes and talk to
/// Python's `send_bytes`/`recv_bytes`: only the bytes methods are
/// wire-compatible. Python's `recv()` unpickles (and unpickling can run
/// code): never call it on data from an untrusted peer; Rust's `send`
/// writes postcard, not pickle. Incoming messages are limited to
/// [`DEFAULT_MAX_MESSAGE_SIZE`] (1 GiB) unless set otherwise.
///
/// After the peer closed its end or died, the messages it sent are still
/// delivered, then `recv` returns [`Error::Eof`]. A connection passes to a
/// child as a process argument under every start method (it serializes a
/// [`SharedFd`]); the parent's copy stays usable.
///
/// One connection is not meant for two senders at once (the frames could
/// interleave): give each process its own pipe, or use a
/// [`Queue`](crate::Queue).
pub struct Connection {
    fd: Option<OwnedFd>,
    readable: bool,
    writable: bool,
    /// Bytes received and not yet consumed: `rbuf[rstart..rend]`.
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    wbuf: Vec<u8>,
    max_message: u64,
    /// A long frame whose payload an async receive began and was dropped
    /// before it ended: the payload so far and its length. The next
    /// receive, of either form, goes on with it, so nothing is lost.
    partial: Option<(Vec<u8>, usize)>,
    /// A frame an async send began and was dropped before it ended:
    /// `wpend[woff..]` is still to go, before any other message.
    wpend: Vec<u8>,
    woff: usize,
}

/// Creates a connected pair of [`Connection`]s, Python's `Pipe(duplex)`.
///
/// `duplex = true`: both ends send and receive. `duplex = false`: the pair
/// is `(reader, writer)`; `send` on the reader gives [`Error::NotWritable`]
/// and `recv` on the writer [`Error::NotReadable`].
///
/// ```
/// let (mut a, mut b) = mp_ipc::pipe(true)?;
/// a.send(&("hello", 42))?;
/// assert_eq!(b.recv::<(String, i32)>()?, ("hello".to_string(), 42));
/// b.send_bytes(b"raw")?;
/// assert_eq!(a.recv_bytes()?, b"raw");
/// # Ok::<(), mp_ipc::Error>(())
/// ```
pub fn pipe(duplex: bool) -> Result<(Connection, Connection), Error> {
    let (a, b) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    for fd in [&a, &b] {
        // Best effort: a smaller buffer only costs speed.
        let _ = rustix::net::sockopt::set_socket_send_buffer_size(fd, SOCKET_BUFFER);
    }
    if duplex {
        Ok((
            Connection::from_parts(a, true, true),
            Connection::from_parts(b, true, true),
        ))
    } else {
        // The reader never writes and the writer never reads: say so to the
        // kernel too, so that a stray write fails at once.
        let _ = rustix::net::shutdown(&a, Shutdown::Write);
        let _ = rustix::net::shutdown(&b, Shutdown::Read);
        Ok((
            Connection::from_parts(a, true, false),
            Connection::from_parts(b, false, true),
        ))
    }
}

/// What [`Connection::header`] found at the front of the buffer.
enum Header {
    /// Not enough bytes yet: this many are needed.
    Need(usize),
    /// A header of this many bytes, then a payload of this many.
    Frame(usize, usize),
}

/// Where a frame's payload is after [`Connection::next_frame`].
enum Payload {
    /// In the receive buffer, at this range (consumed already; valid until
    /// the next read).
    Buffered(usize, usize),
    /// Too long for the buffer: read into its own vector.
    Owned(Vec<u8>),
}

impl Connection {
    pub(crate) fn from_parts(fd: OwnedFd, readable: bool, writable: bool) -> Connection {
        Connection {
            fd: Some(fd),
            readable,
            writable,
            rbuf: Vec::new(),
            rstart: 0,
            rend: 0,
            wbuf: Vec::new(),
            max_message: DEFAULT_MAX_MESSAGE_SIZE,
            partial: None,
            wpend: Vec::new(),
            woff: 0,
        }
    }

    /// Wraps a connected stream socket (Unix or TCP) as a duplex
    /// connection, as `Connection(fd)` does in Python.
    pub fn from_fd(fd: OwnedFd) -> Connection {
        Connection::from_parts(fd, true, true)
    }

    /// Whether this end can receive (false for the writer of a one-way
    /// pipe).
    pub fn readable(&self) -> bool {
        self.readable
    }

    /// Whether this end can send (false for the reader of a one-way pipe).
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Whether [`close`](Connection::close) was called (or the connection
    /// was closed after a bad frame).
    pub fn closed(&self) -> bool {
        self.fd.is_none()
    }

    /// The socket's descriptor, Python's `fileno()`.
    pub fn fileno(&self) -> Result<RawFd, Error> {
        Ok(self.fd()?.as_raw_fd())
    }

    /// The longest incoming message accepted; see
    /// [`DEFAULT_MAX_MESSAGE_SIZE`].
    pub fn max_message_size(&self) -> u64 {
        self.max_message
    }

    /// Sets the longest incoming message accepted. A longer frame closes the
    /// connection with [`Error::MessageTooLong`].
    pub fn set_max_message_size(&mut self, bytes: u64) {
        self.max_message = bytes;
    }

    /// Closes this end (Python's `close()`); closing twice is fine. The peer
    /// receives what was sent, then end of stream.
    pub fn close(&mut self) {
        self.fd = None;
        self.rbuf = Vec::new();
        self.rstart = 0;
        self.rend = 0;
        self.partial = None;
        self.wpend = Vec::new();
        self.woff = 0;
    }

    /// A second handle to the same socket, with its own receive buffer. Only
    /// one of the two should receive while unread data is buffered.
    pub fn try_clone(&self) -> Result<Connection, Error> {
        let mut c = Connection::from_parts(
            self.fd()?.try_clone_to_owned()?,
            self.readable,
            self.writable,
        );
        c.max_message = self.max_message;
        Ok(c)
    }

    fn fd(&self) -> Result<BorrowedFd<'_>, Error> {
        self.fd.as_ref().map(AsFd::as_fd).ok_or(Error::Closed)
    }

    fn check_send(&self) -> Result<BorrowedFd<'_>, Error> {
        let fd = self.fd()?;
        if self.writable {
            Ok(fd)
        } else {
            Err(Error::NotWritable)
        }
    }

    fn check_recv(&self) -> Result<(), Error> {
        self.fd()?;
        if self.readable {
            Ok(())
        } else {
            Err(Error::NotReadable)
        }
    }

    // ----- sending -----

    /// Sends a serde value as one message (postcard inside a frame). The
    /// value is serialized here: nothing refers to it afterwards.
    pub fn send<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.send_deadline(value, None)
    }

    /// [`send`](Connection::send) waiting at most `timeout` for room in the
    /// socket buffer ([`Error::Timeout`] then, and nothing was sent). Once
    /// the message has begun, it is written to its end.
    pub fn send_timeout<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        timeout: Duration,
    ) -> Result<(), Error> {
        self.send_deadline(
            value,
            Some(sock::deadline(timeout).unwrap_or_else(far_future)),
        )
    }

    fn send_deadline<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        deadline: Option<Instant>,
    ) -> Result<(), Error> {
        self.check_send()?;
        self.finish_pending()?;
        let mut buf = std::mem::take(&mut self.wbuf);
        buf.clear();
        buf.extend_from_slice(&[0; 4]);
        let res = postcard::to_extend(value, buf);
        let mut buf = match res {
            Ok(b) => b,
            Err(e) => return Err(Error::Encode(mp_process::codec::encode_failed(value, e))),
        };
        let n = buf.len() - 4;
        if let Err(e) = self.wait_room(deadline) {
            self.wbuf = buf;
            return Err(e);
        }
        let r = if n <= 0x7fff_ffff {
            buf[..4].copy_from_slice(&(n as i32).to_be_bytes());
            let fd = self.check_send()?;
            sock::send_all(fd, &[&buf])
        } else {
            let hdr = long_header(n as u64);
            let fd = self.check_send()?;
            sock::send_all(fd, &[&hdr, &buf[4..]])
        };
        if buf.capacity() > 4 * RBUF {
            buf = Vec::new(); // do not keep a huge message's buffer around
        }
        self.wbuf = buf;
        r.map_err(send_error)
    }

    /// Sends raw bytes as one message (Python's `send_bytes`). An empty
    /// message is a real message.
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.send_bytes_deadline(bytes, None)
    }

    /// [`send_bytes`](Connection::send_bytes) waiting at most `timeout` for
    /// room in the socket buffer ([`Error::Timeout`] then, and nothing was
    /// sent). Once the message has begun, it is written to its end.
    pub fn send_bytes_timeout(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), Error> {
        self.send_bytes_deadline(
            bytes,
            Some(sock::deadline(timeout).unwrap_or_else(far_future)),
        )
    }

    /// Waits until the socket has room, by `deadline` (`None`: no wait,
    /// the send itself blocks).
    fn wait_room(&self, deadline: Option<Instant>) -> Result<(), Error> {
        match deadline {
            Some(d) if !sock::wait_writable(self.check_send()?, d)? => Err(Error::Timeout),
            _ => Ok(()),
        }
    }

    /// Writes what a dropped async send left of its frame, so that the
    /// next message starts on a frame boundary.
    fn finish_pending(&mut self) -> Result<(), Error> {
        if self.woff < self.wpend.len() && self.woff > 0 {
            let r = sock::send_all(self.check_send()?, &[&self.wpend[self.woff..]]);
            self.wpend.clear();
            self.woff = 0;
            r.map_err(send_error)?;
        }
        Ok(())
    }

    fn send_bytes_deadline(
        &mut self,
        bytes: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), Error> {
        self.check_send()?;
        self.finish_pending()?;
        self.wait_room(deadline)?;
        let n = bytes.len();
        let r = if n <= COPY_MAX {
            let mut buf = std::mem::take(&mut self.wbuf);
            buf.clear();
            buf.extend_from_slice(&(n as i32).to_be_bytes());
            buf.extend_from_slice(bytes);
            let r = sock::send_all(self.check_send()?, &[&buf]);
            self.wbuf = buf;
            r
        } else if n <= 0x7fff_ffff {
            sock::send_all(self.check_send()?, &[&(n as i32).to_be_bytes(), bytes])
        } else {
            sock::send_all(self.check_send()?, &[&long_header(n as u64), bytes])
        };
        r.map_err(send_error)
    }

    /// Sends raw bytes as one message, all of it by `deadline` (the
    /// handshake's rule: every write bounded). A message cut off by the
    /// deadline closes the connection, since its peer would read the rest
    /// of the stream as the rest of the frame.
    pub(crate) fn send_bytes_by(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), Error> {
        let fd = self.check_send()?;
        let n = u32::try_from(bytes.len())
            .ok()
            .filter(|&n| n <= 0x7fff_ffff)
            .ok_or_else(|| Error::InvalidInput("message too long for a deadline send".into()))?;
        let mut frame = Vec::with_capacity(4 + bytes.len());
        frame.extend_from_slice(&n.to_be_bytes());
        frame.extend_from_slice(bytes);
        let sent = sock::send_all_until(fd, &frame, deadline).map_err(send_error)?;
        if sent < frame.len() {
            if sent > 0 {
                self.close();
            }
            return Err(Error::Timeout);
        }
        Ok(())
    }

    /// Sends `bytes[offset..offset + size]` as one message (Python's
    /// `send_bytes(buf, offset, size)`); an out-of-range offset or size is
    /// [`Error::InvalidInput`].
    pub fn send_bytes_range(
        &mut self,
        bytes: &[u8],
        offset: usize,
        size: Option<usize>,
    ) -> Result<(), Error> {
        if offset > bytes.len() {
            return Err(Error::InvalidInput(format!(
                "offset {offset} is beyond the buffer's {} bytes",
                bytes.len()
            )));
        }
        let size = size.unwrap_or(bytes.len() - offset);
        if offset.checked_add(size).is_none_or(|end| end > bytes.len()) {
            return Err(Error::InvalidInput(format!(
                "offset {offset} + size {size} is beyond the buffer's {} bytes",
                bytes.len()
            )));
        }
        self.send_bytes(&bytes[offset..offset + size])
    }

    // ----- receiving -----

    /// Receives one message sent with [`send`](Connection::send) as a `T`,
    /// waiting as long as it takes. After the peer closed: the messages it
    /// sent, then [`Error::Eof`].
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<T, Error> {
        self.recv_deadline(None)
    }

    /// [`recv`](Connection::recv) waiting at most `timeout` for a message
    /// to begin ([`Error::Timeout`] then). Once a message has begun, the
    /// rest is read to its end: a peer that dies half-way gives
    /// [`Error::Eof`].
    pub fn recv_timeout<T: DeserializeOwned>(&mut self, timeout: Duration) -> Result<T, Error> {
        self.recv_deadline(sock::deadline(timeout).or(Some(far_future())))
    }

    fn recv_deadline<T: DeserializeOwned>(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<T, Error> {
        let payload = self.next_frame(deadline)?;
        let bytes: &[u8] = match &payload {
            Payload::Buffered(s, e) => &self.rbuf[*s..*e],
            Payload::Owned(v) => v,
        };
        decode(bytes)
    }

    /// Receives one message as bytes (Python's `recv_bytes`).
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>, Error> {
        self.recv_bytes_deadline(None)
    }

    /// [`recv_bytes`](Connection::recv_bytes) waiting at most `timeout` for
    /// a message to begin.
    pub fn recv_bytes_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, Error> {
        self.recv_bytes_deadline(sock::deadline(timeout).or(Some(far_future())))
    }

    fn recv_bytes_deadline(&mut self, deadline: Option<Instant>) -> Result<Vec<u8>, Error> {
        Ok(match self.next_frame(deadline)? {
            Payload::Buffered(s, e) => self.rbuf[s..e].to_vec(),
            Payload::Owned(v) => v,
        })
    }

    /// Receives one whole message by `deadline`: every read of it is
    /// bounded, not only the wait for it to begin.
    pub(crate) fn recv_bytes_by(&mut self, deadline: Instant) -> Result<Vec<u8>, Error> {
        Ok(match self.next_frame_by(Some(deadline), true)? {
            Payload::Buffered(s, e) => self.rbuf[s..e].to_vec(),
            Payload::Owned(v) => v,
        })
    }

    /// Receives one message into `buf` and returns its length (Python's
    /// `recv_bytes_into`). A message longer than `buf` is consumed and comes
    /// back whole in [`Error::BufferTooShort`].
    pub fn recv_bytes_into(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.recv_bytes_into_deadline(buf, None)
    }

    /// [`recv_bytes_into`](Connection::recv_bytes_into) waiting at most
    /// `timeout` for a message to begin.
    pub fn recv_bytes_into_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, Error> {
        self.recv_bytes_into_deadline(buf, sock::deadline(timeout).or(Some(far_future())))
    }

    fn recv_bytes_into_deadline(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, Error> {
        let (s, e, owned) = match self.next_frame(deadline)? {
            Payload::Buffered(s, e) => (s, e, None),
            Payload::Owned(v) => (0, v.len(), Some(v)),
        };
        let n = e - s;
        if n > buf.len() {
            return Err(Error::BufferTooShort(match owned {
                Some(v) => v,
                None => self.rbuf[s..e].to_vec(),
            }));
        }
        match &owned {
            Some(v) => buf[..n].copy_from_slice(v),
            None => buf[..n].copy_from_slice(&self.rbuf[s..e]),
        }
        Ok(n)
    }

    /// Whether a message (or end of stream) is there to receive, waiting up
    /// to `timeout` (`None`: forever; `Some(Duration::ZERO)`: a check at
    /// once). Never consumes anything.
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        self.check_recv()?;
        if self.rend > self.rstart {
            return Ok(true);
        }
        let deadline = timeout.map(|t| sock::deadline(t).unwrap_or_else(far_future));
        Ok(sock::wait_readable(self.fd()?, deadline)?)
    }

    /// Whether bytes are buffered here (so `poll` is true without asking
    /// the kernel).
    pub(crate) fn has_buffered(&self) -> bool {
        self.rend > self.rstart
    }

    /// Reads more bytes into the buffer (at least one), waiting until
    /// `deadline`. End of stream is [`Error::Eof`].
    fn fill(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        if self.rbuf.is_empty() {
            self.rbuf = vec![0; RBUF];
        }
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
        } else if self.rend == self.rbuf.len() {
            self.rbuf.copy_within(self.rstart..self.rend, 0);
            self.rend -= self.rstart;
            self.rstart = 0;
        }
        let fd = self.fd.as_ref().ok_or(Error::Closed)?.as_fd();
        match sock::recv_until(fd, &mut self.rbuf[self.rend..], deadline)? {
            None => Err(Error::Timeout),
            Some(0) => Err(Error::Eof),
            Some(n) => {
                self.rend += n;
                Ok(())
            }
        }
    }

    /// Waits for at least `n` buffered bytes. With `whole`, every wait
    /// honours the deadline; otherwise only the first one, for the start of
    /// a message.
    fn fill_to(&mut self, n: usize, deadline: Option<Instant>, whole: bool) -> Result<(), Error> {
        let mut first = self.rend == self.rstart;
        while self.rend - self.rstart < n {
            self.fill(if first || whole { deadline } else { None })?;
            first = false;
        }
        Ok(())
    }

    /// Reads one frame: its header, then its payload; the deadline bounds
    /// the wait for it to begin.
    fn next_frame(&mut self, deadline: Option<Instant>) -> Result<Payload, Error> {
        self.next_frame_by(deadline, false)
    }

    /// Reads one frame by `deadline`. With `whole`, the deadline bounds
    /// every read of the frame (the handshake's rule: a peer that stalls
    /// half-way costs at most the deadline); a frame cut off by it closes
    /// the connection, since the stream cannot be resumed mid-frame.
    fn next_frame_by(&mut self, deadline: Option<Instant>, whole: bool) -> Result<Payload, Error> {
        self.check_recv()?;
        if let Some((mut v, len)) = self.partial.take() {
            // A long frame an async receive began: read on to its end.
            let r = self.long_payload_into(&mut v, len, if whole { deadline } else { None });
            if r.is_err() {
                self.close();
            }
            return r.map(|()| Payload::Owned(v));
        }
        let (hdr, len) = loop {
            match self.header()? {
                Header::Need(n) => self.fill_to(n, deadline, whole)?,
                Header::Frame(hdr, len) => break (hdr, len),
            }
        };
        if hdr + len <= RBUF {
            // Header and payload stay buffered until the frame is whole, so
            // a timeout here leaves the stream as it was.
            self.fill_to(hdr + len, deadline, whole)?;
            let s = self.rstart + hdr;
            self.rstart = s + len;
            return Ok(Payload::Buffered(s, s + len));
        }
        self.rstart += hdr;
        let mut v = Vec::new();
        let r = self.long_payload_into(&mut v, len, if whole { deadline } else { None });
        if r.is_err() {
            // Half a frame is consumed: nothing after it can be parsed.
            self.close();
        }
        r.map(|()| Payload::Owned(v))
    }

    /// Parses the frame header at the front of the buffer, without
    /// consuming it: how many bytes are needed first, or the header's
    /// length and the payload's. A malformed or too long header closes the
    /// connection.
    fn header(&mut self) -> Result<Header, Error> {
        let have = self.rend - self.rstart;
        if have < 4 {
            return Ok(Header::Need(4));
        }
        let h = &self.rbuf[self.rstart..self.rstart + 4];
        let short = i32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let (hdr, len) = if short >= 0 {
            (4, short as u64)
        } else if short == -1 {
            if have < 12 {
                return Ok(Header::Need(12));
            }
            let l = &self.rbuf[self.rstart + 4..self.rstart + 12];
            (12, u64::from_be_bytes(l.try_into().expect("8 bytes")))
        } else {
            self.close();
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("malformed frame header: length {short}"),
            )));
        };
        if len > self.max_message {
            self.close();
            return Err(Error::MessageTooLong {
                len,
                max: self.max_message,
            });
        }
        let Ok(len) = usize::try_from(len) else {
            self.close();
            return Err(Error::MessageTooLong {
                len,
                max: usize::MAX as u64,
            });
        };
        Ok(Header::Frame(hdr, len))
    }

    /// Reads a long frame's payload into its own vector, which grows with
    /// the bytes that really arrived: to what the kernel holds already,
    /// else by doubling, never past `len`. A peer that announces 1 GiB and
    /// sends 12 bytes costs a few kilobytes, not 1 GiB; the vector is never
    /// zeroed, so a frame whose bytes are all there costs one allocation
    /// and one copy out of the kernel.
    ///
    /// `v` holds the payload read so far (empty for a new frame, whose
    /// header is consumed already); a timeout leaves what arrived in `v`.
    fn long_payload_into(
        &mut self,
        v: &mut Vec<u8>,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<(), Error> {
        let have = (self.rend - self.rstart).min(len - v.len());
        let fd = self.fd.as_ref().ok_or(Error::Closed)?.as_fd();
        grow(v, len, v.len() + have + sock::queued(fd))?;
        v.extend_from_slice(&self.rbuf[self.rstart..self.rstart + have]);
        self.rstart += have;
        while v.len() < len {
            if v.len() == v.capacity() {
                let want = (v.len() * 2).max(v.len() + sock::queued(fd));
                grow(v, len, want)?;
            }
            let left = len - v.len();
            match sock::recv_vec_until(fd, v, left, deadline)? {
                None => return Err(Error::Timeout),
                Some(0) => return Err(Error::Eof),
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// The first allocation for a long frame: enough for a buffer's worth even
/// when little has arrived yet (so a frame whose sender is still writing
/// does not grow in many small steps).
const GROW_MIN: usize = RBUF;

/// Grows `v`'s capacity towards `want` bytes (at least [`GROW_MIN`], at most
/// `len`, the frame's length). Out of memory is an error, not an abort.
fn grow(v: &mut Vec<u8>, len: usize, want: usize) -> Result<(), Error> {
    let target = want.max(GROW_MIN).min(len);
    if target <= v.capacity() {
        return Ok(());
    }
    v.try_reserve_exact(target - v.len()).map_err(|e| {
        Error::Io(std::io::Error::new(
            std::io::ErrorKind::OutOfMemory,
            format!("cannot hold a {len}-byte message: {e}"),
        ))
    })
}

/// The 12-byte header of a frame of 2 GiB or more.
fn long_header(n: u64) -> [u8; 12] {
    let mut h = [0; 12];
    h[..4].copy_from_slice(&(-1i32).to_be_bytes());
    h[4..].copy_from_slice(&n.to_be_bytes());
    h
}

/// A deadline far enough to mean "forever" when `now + timeout` overflows.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

fn send_error(e: std::io::Error) -> Error {
    Error::Io(e)
}

/// Deserializes a whole message as a `T`; trailing bytes are an error. A
/// failure names the type and keeps the message's bytes.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    mp_process::codec::decode(bytes).map_err(Error::Decode)
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("fd", &self.fd.as_ref().map(AsRawFd::as_raw_fd))
            .field("readable", &self.readable)
            .field("writable", &self.writable)
            .finish()
    }
}

impl AsFd for Connection {
    /// The socket. Panics if the connection is closed: use
    /// [`Connection::fileno`] to ask without panicking.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_ref().expect("the connection is closed").as_fd()
    }
}

/// What a connection looks like inside a process's arguments.
#[derive(Serialize, Deserialize)]
struct WireConnection {
    fd: SharedFd,
    readable: bool,
    writable: bool,
    max_message: u64,
}

impl Serialize for Connection {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let fd = self
            .fd
            .as_ref()
            .ok_or_else(|| S::Error::custom("the connection is closed"))?;
        if self.has_buffered() {
            return Err(S::Error::custom(
                "a connection with received, unread bytes cannot be sent to another process",
            ));
        }
        WireConnection {
            fd: SharedFd::new(fd.try_clone().map_err(S::Error::custom)?),
            readable: self.readable,
            writable: self.writable,
            max_message: self.max_message,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Connection, D::Error> {
        let w = WireConnection::deserialize(deserializer)?;
        let mut c = Connection::from_parts(w.fd.into_inner(), w.readable, w.writable);
        c.max_message = w.max_message;
        Ok(c)
    }
}

/// What [`wait`] can wait for: a [`Connection`] (a message or end of
/// stream to receive), a process's sentinel
/// (`mp_process::Process::sentinel`, an [`OwnedFd`]: the process ended),
/// or any socket or descriptor (readable, or hung up).
pub trait Waitable {
    /// Ready without waiting: a message already buffered in this process.
    fn ready_now(&self) -> bool {
        false
    }

    /// The descriptor that becomes readable when this is ready.
    fn ready_fd(&self) -> Result<BorrowedFd<'_>, Error>;
}

impl Waitable for Connection {
    fn ready_now(&self) -> bool {
        self.has_buffered()
    }

    fn ready_fd(&self) -> Result<BorrowedFd<'_>, Error> {
        self.fd()
    }
}

/// Descriptors, sockets and sentinels: ready when readable or hung up.
macro_rules! waitable_fd {
    ($($t:ty),*) => {$(
        impl Waitable for $t {
            fn ready_fd(&self) -> Result<BorrowedFd<'_>, Error> {
                Ok(self.as_fd())
            }
        }
    )*};
}

waitable_fd!(
    OwnedFd,
    BorrowedFd<'_>,
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixListener,
    std::net::TcpStream,
    std::net::TcpListener
);

/// Waits until at least one of `objects` is ready, or `timeout` passes
/// (`None`: forever), and returns the indices of the ready ones (empty
/// after a timeout), like Python's `multiprocessing.connection.wait`.
/// A closed connection is an error.
///
/// For connections alone, pass `&[&a, &b]`; to mix kinds, a slice of
/// `&dyn Waitable`:
///
/// ```
/// use mp_ipc::{Waitable, pipe, wait};
/// use mp_process::Process;
/// use std::time::Duration;
///
/// fn nap(ms: u64) { std::thread::sleep(Duration::from_millis(ms)) }
///
/// let (a, mut b) = pipe(true)?;
/// let mut p = Process::new(nap, 10);
/// p.start()?;
/// let sentinel = p.sentinel()?;
/// let ready = wait(&[&a as &dyn Waitable, &sentinel], Some(Duration::from_secs(10)))?;
/// assert_eq!(ready, [1]); // the process ended; nothing came on `a`
/// b.send(&1u8)?;
/// assert_eq!(wait(&[&a], None)?, [0]);
/// p.join()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn wait<W: Waitable + ?Sized>(
    objects: &[&W],
    timeout: Option<Duration>,
) -> Result<Vec<usize>, Error> {
    let ready: Vec<usize> = objects
        .iter()
        .enumerate()
        .filter(|(_, c)| c.ready_now())
        .map(|(i, _)| i)
        .collect();
    if !ready.is_empty() {
        return Ok(ready);
    }
    let fds = objects
        .iter()
        .map(|c| c.ready_fd())
        .collect::<Result<Vec<_>, _>>()?;
    let deadline = timeout.map(|t| sock::deadline(t).unwrap_or_else(far_future));
    Ok(sock::wait_any(&fds, deadline)?)
}
