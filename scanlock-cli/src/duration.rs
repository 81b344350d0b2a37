//! Durations on the command line (`10s`, `500ms`, `1.5s`, `2m`, `1m30s`) and for people
//! (`3m12s`).
//!
//! A few lines here instead of a crate: the grammar is tiny and a dependency would be
//! larger than the code.

use std::time::Duration;

/// Parses `10s`, `500ms`, `1.5s`, `2m`, `1h`, `1m30s`, or a bare number of seconds
/// (`10`, as `flock -w 10`). Units: `ms`, `s`, `m`, `h`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. 10s, 500ms, 1.5s or 2m".to_owned());
    }
    let bad = || format!("invalid duration `{text}`; write e.g. 10s, 500ms, 1.5s, 2m or 1m30s");
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() {
            return Err(bad());
        }
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale = match unit {
            // A bare number is seconds, but only on its own: `1m30` is more likely a typo.
            "" if rest.len() == s.len() => 1.0,
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = next;
    }
    Duration::try_from_secs_f64(total).map_err(|_| format!("duration `{text}` is too long"))
}

/// A short human form: `0s`, `12s`, `3m12s`, `1h02m`, `2d03h`; precise to the second
/// below an hour, which is what a person comparing holders needs.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Like [`human`], but keeps tenths below ten seconds, for short waits (`0.3s`).
pub fn human_precise(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        human(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let ms = Duration::from_millis;
        assert_eq!(parse("10s"), Ok(ms(10_000)));
        assert_eq!(parse("500ms"), Ok(ms(500)));
        assert_eq!(parse("1.5s"), Ok(ms(1500)));
        assert_eq!(parse("2m"), Ok(ms(120_000)));
        assert_eq!(parse("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse("10"), Ok(ms(10_000)));
        assert_eq!(parse("0.25"), Ok(ms(250)));
        assert_eq!(parse(" 0s "), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "", "s", "10x", "-1s", "1.2.3s", "1m30", "ms", ".", "10 s", "1e3s", "inf",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(parse("99999999999999999999h").is_err());
    }

    #[test]
    fn human_forms() {
        let s = Duration::from_secs;
        assert_eq!(human(Duration::from_millis(400)), "0s");
        assert_eq!(human(s(12)), "12s");
        assert_eq!(human(s(192)), "3m12s");
        assert_eq!(human(s(3720)), "1h02m");
        assert_eq!(human(s(2 * 86_400 + 3 * 3600 + 59)), "2d03h");
        assert_eq!(human_precise(Duration::from_millis(300)), "0.3s");
        assert_eq!(human_precise(s(75)), "1m15s");
    }
}
