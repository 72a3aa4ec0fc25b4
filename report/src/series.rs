//! Latency and throughput series over time: raw latency points decimated to what a plot can
//! show (keeping every bucket's extremes), p50 / p99 per bucket, completions per bucket.

use crate::data::{Timeline, Unit, OP_FIELDS};
use serde::Serialize;

/// Columns of the raw latency plot after decimation. A plot is at most a couple of thousand
/// pixels wide; keeping the lowest and highest point of each status in each column draws the
/// same picture as every point (a column's points lie between its extremes) with a bounded
/// number of points, and never hides an outlier.
pub const COLUMNS: i64 = 1500;

/// Buckets of the quantile and throughput series at most; beyond that the bucket widens.
pub const MAX_BUCKETS: i64 = 2000;

/// What the latency and throughput plots draw.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// Bucket width on the axis (one second of µs, widened for long runs; a hundredth of
    /// the history for an event axis).
    pub bucket: i64,
    /// Decimated raw points, three integers each: invoke position, latency, status.
    pub lat: Vec<i64>,
    /// Per bucket with `ok` operations: bucket index, median latency of its `ok` operations.
    pub p50: Vec<[i64; 2]>,
    /// Per bucket with `ok` operations: bucket index, 99th percentile latency.
    pub p99: Vec<[i64; 2]>,
    /// Per bucket: completions that were ok, fail, info.
    pub tput: Vec<[u32; 3]>,
}

/// The bucket width for an axis ending at `t_end`.
pub fn bucket_width(unit: Unit, t_end: i64) -> i64 {
    let base = match unit {
        Unit::Us => 1_000_000,
        Unit::Event => (t_end / 100).max(1),
    };
    let n = t_end / base + 1;
    if n > MAX_BUCKETS {
        // Whole multiples of the base, so "per second" stays "per N seconds".
        base * ((n + MAX_BUCKETS - 1) / MAX_BUCKETS)
    } else {
        base
    }
}

/// Nearest-rank quantile of sorted, non-empty `v`.
pub fn quantile(v: &[i64], q: f64) -> i64 {
    let rank = (q * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Keeps, per column and status, the points with the lowest and the highest latency.
/// `points` are (position, latency, status); the result is sorted by position.
pub fn decimate(points: &[(i64, i64, i64)], t_end: i64, columns: i64) -> Vec<(i64, i64, i64)> {
    let width = (t_end.max(0) + columns - 1) / columns.max(1);
    let width = width.max(1);
    // (column, status) -> (index of min, index of max)
    let mut best: std::collections::HashMap<(i64, i64), (usize, usize)> = Default::default();
    for (i, &(t, lat, st)) in points.iter().enumerate() {
        let e = best.entry((t / width, st)).or_insert((i, i));
        if lat < points[e.0].1 {
            e.0 = i;
        }
        if lat > points[e.1].1 {
            e.1 = i;
        }
    }
    let mut keep: Vec<usize> = best.values().flat_map(|&(a, b)| [a, b]).collect();
    keep.sort_unstable();
    keep.dedup();
    keep.into_iter().map(|i| points[i]).collect()
}

/// Builds the series from a timeline.
pub fn series(t: &Timeline) -> Series {
    let bucket = bucket_width(t.unit, t.t_end);
    let buckets = (t.t_end / bucket + 1) as usize;
    let mut points = Vec::new();
    let mut ok_lat: Vec<Vec<i64>> = vec![Vec::new(); buckets];
    let mut tput = vec![[0u32; 3]; buckets];
    for op in t.ops.chunks_exact(OP_FIELDS) {
        let (start, end, status) = (op[1], op[2], op[3]);
        if end < 0 {
            continue;
        }
        let lat = end - start;
        points.push((start, lat, status));
        if status == crate::data::OK {
            ok_lat[(start / bucket) as usize].push(lat);
        }
        tput[(end / bucket) as usize][status as usize] += 1;
    }
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    for (i, v) in ok_lat.iter_mut().enumerate() {
        if v.is_empty() {
            continue;
        }
        v.sort_unstable();
        p50.push([i as i64, quantile(v, 0.5)]);
        p99.push([i as i64, quantile(v, 0.99)]);
    }
    let lat = decimate(&points, t.t_end, COLUMNS)
        .into_iter()
        .flat_map(|(a, b, c)| [a, b, c])
        .collect();
    Series {
        bucket,
        lat,
        p50,
        p99,
        tput,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&[7], 0.99), 7);
        assert_eq!(quantile(&[1, 2], 0.5), 1);
    }

    #[test]
    fn decimation_keeps_extremes_and_bounds_the_count() {
        // A deterministic pseudo-random cloud with two planted outliers.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut pts: Vec<(i64, i64, i64)> = (0..100_000)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (i * 10, 1_000 + (x % 5_000) as i64, (x % 3) as i64)
            })
            .collect();
        pts[31_337].1 = 9_999_999;
        pts[77_777].1 = 1;
        let kept = decimate(&pts, 1_000_000, COLUMNS);
        assert!(
            kept.len() <= (COLUMNS as usize + 1) * 3 * 2,
            "{}",
            kept.len()
        );
        assert!(kept.len() < pts.len() / 10);
        assert!(kept.contains(&pts[31_337]) && kept.contains(&pts[77_777]));
        // Every column keeps its own extremes, not just the global ones.
        let width = (1_000_000 + COLUMNS - 1) / COLUMNS;
        for col in [0, 700, 1400] {
            let in_col = |p: &&(i64, i64, i64)| p.0 / width == col && p.2 == 0;
            let max = pts.iter().filter(in_col).map(|p| p.1).max().unwrap();
            let min = pts.iter().filter(in_col).map(|p| p.1).min().unwrap();
            let kept_col: Vec<i64> = kept.iter().filter(in_col).map(|p| p.1).collect();
            assert!(kept_col.contains(&max) && kept_col.contains(&min));
        }
        assert!(kept.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn buckets_are_seconds_widened_for_long_runs() {
        assert_eq!(bucket_width(Unit::Us, 60_000_000), 1_000_000);
        assert_eq!(bucket_width(Unit::Us, 9_999_000_000), 5_000_000);
        assert_eq!(bucket_width(Unit::Us, 10_000_000_000), 6_000_000);
        assert_eq!(bucket_width(Unit::Event, 50), 1);
        assert_eq!(bucket_width(Unit::Event, 5_000), 50);
    }
}
