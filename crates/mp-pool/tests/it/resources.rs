//! Resources: pools created and destroyed, and recycled workers, leave the
//! fd count and the children unchanged.

use mp_pool::Pool;

use crate::{SOON, children, exclusive, fd_count, inc};

fn settle(want_fds: usize) -> usize {
    // Reapers of other tests' children may close their fds a moment late.
    let give_up = std::time::Instant::now() + SOON;
    loop {
        let n = fd_count();
        if n <= want_fds || std::time::Instant::now() > give_up {
            return n;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn pools_and_recycling_leak_no_fds_and_no_children() {
    let _g = exclusive();
    // Warm up: the fork server and lazily opened descriptors.
    Pool::new(2).unwrap().apply(inc, 1).unwrap();
    let fds = settle(0);
    let kids = children().len();
    for _ in 0..20 {
        let pool = Pool::new(2).unwrap();
        assert_eq!(pool.apply(inc, 1).unwrap(), 2);
        pool.close();
        pool.join().unwrap();
    }
    let pool = Pool::builder()
        .processes(2)
        .maxtasksperchild(10)
        .build()
        .unwrap();
    let rs: Vec<_> = (0..1000)
        .map(|i| pool.apply_async(inc, i).unwrap())
        .collect();
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(r.get().unwrap(), i as i64 + 1);
    }
    pool.close();
    pool.join().unwrap();
    drop(pool);
    assert_eq!(settle(fds), fds);
    assert_eq!(children().len(), kids, "{:?}", children());
}
