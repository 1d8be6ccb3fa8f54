//! Proxies passed to children: the article's programs and counters.

use mp_manager::{DictProxy, ListProxy, LockProxy, Manager, ValueProxy};
use mp_process::Process;
use proptest::prelude::*;

use crate::METHODS;

/// The article's task1/task2: `n` locked read-modify-writes of `delta`.
fn locked_add(args: (ValueProxy<i64>, LockProxy, i64, u32)) {
    let (num, lock, delta, n) = args;
    for _ in 0..n {
        let _held = lock.lock().unwrap();
        let v = num.get().unwrap();
        num.set(&(v + delta)).unwrap();
    }
}

fn add_once(args: (ValueProxy<i64>, i64)) -> i64 {
    args.0.fetch_add(args.1).unwrap() + args.1
}

#[test]
fn the_article_counter_ends_at_zero_under_each_method() {
    let manager = Manager::start().unwrap();
    for m in METHODS {
        let num = manager.value(0i64).unwrap();
        let lock = manager.lock().unwrap();
        let mut up =
            Process::new(locked_add, (num.clone(), lock.clone(), 1, 10_000)).start_method(m);
        let mut down =
            Process::new(locked_add, (num.clone(), lock.clone(), -1, 10_000)).start_method(m);
        up.start().unwrap();
        down.start().unwrap();
        up.join().unwrap();
        down.join().unwrap();
        assert_eq!(num.get().unwrap(), 0, "{m}");
    }
    manager.shutdown().unwrap();
}

#[test]
fn the_article_value_is_shared() {
    // Value 10; one child adds 5, the other 10: 15 then 25, in either order.
    let manager = Manager::start().unwrap();
    let num = manager.value(10i64).unwrap();
    let mut a = Process::new(add_once, (num.clone(), 5));
    a.start().unwrap();
    let first = a.join().unwrap();
    let mut b = Process::new(add_once, (num.clone(), 10));
    b.start().unwrap();
    let second = b.join().unwrap();
    assert_eq!((first, second), (15, 25));
    assert_eq!(num.get().unwrap(), 25);
}

fn set_and_hold(args: (ValueProxy<i64>, DictProxy<u32, i64>, LockProxy, i64)) {
    let (num, dict, lock, v) = args;
    let _held = lock.lock().unwrap();
    num.set(&v).unwrap();
    dict.set(&7, &v).unwrap();
    // The guard is dropped as the child returns.
}

#[test]
fn what_a_child_did_is_visible_once_it_is_joined() {
    // A `set` or a release that returned before the server applied it
    // would let the parent, right after `join`, read the old value or find
    // the lock taken.
    let manager = Manager::start().unwrap();
    let num = manager.value(0i64).unwrap();
    let dict = manager.dict::<u32, i64>().unwrap();
    let lock = manager.lock().unwrap();
    for i in 1..=40 {
        let mut p = Process::new(set_and_hold, (num.clone(), dict.clone(), lock.clone(), i));
        p.start().unwrap();
        p.join().unwrap();
        assert_eq!(num.get().unwrap(), i);
        assert_eq!(dict.get(&7).unwrap(), Some(i));
        let guard = lock.try_lock().unwrap();
        assert!(guard.is_some(), "the lock is still held after join ({i})");
    }
    // The same between threads of one process, told by a channel.
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = {
        let num = num.clone();
        std::thread::spawn(move || {
            for i in 0..200i64 {
                num.set(&i).unwrap();
                tx.send(i).unwrap();
            }
        })
    };
    for i in rx {
        assert!(num.get().unwrap() >= i);
    }
    writer.join().unwrap();
}

#[test]
fn eight_processes_of_locked_increments() {
    let manager = Manager::start().unwrap();
    let num = manager.value(0i64).unwrap();
    let lock = manager.lock().unwrap();
    let mut ps: Vec<_> = (0..8)
        .map(|_| Process::new(locked_add, (num.clone(), lock.clone(), 1, 1_000)))
        .collect();
    for p in &mut ps {
        p.start().unwrap();
    }
    for p in &mut ps {
        p.join().unwrap();
    }
    assert_eq!(num.get().unwrap(), 8_000);
}

/// One step of the proptest model.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum Step {
    Insert(u8, i32),
    Remove(u8),
    Push(i32),
    Pop,
    RemoveItem(i32),
    Reverse,
    Count(i32),
}

/// A key of the shared dict: (process, key).
type Key = (u8, u8);
/// What a process's model ends with: its dict entries and its list.
type Model = (Vec<(Key, i32)>, Vec<i32>);

/// Applies `steps` to the dict (keys tagged with `who`) and to the list
/// (which only this process touches), and returns what a local model saw.
fn run_steps(args: (DictProxy<Key, i32>, ListProxy<i32>, u8, Vec<Step>)) -> Model {
    let (dict, list, who, steps) = args;
    let mut model: Vec<(Key, i32)> = Vec::new();
    let mut lmodel = Vec::new();
    for s in steps {
        match s {
            Step::Insert(k, v) => {
                let old = dict.insert((who, k), v).unwrap();
                let pos = model.iter().position(|(mk, _)| *mk == (who, k));
                let expect_old = pos.map(|i| std::mem::replace(&mut model[i].1, v));
                if pos.is_none() {
                    model.push(((who, k), v));
                }
                assert_eq!(old, expect_old);
            }
            Step::Remove(k) => {
                let old = dict.remove(&(who, k)).unwrap();
                let pos = model.iter().position(|(mk, _)| *mk == (who, k));
                assert_eq!(old, pos.map(|i| model.remove(i).1));
            }
            Step::Push(v) => {
                list.push(&v).unwrap();
                lmodel.push(v);
            }
            Step::Pop => {
                let got = list.pop().ok();
                assert_eq!(got, lmodel.pop());
            }
            Step::RemoveItem(v) => {
                let pos = lmodel.iter().position(|x| *x == v);
                assert_eq!(list.remove(&v).is_ok(), pos.is_some());
                if let Some(i) = pos {
                    lmodel.remove(i);
                }
            }
            Step::Reverse => {
                list.reverse().unwrap();
                lmodel.reverse();
            }
            Step::Count(v) => {
                let n = lmodel.iter().filter(|x| **x == v).count();
                assert_eq!(list.count(&v).unwrap(), n);
            }
        }
    }
    (model, lmodel)
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..8, any::<i32>()).prop_map(|(k, v)| Step::Insert(k, v)),
        (0u8..8).prop_map(Step::Remove),
        (0i32..4).prop_map(Step::Push),
        Just(Step::Pop),
        (0i32..4).prop_map(Step::RemoveItem),
        Just(Step::Reverse),
        (0i32..4).prop_map(Step::Count),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn dict_and_list_operations_match_a_model(plans in prop::collection::vec(prop::collection::vec(step(), 0..40), 1..4)) {
        let manager = Manager::start().unwrap();
        let dict = manager.dict::<(u8, u8), i32>().unwrap();
        let mut results = Vec::new();
        let mut ps = Vec::new();
        for (who, plan) in plans.iter().enumerate() {
            let list = manager.list::<i32>().unwrap();
            let mut p = Process::new(run_steps, (dict.clone(), list.clone(), who as u8, plan.clone()));
            p.start().unwrap();
            ps.push((p, list));
        }
        for (mut p, list) in ps {
            let (model, lmodel) = p.join().unwrap();
            prop_assert_eq!(list.snapshot().unwrap(), lmodel);
            results.extend(model);
        }
        // Every process's own keys are as its model says.
        let mut items = dict.items().unwrap();
        items.sort();
        results.sort();
        prop_assert_eq!(items, results);
    }
}
