//! Durations and sizes as people write them (`2s`, `500ms`, `10MiB`), for
//! the flags that sit beside the millisecond and byte ones, and ages as
//! people read them (`3 min ago`, `in 89 days`) for tables.

use std::time::Duration;

/// A duration such as `2s`, `500ms`, `1m 30s` or `1h` (humantime). A bare
/// number is refused: its unit would be a guess.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "{s:?} has no unit: write {t}ms, {t}s or {t}m (or use the flag ending in -ms)"
        ));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("{s:?} is not a duration ({e}): write e.g. 500ms, 5s, 2m or 1h 30m"))
}

/// A duration that must fit in whole milliseconds as a u64 (what the
/// wire's `_ms` fields carry).
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let d = parse_duration(s)?;
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(format!(
            "{s:?} is finer than a millisecond: round it to whole ms"
        ));
    }
    u64::try_from(d.as_millis()).map_err(|_| format!("{s:?} is too long"))
}

/// Whole seconds: a bare number (`90`, as the flag always took), or a
/// duration (`5m`, `1h`) that comes to whole seconds.
pub fn parse_secs(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Ok(n);
    }
    let d = parse_duration(t)?;
    if d.subsec_nanos() != 0 {
        return Err(format!(
            "{s:?} is not whole seconds: round it (e.g. 2s, 5m)"
        ));
    }
    Ok(d.as_secs())
}

/// A size (as [`parse_size`]) that fits in 32 bits (at most 4 GiB - 1).
pub fn parse_size_u32(s: &str) -> Result<u32, String> {
    let n = parse_size(s)?;
    u32::try_from(n).map_err(|_| format!("{s:?} is too large: at most 4GiB minus one byte"))
}

/// The interval of `--watch`: seconds as a bare number (`2`), or a
/// duration (`500ms`, `1m`); at least 100 ms, so a watch cannot hammer a
/// node.
pub fn parse_watch_interval(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let d = match t.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => parse_duration(t)?,
    };
    if d < Duration::from_millis(100) {
        return Err(format!(
            "{s:?} is too short: watch at most every 100ms (e.g. --watch 2)"
        ));
    }
    Ok(d)
}

/// The units a size may have; a bare number is bytes.
const SIZE_UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
];

/// A size such as `4096`, `64KiB`, `10 MiB`, `1.5GiB` or `2MB` (binary
/// units are powers of 1024, decimal ones of 1000; the unit's case does not
/// matter). It must come to a whole number of bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    if num.is_empty() {
        return Err(format!(
            "{s:?} is not a size: write e.g. 4096, 64KiB, 10MiB or 1GiB"
        ));
    }
    let unit_lower = unit.to_ascii_lowercase();
    let mult = if unit.is_empty() {
        1
    } else {
        match SIZE_UNITS.iter().find(|(u, _)| *u == unit_lower) {
            Some((_, m)) => *m,
            None => {
                return Err(format!(
                    "{s:?} has an unknown unit {unit:?}: use B, KiB, MiB, GiB, KB, MB or GB \
                     (KiB = 1024 bytes, KB = 1000)"
                ))
            }
        }
    };
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    if frac.contains('.') || (whole.is_empty() && frac.is_empty()) || frac.len() > 9 {
        return Err(format!(
            "{s:?} is not a size: write e.g. 4096, 64KiB, 10MiB or 1.5GiB"
        ));
    }
    let too_big = || format!("{s:?} is too large");
    let digits: u128 = format!("{whole}{frac}").parse().map_err(|_| too_big())?;
    let scale = 10u128.pow(frac.len() as u32);
    let bytes = digits.checked_mul(mult as u128).ok_or_else(too_big)?;
    if bytes % scale != 0 {
        return Err(format!("{s:?} is not a whole number of bytes"));
    }
    u64::try_from(bytes / scale).map_err(|_| too_big())
}

/// How long ago (or ahead) `then_ms` is from `now_ms`, in words: `just
/// now`, `42 s ago`, `3 min ago`, `5 h ago`, `in 89 days`.
pub fn relative(then_ms: u64, now_ms: u64) -> String {
    let (diff, past) = if now_ms >= then_ms {
        (now_ms - then_ms, true)
    } else {
        (then_ms - now_ms, false)
    };
    let secs = diff / 1000;
    let amount = match secs {
        0 => return "just now".to_string(),
        s if s < 60 => format!("{s} s"),
        s if s < 3_600 => format!("{} min", s / 60),
        s if s < 48 * 3_600 => format!("{} h", s / 3_600),
        s => format!("{} days", s / 86_400),
    };
    if past {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

/// Milliseconds since the epoch now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_and_decimal_units_and_bare_bytes() {
        for (s, want) in [
            ("4096", 4096),
            ("0", 0),
            ("1B", 1),
            ("64KiB", 65_536),
            ("10MiB", 10 << 20),
            ("10 MiB", 10 << 20),
            ("10mib", 10 << 20),
            ("1GiB", 1 << 30),
            ("1.5GiB", 3 << 29),
            ("2KB", 2_000),
            ("3MB", 3_000_000),
            ("1GB", 1_000_000_000),
            ("0.5KiB", 512),
        ] {
            assert_eq!(parse_size(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn a_bad_size_says_what_to_write() {
        let e = parse_size("10M").unwrap_err();
        assert!(
            e.contains("unknown unit \"M\"") && e.contains("KiB = 1024"),
            "{e}"
        );
        assert!(parse_size("MiB").unwrap_err().contains("is not a size"));
        assert!(parse_size("").unwrap_err().contains("is not a size"));
        assert!(parse_size("1.2.3KiB")
            .unwrap_err()
            .contains("is not a size"));
        assert!(parse_size("0.3B")
            .unwrap_err()
            .contains("whole number of bytes"));
        assert!(parse_size("-1").unwrap_err().contains("is not a size"));
        assert!(parse_size("99999999999TiB")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_size("99999999999999999999999999999999999999999").is_err());
    }

    #[test]
    fn durations_need_a_unit_and_fit_in_milliseconds() {
        assert_eq!(parse_duration_ms("5s"), Ok(5_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("1m 30s"), Ok(90_000));
        let e = parse_duration_ms("500").unwrap_err();
        assert!(e.contains("has no unit") && e.contains("500ms"), "{e}");
        assert!(parse_duration_ms("5 parsecs")
            .unwrap_err()
            .contains("not a duration"));
        assert!(parse_duration_ms("1500us")
            .unwrap_err()
            .contains("millisecond"));
    }

    #[test]
    fn seconds_are_a_bare_number_or_a_whole_duration() {
        assert_eq!(parse_secs("120"), Ok(120));
        assert_eq!(parse_secs("5m"), Ok(300));
        assert!(parse_secs("1500ms").unwrap_err().contains("whole seconds"));
        assert!(parse_secs("later").unwrap_err().contains("not a duration"));
        assert_eq!(parse_size_u32("1MiB"), Ok(1 << 20));
        assert!(parse_size_u32("4GiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn the_watch_interval_is_seconds_or_a_duration_and_not_too_short() {
        assert_eq!(parse_watch_interval("2"), Ok(Duration::from_secs(2)));
        assert_eq!(
            parse_watch_interval("500ms"),
            Ok(Duration::from_millis(500))
        );
        assert!(parse_watch_interval("0").unwrap_err().contains("too short"));
        assert!(parse_watch_interval("10ms")
            .unwrap_err()
            .contains("too short"));
        assert!(parse_watch_interval("soon").is_err());
    }

    #[test]
    fn ages_read_in_words_both_ways() {
        let now = 1_000_000_000;
        assert_eq!(relative(now, now), "just now");
        assert_eq!(relative(now - 42_000, now), "42 s ago");
        assert_eq!(relative(now - 180_000, now), "3 min ago");
        assert_eq!(relative(now - 5 * 3_600_000, now), "5 h ago");
        assert_eq!(relative(now + 89 * 86_400_000 + 5, now), "in 89 days");
        assert_eq!(relative(now + 30_000, now), "in 30 s");
    }
}
