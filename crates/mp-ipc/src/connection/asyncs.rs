//! The async forms of [`Connection`]'s `send` and `recv`: futures that
//! never block the thread that polls them, woken by mp's own reactor
//! (`mp_process::reactor`), so they run under any executor.
//!
//! Cancellation: a receive consumes a frame only in the poll that returns
//! it. A long frame (past the 64 KiB buffer) whose payload has begun to
//! arrive is kept in the connection when its future is dropped, and the
//! next receive of either form goes on with it. A send dropped before its
//! first byte reached the socket sends nothing; one dropped mid-frame
//! leaves the rest in the connection, written before the next message.

use std::future::poll_fn;
use std::os::fd::AsFd;
use std::task::{Context, Poll};
use std::time::Instant;

use mp_process::reactor::{FdWaiter, Interest};
use rustix::io::Errno;
use rustix::net::SendFlags;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Connection, Header, Payload, RBUF, decode, long_header, send_error};
use crate::error::Error;

impl Connection {
    /// Receives one message sent with [`send`](Connection::send) as a `T`,
    /// without blocking the thread: the async form of
    /// [`recv`](Connection::recv), for any executor.
    ///
    /// Cancel-safe: dropping the future before it completes loses no
    /// message. A message not yet taken stays in the pipe; part of a long
    /// message already read stays in this connection, and the next receive
    /// (of either form) returns the whole message.
    ///
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let waker = std::task::Waker::noop();
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
    /// #         std::thread::sleep(std::time::Duration::from_millis(1));
    /// #     }
    /// # }
    /// let (mut a, mut b) = mp_ipc::pipe(true)?;
    /// block_on(async {
    ///     a.send_async(&(1u8, "one")).await?;
    ///     assert_eq!(b.recv_async::<(u8, String)>().await?, (1, "one".to_string()));
    ///     Ok::<(), mp_ipc::Error>(())
    /// })?;
    /// # Ok::<(), mp_ipc::Error>(())
    /// ```
    pub async fn recv_async<T: DeserializeOwned>(&mut self) -> Result<T, Error> {
        let mut waiter = FdWaiter::new();
        poll_fn(|cx| {
            self.poll_frame(cx, &mut waiter).map(|r| {
                r.and_then(|p| match &p {
                    Payload::Buffered(s, e) => decode(&self.rbuf[*s..*e]),
                    Payload::Owned(v) => decode(v),
                })
            })
        })
        .await
    }

    /// Receives one message as bytes, the async form of
    /// [`recv_bytes`](Connection::recv_bytes). Cancel-safe as
    /// [`recv_async`](Connection::recv_async) is: a dropped future loses
    /// no message and no part of one.
    pub async fn recv_bytes_async(&mut self) -> Result<Vec<u8>, Error> {
        let mut waiter = FdWaiter::new();
        poll_fn(|cx| {
            self.poll_frame(cx, &mut waiter).map(|r| {
                r.map(|p| match p {
                    Payload::Buffered(s, e) => self.rbuf[s..e].to_vec(),
                    Payload::Owned(v) => v,
                })
            })
        })
        .await
    }

    /// Sends a serde value as one message, the async form of
    /// [`send`](Connection::send): the value is encoded at the call, then
    /// written as the socket takes it, never blocking the thread.
    ///
    /// Cancellation: dropped before any byte of the frame reached the
    /// socket, the message is not sent; dropped later, the rest of its
    /// frame stays in this connection and is written before the next
    /// message (so the peer never sees half a frame followed by another).
    pub async fn send_async<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.check_send()?;
        self.flush_pending_async().await?;
        let mut buf = std::mem::take(&mut self.wpend);
        buf.clear();
        buf.extend_from_slice(&[0; 4]);
        let mut buf = match postcard::to_extend(value, buf) {
            Ok(b) => b,
            Err(e) => return Err(Error::Encode(mp_process::codec::encode_failed(value, e))),
        };
        let n = buf.len() - 4;
        if n <= 0x7fff_ffff {
            buf[..4].copy_from_slice(&(n as i32).to_be_bytes());
        } else {
            buf.splice(..4, long_header(n as u64));
        }
        self.wpend = buf;
        self.woff = 0;
        self.write_pending_async().await
    }

    /// Sends raw bytes as one message, the async form of
    /// [`send_bytes`](Connection::send_bytes). Cancellation as for
    /// [`send_async`](Connection::send_async).
    pub async fn send_bytes_async(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.check_send()?;
        self.flush_pending_async().await?;
        let mut buf = std::mem::take(&mut self.wpend);
        buf.clear();
        let n = bytes.len();
        if n <= 0x7fff_ffff {
            buf.extend_from_slice(&(n as i32).to_be_bytes());
        } else {
            buf.extend_from_slice(&long_header(n as u64));
        }
        buf.extend_from_slice(bytes);
        self.wpend = buf;
        self.woff = 0;
        self.write_pending_async().await
    }

    /// Writes what an earlier, dropped send left of its frame.
    async fn flush_pending_async(&mut self) -> Result<(), Error> {
        if self.woff > 0 && self.woff < self.wpend.len() {
            self.write_pending_async().await?;
        }
        Ok(())
    }

    /// Writes `wpend[woff..]`. If the future is dropped before the first
    /// byte went out, the frame is forgotten (nothing was sent).
    async fn write_pending_async(&mut self) -> Result<(), Error> {
        struct Unsent<'a>(&'a mut Connection);
        impl Drop for Unsent<'_> {
            fn drop(&mut self) {
                if self.0.woff == 0 {
                    self.0.wpend.clear();
                }
            }
        }
        let guard = Unsent(self);
        let mut waiter = FdWaiter::new();
        poll_fn(|cx| guard.0.poll_write_pending(cx, &mut waiter)).await
    }

    fn poll_write_pending(
        &mut self,
        cx: &mut Context<'_>,
        waiter: &mut FdWaiter,
    ) -> Poll<Result<(), Error>> {
        loop {
            if self.woff >= self.wpend.len() {
                self.woff = 0;
                self.wpend.clear();
                if self.wpend.capacity() > 4 * RBUF {
                    self.wpend = Vec::new();
                }
                return Poll::Ready(Ok(()));
            }
            let fd = match self.check_send() {
                Ok(fd) => fd,
                Err(e) => return Poll::Ready(Err(e)),
            };
            match rustix::net::send(
                fd,
                &self.wpend[self.woff..],
                SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
            ) {
                Ok(n) => self.woff += n,
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => {
                    // Arming re-checks readiness, so room made since the
                    // failed send still wakes us.
                    if let Err(e) = waiter.arm(fd.as_fd(), Interest::Write, cx.waker()) {
                        return Poll::Ready(Err(Error::Io(e)));
                    }
                    return Poll::Pending;
                }
                Err(e) => {
                    // The frame cannot be finished: a later message would
                    // be read as its rest.
                    if self.woff > 0 {
                        self.close();
                    } else {
                        self.wpend.clear();
                    }
                    return Poll::Ready(Err(send_error(e.into())));
                }
            }
        }
    }

    /// Takes one whole frame if it can without waiting; otherwise arms
    /// `waiter` for readability and returns `Pending`. Nothing of a frame is
    /// consumed until it is whole, except a long frame's payload, which is
    /// kept in `self.partial` across polls (and across a dropped future).
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
        waiter: &mut FdWaiter,
    ) -> Poll<Result<Payload, Error>> {
        match self.try_frame() {
            Ok(Some(p)) => Poll::Ready(Ok(p)),
            Ok(None) => {
                let armed = match self.fd() {
                    Ok(fd) => waiter.arm(fd, Interest::Read, cx.waker()),
                    Err(e) => return Poll::Ready(Err(e)),
                };
                match armed {
                    Ok(()) => Poll::Pending,
                    Err(e) => Poll::Ready(Err(Error::Io(e))),
                }
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// One non-blocking attempt at a whole frame: `Ok(None)` when the
    /// socket has no more bytes for now.
    fn try_frame(&mut self) -> Result<Option<Payload>, Error> {
        self.check_recv()?;
        loop {
            if let Some((mut v, len)) = self.partial.take() {
                return match self.long_payload_into(&mut v, len, Some(Instant::now())) {
                    Ok(()) => Ok(Some(Payload::Owned(v))),
                    Err(Error::Timeout) => {
                        self.partial = Some((v, len));
                        Ok(None)
                    }
                    Err(e) => {
                        // Half a frame is consumed: nothing after it can
                        // be parsed.
                        self.close();
                        Err(e)
                    }
                };
            }
            let need = match self.header()? {
                Header::Need(n) => n,
                Header::Frame(hdr, len) if hdr + len <= RBUF => {
                    if self.rend - self.rstart >= hdr + len {
                        let s = self.rstart + hdr;
                        self.rstart = s + len;
                        return Ok(Some(Payload::Buffered(s, s + len)));
                    }
                    hdr + len
                }
                Header::Frame(hdr, len) => {
                    self.rstart += hdr;
                    self.partial = Some((Vec::new(), len));
                    continue;
                }
            };
            debug_assert!(self.rend - self.rstart < need);
            match self.fill(Some(Instant::now())) {
                Ok(()) => {}
                Err(Error::Timeout) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
}
