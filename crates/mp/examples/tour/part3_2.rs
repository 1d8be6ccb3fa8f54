//! Section 3-2 of the article: a `Queue` between processes.

use std::time::Duration;

use mp::Process;
use mp::ipc::Queue;

/// The article's `put_item`: one child puts "a".
fn put_item(q: Queue<String>) {
    let item = "a".to_string();
    println!("queue put {item}");
    q.put(item).expect("put");
}

/// The article's `get_item`: another child gets it.
fn get_item(q: Queue<String>) -> String {
    let item = q.get_timeout(Duration::from_secs(10)).expect("get");
    println!("queue get {item}");
    item
}

/// Many producers and consumers on one queue: each item arrives once.
fn produce((q, id): (Queue<(u32, u32)>, u32)) {
    for i in 0..5 {
        q.put((id, i)).expect("put");
    }
}

/// Takes `n` items.
fn consume((q, n): (Queue<(u32, u32)>, usize)) -> Vec<(u32, u32)> {
    (0..n)
        .map(|_| q.get_timeout(Duration::from_secs(10)).expect("get"))
        .collect()
}

/// Runs part 3-2.
pub(crate) fn run() -> Result<(), mp::Error> {
    println!("3-2. A Queue between processes");
    println!("------------------------------");
    let q: Queue<String> = Queue::new()?;
    let mut p1 = Process::new(put_item, q.clone());
    p1.start()?;
    p1.join()?; // never waits for a consumer: the item is in the kernel
    let mut p2 = Process::new(get_item, q.clone());
    p2.start()?;
    assert_eq!(p2.join()?, "a", "the article's result");
    println!("article:     queue put a, queue get a");

    let q: Queue<(u32, u32)> = Queue::with_maxsize(4)?;
    let producers: Vec<_> = (0..3)
        .map(|id| {
            let mut p = Process::new(produce, (q.clone(), id));
            p.start().map(|()| p)
        })
        .collect::<Result<_, _>>()?;
    // The 15 items split between the consumers: one takes 8, the other 7.
    let consumers: Vec<_> = [8, 7]
        .into_iter()
        .map(|n| {
            let mut p = Process::new(consume, (q.clone(), n));
            p.start().map(|()| p)
        })
        .collect::<Result<_, _>>()?;
    for mut p in producers {
        p.join()?;
    }
    let mut all = Vec::new();
    for mut c in consumers {
        all.extend(c.join()?);
    }
    all.sort();
    all.dedup();
    println!(
        "3 producers x 5 items, 2 consumers, maxsize 4: {} distinct items arrived, each exactly once",
        all.len()
    );
    assert_eq!(all.len(), 15, "every item arrives once");
    println!(
        "lesson: a Queue is safe for many producing and consuming processes: each item reaches exactly one."
    );
    println!();
    Ok(())
}
