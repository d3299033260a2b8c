//! Latency percentiles as keeper computes them: the nearest rank, so a
//! percentile is always one of the measured values and both database backends
//! compute the same one (the rollup's SQL ranks with [`rank`]'s formula).

/// The 1-based rank of the `pct` percentile among `n` sorted values:
/// ⌈pct × n / 100⌉, at least 1. In integers, as the SQL writes it:
/// `(pct * n + 99) / 100`.
pub fn rank(pct: u32, n: u64) -> u64 {
    ((u64::from(pct) * n).div_ceil(100)).max(1)
}

/// The `pct` percentile (0–100) of `values` by nearest rank; `None` when
/// there are none. NaN sorts last.
pub fn percentile(values: &[f64], pct: u32) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = rank(pct.min(100), sorted.len() as u64) - 1;
    sorted.get(usize::try_from(at).ok()?).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_of_ten_values() {
        let v: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        assert_eq!(percentile(&v, 50), Some(5.0));
        assert_eq!(percentile(&v, 95), Some(10.0));
        assert_eq!(percentile(&v, 90), Some(9.0));
        assert_eq!(percentile(&v, 100), Some(10.0));
        assert_eq!(percentile(&v, 0), Some(1.0));
    }

    #[test]
    fn one_value_and_none() {
        assert_eq!(percentile(&[42.5], 50), Some(42.5));
        assert_eq!(percentile(&[42.5], 95), Some(42.5));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    // The SQL's own spelling, on purpose.
    #[allow(clippy::manual_div_ceil)]
    fn the_rank_matches_the_integer_formula_the_sql_uses() {
        for n in 1..=500u64 {
            for pct in [50u32, 95] {
                let sql = ((u64::from(pct) * n + 99) / 100).max(1);
                assert_eq!(rank(pct, n), sql, "pct {pct}, n {n}");
            }
        }
        // 100 values: p95 is the 95th, p50 the 50th; 101 values: the 96th and 51st.
        assert_eq!((rank(95, 100), rank(50, 100)), (95, 50));
        assert_eq!((rank(95, 101), rank(50, 101)), (96, 51));
    }
}
