//! Property tests: for any number of processes and any deltas, the shared
//! counters end at exactly the sum; disjoint array writes are all visible.

use std::sync::atomic::Ordering::SeqCst;

use mp_process::{Process, StartMethod};
use mp_shm::{Array, AtomicI64, Value};
use proptest::prelude::*;

fn apply_locked(args: (Value<i64>, Vec<i64>)) {
    let (v, deltas) = args;
    for d in deltas {
        let mut g = v.lock().unwrap();
        let x = *g;
        *g = x + d;
    }
}

fn apply_atomic(args: (AtomicI64, Vec<i64>)) {
    let (v, deltas) = args;
    for d in deltas {
        v.fetch_add(d, SeqCst);
    }
}

fn write_range(args: (Array<u32>, usize, usize)) {
    let (a, start, end) = args;
    for i in start..end {
        // One lock per element, so writers interleave.
        a.lock().unwrap()[i] = i as u32 + 1;
    }
}

fn run_all<F, A>(f: F, args: Vec<A>)
where
    F: Fn(A) + Copy + 'static,
    A: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let mut ps: Vec<_> = args
        .into_iter()
        .map(|a| Process::new(f, a).start_method(StartMethod::Fork))
        .collect();
    for p in &mut ps {
        p.start().unwrap();
    }
    for p in &mut ps {
        p.join().unwrap();
    }
}

fn deltas() -> impl Strategy<Value = Vec<Vec<i64>>> {
    prop::collection::vec(prop::collection::vec(-1000_i64..1000, 0..200), 1..=8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn locked_counter_ends_at_the_sum(per_process in deltas()) {
        let want: i64 = per_process.iter().flatten().sum();
        let v = Value::new(0_i64).unwrap();
        run_all(apply_locked, per_process.into_iter().map(|d| (v.clone(), d)).collect());
        prop_assert_eq!(v.get().unwrap(), want);
    }

    #[test]
    fn atomic_counter_ends_at_the_sum(per_process in deltas()) {
        let want: i64 = per_process.iter().flatten().sum();
        let v = AtomicI64::new(0).unwrap();
        run_all(apply_atomic, per_process.into_iter().map(|d| (v.clone(), d)).collect());
        prop_assert_eq!(v.load(SeqCst), want);
    }

    #[test]
    fn disjoint_array_writes_are_all_visible(cuts in prop::collection::vec(0_usize..300, 0..7)) {
        let mut bounds = cuts;
        bounds.push(0);
        bounds.push(300);
        bounds.sort_unstable();
        let a = Array::<u32>::new(300).unwrap();
        let ranges: Vec<_> = bounds.windows(2).map(|w| (a.clone(), w[0], w[1])).collect();
        run_all(write_range, ranges);
        let got = a.to_vec().unwrap();
        prop_assert!(got.iter().enumerate().all(|(i, &x)| x == i as u32 + 1));
    }
}
