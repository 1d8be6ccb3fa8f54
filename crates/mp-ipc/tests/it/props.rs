//! Property tests: queues with random producers, consumers, counts and
//! sizes; pipes with random byte messages. Few cases, real processes.

use mp_ipc::{Queue, pipe};
use mp_process::Process;
use proptest::prelude::*;

use super::GENEROUS;

/// An item: producer id, its sequence number, a payload of `id` bytes.
type Item = (u8, u32, Vec<u8>);

fn producer((q, id, sizes): (Queue<Item>, u8, Vec<usize>)) {
    for (i, s) in sizes.into_iter().enumerate() {
        q.put_timeout((id, i as u32, vec![id; s]), GENEROUS)
            .unwrap();
    }
}

fn consumer((q, n, maxsize): (Queue<Item>, usize, usize)) -> Vec<(u8, u32, usize)> {
    let mut out = Vec::new();
    for _ in 0..n {
        assert!(
            maxsize == 0 || q.qsize() <= maxsize,
            "a bounded queue holds at most maxsize"
        );
        let (id, i, v) = q.get_timeout(GENEROUS).unwrap();
        assert!(v.iter().all(|&b| b == id));
        out.push((id, i, v.len()));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]

    #[test]
    fn queue_delivers_each_item_once_in_each_producers_order(
        counts in prop::collection::vec(prop::collection::vec(0usize..2000, 0..40), 1..=8),
        consumers in 1usize..=4,
        maxsize in prop_oneof![Just(0usize), 1usize..20],
    ) {
        let q: Queue<Item> = Queue::with_maxsize(maxsize).unwrap();
        let total: usize = counts.iter().map(Vec::len).sum();
        let ps: Vec<_> = counts.iter().enumerate().map(|(id, sizes)| {
            let mut p = Process::new(producer, (q.clone(), id as u8, sizes.clone()));
            p.start().unwrap();
            p
        }).collect();
        // Split the total between the consumers.
        let cs: Vec<_> = (0..consumers).map(|c| {
            let n = total / consumers + usize::from(c < total % consumers);
            let mut p = Process::new(consumer, (q.clone(), n, maxsize));
            p.start().unwrap();
            p
        }).collect();
        let mut all = Vec::new();
        for mut c in cs {
            let got = c.join().unwrap();
            for id in 0..counts.len() as u8 {
                let seq: Vec<u32> = got.iter().filter(|x| x.0 == id).map(|x| x.1).collect();
                prop_assert!(seq.windows(2).all(|w| w[0] < w[1]));
            }
            all.extend(got);
        }
        for mut p in ps {
            p.join().unwrap();
        }
        all.sort();
        let mut want: Vec<(u8, u32, usize)> = counts.iter().enumerate()
            .flat_map(|(id, sizes)| sizes.iter().enumerate().map(move |(i, &s)| (id as u8, i as u32, s)))
            .collect();
        want.sort();
        prop_assert_eq!(all, want);
        prop_assert!(q.empty());
    }

    #[test]
    fn pipe_delivers_random_byte_messages_exactly_in_order(
        sizes in prop::collection::vec(prop_oneof![0usize..100, 0usize..70_000, 0usize..(4 << 20)], 1..8),
        seed in any::<u8>(),
    ) {
        let (mut a, mut b) = pipe(true).unwrap();
        let msgs: Vec<Vec<u8>> = sizes.iter().enumerate()
            .map(|(i, &s)| (0..s).map(|j| (j as u8).wrapping_mul(seed).wrapping_add(i as u8)).collect())
            .collect();
        let sent = msgs.clone();
        let t = std::thread::spawn(move || {
            for m in &sent {
                a.send_bytes(m).unwrap();
            }
        });
        for m in &msgs {
            prop_assert_eq!(&b.recv_bytes().unwrap(), m);
        }
        t.join().unwrap();
    }
}
