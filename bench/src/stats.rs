//! Medians, percentiles and number formatting.

/// The median of `v` (sorts it); `NaN` when empty.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Nearest-rank percentile `p` (0–100) of sorted `v`.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let x = (p / 100.0) * sorted.len() as f64;
    // 0.999 × 1000 is 999.0000000000001 in floating point: a rank that is whole up to
    // rounding error must not be pushed up to the next sample.
    let rank = if (x - x.round()).abs() < 1e-9 {
        x.round()
    } else {
        x.ceil()
    } as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The distribution of a set of durations (ns).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Dist {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
}

impl Dist {
    /// Summarises `v` (sorts it).
    pub fn of(v: &mut [u64]) -> Dist {
        v.sort_unstable();
        Dist {
            n: v.len(),
            p50: percentile(v, 50.0),
            p99: percentile(v, 99.0),
            p999: percentile(v, 99.9),
            max: v.last().copied().unwrap_or(0),
        }
    }
}

/// Nanoseconds for a table: whole numbers from 100 up, one decimal below.
pub fn ns(v: f64) -> String {
    if !v.is_finite() {
        "–".to_owned()
    } else if v >= 100.0 {
        group(v.round() as u64)
    } else {
        format!("{v:.1}")
    }
}

/// A duration in the most readable unit (ns, µs, ms, s).
pub fn dur(ns: u64) -> String {
    let v = ns as f64;
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} µs", v / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2} ms", v / 1e6)
    } else {
        format!("{:.2} s", v / 1e9)
    }
}

/// Operations per second for a per-operation time in ns.
pub fn ops_per_s(ns_per_op: f64) -> String {
    if ns_per_op > 0.0 && ns_per_op.is_finite() {
        group((1e9 / ns_per_op).round() as u64)
    } else {
        "–".to_owned()
    }
}

/// `12345678` → `12 345 678` (thin groups read well in both Markdown and a terminal).
pub fn group(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// A ratio with two decimals and a trailing `×`.
pub fn ratio(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}×")
    } else {
        "–".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut v: Vec<u64> = (1..=1000).collect();
        let d = Dist::of(&mut v);
        assert_eq!((d.p50, d.p99, d.p999, d.max), (500, 990, 999, 1000));
        assert_eq!(percentile(&[7], 99.9), 7);
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0]), 2.5);
    }

    #[test]
    fn numbers_format_for_tables() {
        assert_eq!(group(1234567), "1 234 567");
        assert_eq!(group(123), "123");
        assert_eq!(ns(12.345), "12.3");
        assert_eq!(ns(1234.4), "1 234");
        assert_eq!(dur(1_500_000), "1.50 ms");
    }
}
