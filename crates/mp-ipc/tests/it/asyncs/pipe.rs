//! `Connection`'s async forms.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use mp_ipc::{Connection, Error, pipe};
use mp_process::Process;

use super::{RUNTIMES, threads, threads_with_all_pending};

/// Sends `n` numbered messages, some of them long (past the receive
/// buffer), with pauses, so that receivers see them arrive at any moment.
fn produce((mut c, n): (Connection, u32)) {
    for i in 0..n {
        if i % 97 == 0 {
            c.send_bytes(&vec![(i % 251) as u8; 200_000 + i as usize])
                .unwrap();
        } else {
            c.send_bytes(&i.to_le_bytes()).unwrap();
        }
        if i % 7 == 0 {
            std::thread::sleep(Duration::from_micros(300));
        }
    }
}

#[test]
fn values_and_bytes_round_trip() {
    for rt in RUNTIMES {
        rt.run(async {
            let (mut a, mut b) = pipe(true).unwrap();
            a.send_async(&("hello", 1u32)).await.unwrap();
            assert_eq!(
                b.recv_async::<(String, u32)>().await.unwrap(),
                ("hello".to_string(), 1)
            );
            let big = vec![7u8; 3 << 20];
            let send = async { a.send_bytes_async(&big).await.unwrap() };
            let recv = async { b.recv_bytes_async().await.unwrap() };
            let ((), got) = futures_join(send, recv).await;
            assert_eq!(got, big);
            // The sync forms interleave with the async ones.
            a.send(&5u64).unwrap();
            assert_eq!(b.recv_async::<u64>().await.unwrap(), 5);
            b.send_async(&6u64).await.unwrap();
            assert_eq!(a.recv::<u64>().unwrap(), 6);
            drop(a);
            assert!(matches!(b.recv_bytes_async().await, Err(Error::Eof)));
        });
    }
}

/// Polls two futures together (a join without a runtime's macro).
async fn futures_join<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let std::task::Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let std::task::Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            std::task::Poll::Ready((ra.take().unwrap(), rb.take().unwrap()))
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

#[test]
fn a_receive_cancelled_by_a_timeout_loses_no_message_from_a_producer_process() {
    const N: u32 = 2000;
    for rt in RUNTIMES {
        let (mut rx, tx) = pipe(false).unwrap();
        let mut p = Process::new(produce, (tx, N));
        p.start().unwrap();
        rt.run(async move {
            let (mut got, mut cancelled) = (0u32, 0u32);
            while got < N {
                // A timeout short enough to cut many receives, long ones
                // mid-frame among them.
                match rt
                    .timeout(Duration::from_micros(200), rx.recv_bytes_async())
                    .await
                {
                    None => cancelled += 1,
                    Some(m) => {
                        let m = m.unwrap();
                        if got % 97 == 0 {
                            assert_eq!(m.len(), 200_000 + got as usize, "message {got}");
                            assert!(m.iter().all(|&x| x == (got % 251) as u8));
                        } else {
                            assert_eq!(m, got.to_le_bytes(), "message {got}");
                        }
                        got += 1;
                    }
                }
            }
            assert!(cancelled > 0, "no receive was cancelled");
            assert!(matches!(rx.recv_bytes_async().await, Err(Error::Eof)));
        });
        p.join().unwrap();
    }
}

#[test]
fn a_receive_dropped_mid_frame_is_resumed_by_the_next_receive_of_either_form() {
    for rt in RUNTIMES {
        for sync_after in [false, true] {
            let (mut rx, tx) = pipe(true).unwrap();
            let mut raw = UnixStream::from(tx.as_fd().try_clone_to_owned().unwrap());
            let payload: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
            let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
            frame.extend_from_slice(&payload);
            let cut = 4 + 150_000;
            raw.write_all(&frame[..cut]).unwrap();
            let expected = payload.clone();
            rt.run(async move {
                // Half the frame is there: the receive reads it and waits.
                let r = rt
                    .timeout(Duration::from_millis(50), rx.recv_bytes_async())
                    .await;
                assert!(r.is_none(), "a half frame completed");
                raw.write_all(&frame[cut..]).unwrap();
                let got = if sync_after {
                    rx.recv_bytes().unwrap()
                } else {
                    rx.recv_bytes_async().await.unwrap()
                };
                assert_eq!(got, expected);
                // And the stream goes on at the next frame.
                let mut tx = tx;
                tx.send(&9u8).unwrap();
                assert_eq!(rx.recv_async::<u8>().await.unwrap(), 9);
            });
        }
    }
}

#[test]
fn a_send_dropped_mid_frame_is_finished_before_the_next_message() {
    for rt in RUNTIMES {
        let (mut a, mut b) = pipe(true).unwrap();
        let big = vec![3u8; 16 << 20]; // more than the socket buffers hold
        rt.run(async move {
            let r = rt
                .timeout(Duration::from_millis(50), a.send_bytes_async(&big))
                .await;
            assert!(r.is_none(), "16 MiB fitted in the socket");
            // The next message goes after the rest of the cut one.
            let reader = std::thread::spawn(move || {
                let first = b.recv_bytes().unwrap();
                let second = b.recv::<u32>().unwrap();
                (first.len(), second)
            });
            a.send_async(&77u32).await.unwrap();
            assert_eq!(reader.join().unwrap(), (16 << 20, 77));
        });
    }
}

#[test]
fn pending_receives_add_no_thread_each() {
    let _alone = mp_test_helpers::exclusive();
    for rt in RUNTIMES {
        rt.run(async move {
            let mut pairs: Vec<(Connection, Connection)> =
                (0..300).map(|_| pipe(true).unwrap()).collect();
            // One pending receive first, so the reactor thread exists.
            let (first, _) = &mut pairs[0];
            assert!(
                rt.timeout(Duration::from_millis(20), first.recv_bytes_async())
                    .await
                    .is_none()
            );
            let before = threads();
            let mut futs: Vec<_> = pairs
                .iter_mut()
                .map(|(a, _)| Box::pin(a.recv_bytes_async()))
                .collect();
            let during = threads_with_all_pending(&mut futs);
            assert!(
                during <= before + 2,
                "{before} threads before 300 pending receives, {during} with them"
            );
            drop(futs);
            rt.sleep(Duration::from_millis(1)).await;
        });
    }
}
