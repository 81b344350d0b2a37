//! Presentation helpers shared by the commands: holder fields as people read them,
//! timestamps, and fitting text into columns.

use std::time::{Duration, SystemTime};

use scanlock::LockInfo;

use crate::duration;

/// How long `holder` has held its lock, when known. Holders seen only through the
/// kernel (e.g. `flock(1)`) carry `UNIX_EPOCH`; a clock ahead of ours counts as zero.
pub fn held_for(holder: &LockInfo, now: SystemTime) -> Option<Duration> {
    if holder.acquired_at == SystemTime::UNIX_EPOCH {
        return None;
    }
    Some(now.duration_since(holder.acquired_at).unwrap_or_default())
}

/// The user, or `?` for holders without scanlock metadata.
pub fn user(holder: &LockInfo) -> &str {
    if holder.user.is_empty() {
        "?"
    } else {
        &holder.user
    }
}

/// The host, or `?` when unknown.
pub fn host(holder: &LockInfo) -> &str {
    if holder.hostname.is_empty() {
        "?"
    } else {
        &holder.hostname
    }
}

/// The thread as an operator can find it: its name, else the kernel thread id (what
/// `ps -L` and `top -H` show) rather than Rust's internal `ThreadId(N)`; `-` if unknown.
pub fn thread(holder: &LockInfo) -> String {
    if holder.thread.is_empty() {
        "-".to_owned()
    } else if holder.thread.starts_with("ThreadId(") && holder.thread_id != 0 {
        format!("tid {}", holder.thread_id)
    } else {
        holder.thread.clone()
    }
}

/// One line naming a holder, for messages: `exclusive by user "alice", pid 4242 on
/// node1 (thread main) for 3m12s`.
pub fn holder_sentence(holder: &LockInfo, now: SystemTime) -> String {
    let mut s = format!(
        "{} by user \"{}\", pid {} on {} (thread {})",
        holder.lock_type,
        user(holder),
        holder.pid,
        host(holder),
        thread(holder)
    );
    if let Some(d) = held_for(holder, now) {
        s.push_str(" for ");
        s.push_str(&duration::human(d));
    }
    s
}

/// `2024-05-01T12:03:04.250Z`: RFC 3339 in UTC with milliseconds, for `--json`.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let sod = secs % 86_400;
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        since.subsec_millis()
    )
}

/// Year, month, day of a count of days since 1970-01-01 (H. Hinnant's algorithm), so
/// that the JSON timestamps need no date crate.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The local wall-clock time `HH:MM:SS`, for the headers people read (`watch`).
pub fn local_clock(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value to be overwritten.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is the thread-safe form.
    let ok = !unsafe { libc::localtime_r(&secs, &mut tm) }.is_null();
    if ok {
        format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
    } else {
        rfc3339_utc(t)[11..19].to_owned()
    }
}

/// Width in terminal columns, counting each `char` as one (enough for lock names, user
/// and host names, and the `×` of the state column).
pub fn width(s: &str) -> usize {
    s.chars().count()
}

/// `s` cut to `w` columns, ending in `…` when it had to be cut.
pub fn fit(s: &str, w: usize) -> String {
    if width(s) <= w {
        return s.to_owned();
    }
    if w == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(w - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        let at = |s: u64, ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(s * 1000 + ms);
        assert_eq!(rfc3339_utc(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(at(951_782_400, 5)), "2000-02-29T00:00:00.005Z");
        assert_eq!(
            rfc3339_utc(at(1_714_565_000, 250)),
            "2024-05-01T12:03:20.250Z"
        );
        assert_eq!(
            rfc3339_utc(at(4_102_444_799, 999)),
            "2099-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn fit_cuts_with_an_ellipsis() {
        assert_eq!(fit("worker", 8), "worker");
        assert_eq!(fit("a-long-user", 6), "a-lon…");
        assert_eq!(fit("ééééé", 3), "éé…");
        assert_eq!(local_clock(SystemTime::now()).len(), 8);
    }
}
