//! `mp::Error`: every part's error converts into it with `?`, keeps its kind
//! and gives the part's error back.

use std::time::Duration;

use mp::{Error, ErrorKind};

fn assert_send_sync<T: Send + Sync + 'static>() {}

#[test]
fn is_send_sync_static() {
    assert_send_sync::<Error>();
}

fn boom(_: ()) -> u8 {
    panic!("no luck")
}

#[test]
fn each_part_converts_with_question_mark() {
    fn run() -> Result<(), Error> {
        let pool = mp::Pool::new(1)?;
        let err = Error::from(pool.apply(boom, ()).unwrap_err());
        assert_eq!(err.kind(), ErrorKind::Panicked);
        let inner = err.downcast_ref::<mp::pool::Error>().expect("a pool error");
        assert_eq!(inner.panic_info().unwrap().message(), "no luck");

        let q: mp::Queue<String> = mp::Queue::with_maxsize(1)?;
        q.put("one".to_string())?;
        let err = Error::from(q.try_put("two".to_string()).unwrap_err());
        assert_eq!(err.kind(), ErrorKind::Full);
        // The refused value comes back.
        let refused = err
            .downcast::<mp::ipc::PutError<String>>()
            .expect("a put error")
            .into_inner();
        assert_eq!(refused, "two");
        q.get_timeout(Duration::from_secs(5))?;
        assert_eq!(
            Error::from(q.try_get().unwrap_err()).kind(),
            ErrorKind::Empty
        );

        let v = mp::Value::new(3u32)?;
        assert_eq!(v.get()?, 3);

        let (mut a, b) = mp::pipe(true)?;
        drop(b);
        let err = Error::from(a.recv::<u8>().unwrap_err());
        assert_eq!(err.kind(), ErrorKind::Disconnected);

        let manager = mp::Manager::start()?;
        let value = manager.value(1i64)?;
        assert_eq!(value.get()?, 1);
        manager.shutdown()?;
        let err = Error::from(value.get().unwrap_err());
        assert_eq!(err.kind(), ErrorKind::Disconnected, "{err:?}");

        let mut p = mp::Process::new(boom, ());
        p.start()?;
        let err = Error::from(p.join().unwrap_err());
        assert_eq!(err.kind(), ErrorKind::Panicked);
        // The message is the part's own, once.
        assert_eq!(
            err.to_string(),
            err.downcast_ref::<mp::process::Error>()
                .unwrap()
                .to_string()
        );
        Ok(())
    }
    run().expect("every call succeeds or fails as asserted");
}

#[test]
fn downcast_to_the_wrong_type_gives_the_error_back() {
    let err = Error::from(mp::ipc::GetError::Empty);
    let err = err.downcast::<mp::pool::Error>().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Empty);
}

fn spin(_: ()) -> u8 {
    loop {
        std::hint::spin_loop();
    }
}

#[test]
fn a_pool_time_limit_is_its_own_kind() {
    let pool = mp::Pool::new(1).unwrap();
    let limits = mp::pool::Limits::new().time_limit(Duration::from_millis(50));
    let r = pool.apply_async_limited(spin, (), limits).unwrap();
    let err = Error::from(r.get_timeout(Duration::from_secs(10)).unwrap_err());
    assert_eq!(err.kind(), ErrorKind::TimeLimit);
    let inner = err.downcast_ref::<mp::pool::Error>().expect("a pool error");
    assert_eq!(inner.time_limit(), Some(Duration::from_millis(50)));
}
