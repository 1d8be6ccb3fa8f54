//! Property tests: map, imap and starmap equal the serial map for random
//! inputs and chunk sizes; imap_unordered gives a permutation.

use std::sync::OnceLock;

use mp_pool::Pool;
use proptest::prelude::*;

use crate::inc;

fn mul(xy: (i64, i64)) -> i64 {
    xy.0.wrapping_mul(xy.1)
}

/// One pool for every case: creating pools is not what is tested here.
fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool::new(2).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn map_family_equals_the_serial_map(
        items in proptest::collection::vec(any::<i64>().prop_map(|x| x / 2), 0..5000),
        chunksize in 1usize..100,
    ) {
        let _g = crate::shared();
        let want: Vec<i64> = items.iter().map(|x| inc(*x)).collect();
        let pool = pool();
        prop_assert_eq!(&pool.map(inc, items.clone(), Some(chunksize)).unwrap(), &want);
        let got: Vec<i64> =
            pool.imap(inc, items.clone(), Some(chunksize)).unwrap().map(Result::unwrap).collect();
        prop_assert_eq!(&got, &want);
        let mut got: Vec<i64> = pool
            .imap_unordered(inc, items.clone(), Some(chunksize))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut sorted = want.clone();
        got.sort_unstable();
        sorted.sort_unstable();
        prop_assert_eq!(got, sorted);
        let pairs: Vec<(i64, i64)> = items.iter().map(|x| (*x, 3)).collect();
        let want: Vec<i64> = pairs.iter().map(|p| mul(*p)).collect();
        prop_assert_eq!(pool.starmap(mul, pairs, Some(chunksize)).unwrap(), want);
    }
}
