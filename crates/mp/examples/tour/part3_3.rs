//! Section 3-3 of the article: a `Pipe` joins exactly two ends.

use mp::Process;
use mp::ipc::{Connection, pipe};

/// The article's `task1`: receives, then answers "Got it".
fn task1(mut conn: Connection) -> String {
    let got: String = conn.recv().expect("recv");
    println!("task1 received {got}");
    conn.send("Got it").expect("send");
    got
}

/// The article's `task2`: sends "abc", then receives the answer.
fn task2(mut conn: Connection) -> String {
    conn.send("abc").expect("send");
    let answer: String = conn.recv().expect("recv");
    println!("task2 received {answer}");
    answer
}

/// Runs part 3-3.
pub(crate) fn run() -> Result<(), mp::Error> {
    println!("3-3. A Pipe between two processes");
    println!("---------------------------------");
    let (conn1, conn2) = pipe(true)?;
    let mut p1 = Process::new(task1, conn1);
    let mut p2 = Process::new(task2, conn2);
    p1.start()?;
    p2.start()?;
    assert_eq!(p1.join()?, "abc", "the article's result");
    assert_eq!(p2.join()?, "Got it", "the article's result");
    println!("article:     task1 recv abc, task2 send abc, Got it");
    println!("lesson: a Pipe has two ends and no lock: faster than a Queue, for two processes.");
    println!();
    Ok(())
}
