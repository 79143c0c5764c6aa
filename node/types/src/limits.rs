//! Bounds on every number and name in site control, checked in one place:
//! by the Site Configuration Manager on every CT1 (a CT1 out of bounds goes
//! to the bad box) and by the Hierarchy Manager at the call that makes a
//! change (refused there, before anything is sent). Values outside them
//! either break something (an ID counter near 2^64 wraps and hands out a
//! range twice) or cannot be meant (a retry delay of a year).
//!
//! The counts also bound a CT1's size well below a link's frame limit, so a
//! change that passes here can always be sent.

use crate::model::*;

/// SMS unique IDs are the site code and eight digits.
pub const MAX_UNIQUE_ID: u64 = 99_999_999;
/// Longest watchdog polling interval: a day.
pub const MAX_POLLING_INTERVAL_MS: u64 = 24 * 3_600_000;
/// Longest site name (SMS allowed 50 characters).
pub const MAX_SITE_NAME: usize = 50;
pub const MAX_DOMAINS: usize = 64;
/// Domain names are NetBIOS names: at most 15 characters.
pub const MAX_DOMAIN_NAME: usize = 15;
pub const MAX_BROWSE_ENTRIES: usize = 64;
pub const MAX_SERVER_NAME: usize = 255;
pub const MAX_ADDRESSES: usize = 256;
pub const MAX_RETRY_COUNT: u32 = 1_000;
pub const MIN_RETRY_DELAY_MS: u64 = 100;
pub const MAX_RETRY_DELAY_MS: u64 = 3_600_000;
pub const MAX_CONCURRENT_SENDINGS: u32 = 4_096;
/// 10 GB/s: above any link this runs on; 0 means unlimited.
pub const MAX_RATE_LIMIT: u64 = 10_000_000_000;
pub const MAX_SCHEDULE_RULES: usize = 24;
/// An address's keepalive: a probe every second at most (more is noise on
/// the link), an hour at least (longer and a dead link goes unnoticed for
/// longer than any retry delay).
pub const MIN_KEEPALIVE_SECS: u32 = 1;
pub const MAX_KEEPALIVE_SECS: u32 = 3_600;
/// Management points per site.
pub const MAX_MANAGEMENT_POINTS: usize = 32;

/// Checks the bounds of a site control image; the error names the value
/// and the allowed range.
pub fn check_site_control(c: &SiteControl) -> Result<(), String> {
    if c.polling_interval_ms > MAX_POLLING_INTERVAL_MS {
        return Err(format!(
            "polling interval {} ms is above the maximum of {MAX_POLLING_INTERVAL_MS} ms (a day)",
            c.polling_interval_ms
        ));
    }
    check_site_name(&c.site_name)?;
    if c.next_unique_id == 0 || c.next_unique_id > MAX_UNIQUE_ID {
        return Err(format!(
            "next SMS unique ID {} is outside 1..={MAX_UNIQUE_ID} (IDs are eight digits)",
            c.next_unique_id
        ));
    }
    if c.domains.len() > MAX_DOMAINS {
        return Err(format!(
            "{} domains; a site lists at most {MAX_DOMAINS}",
            c.domains.len()
        ));
    }
    for d in &c.domains {
        check_domain_name(&d.name)?;
        if d.browse.len() > MAX_BROWSE_ENTRIES {
            return Err(format!(
                "domain {} lists {} browse entries; at most {MAX_BROWSE_ENTRIES}",
                d.name,
                d.browse.len()
            ));
        }
        for b in &d.browse {
            check_server_name(b).map_err(|e| format!("domain {}: {e}", d.name))?;
        }
    }
    if c.addresses.len() > MAX_ADDRESSES {
        return Err(format!(
            "{} addresses; a site has at most {MAX_ADDRESSES}",
            c.addresses.len()
        ));
    }
    for a in &c.addresses {
        check_address(a).map_err(|e| format!("the address of site {}: {e}", a.site_code))?;
    }
    check_management_points(&c.management_points)?;
    crate::status_rules::check_rules(&c.status_rules)?;
    Ok(())
}

/// At most [`MAX_MANAGEMENT_POINTS`], each a HOST:PORT server named once,
/// and exactly one default when there are any.
pub fn check_management_points(mps: &[crate::mp::ManagementPoint]) -> Result<(), String> {
    if mps.len() > MAX_MANAGEMENT_POINTS {
        return Err(format!(
            "{} management points; a site has at most {MAX_MANAGEMENT_POINTS}",
            mps.len()
        ));
    }
    for (i, m) in mps.iter().enumerate() {
        check_server_name(&m.server).map_err(|e| format!("management point: {e}"))?;
        if !m.server.contains(':') {
            return Err(format!(
                "management point server {} needs a port (HOST:PORT of its sms-node)",
                clip(&m.server)
            ));
        }
        if mps[..i]
            .iter()
            .any(|o| o.server.eq_ignore_ascii_case(&m.server))
        {
            return Err(format!(
                "server {} is listed twice as a management point",
                clip(&m.server)
            ));
        }
    }
    let defaults = mps.iter().filter(|m| m.is_default).count();
    if !mps.is_empty() && defaults != 1 {
        return Err(format!(
            "a site with management points has exactly one default; this one has {defaults}"
        ));
    }
    Ok(())
}

pub fn check_site_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("the site name is empty".into());
    }
    if name.chars().count() > MAX_SITE_NAME {
        return Err(format!(
            "the site name has {} characters; at most {MAX_SITE_NAME}",
            name.chars().count()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("the site name contains a control character".into());
    }
    Ok(())
}

pub fn check_domain_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_DOMAIN_NAME {
        return Err(format!(
            "domain name {name:?} must have 1 to {MAX_DOMAIN_NAME} characters"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "domain name {name:?} may only contain A-Z, 0-9, '-' and '_'"
        ));
    }
    Ok(())
}

pub fn check_server_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_SERVER_NAME {
        return Err(format!(
            "server {s:?} must have 1 to {MAX_SERVER_NAME} characters"
        ));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "server {s:?} contains a space or control character"
        ));
    }
    Ok(())
}

pub fn check_address(a: &Address) -> Result<(), String> {
    if a.retry_count == 0 || a.retry_count > MAX_RETRY_COUNT {
        return Err(format!(
            "retry count {} is outside 1..={MAX_RETRY_COUNT}",
            a.retry_count
        ));
    }
    if !(MIN_RETRY_DELAY_MS..=MAX_RETRY_DELAY_MS).contains(&a.retry_delay_ms) {
        return Err(format!(
            "retry delay {} ms is outside {MIN_RETRY_DELAY_MS}..={MAX_RETRY_DELAY_MS} ms",
            a.retry_delay_ms
        ));
    }
    if a.concurrent_sendings == 0 || a.concurrent_sendings > MAX_CONCURRENT_SENDINGS {
        return Err(format!(
            "concurrent sendings {} is outside 1..={MAX_CONCURRENT_SENDINGS}",
            a.concurrent_sendings
        ));
    }
    if a.rate_limit_bytes_per_sec > MAX_RATE_LIMIT {
        return Err(format!(
            "rate limit {} bytes/s is above {MAX_RATE_LIMIT} (0 means unlimited)",
            a.rate_limit_bytes_per_sec
        ));
    }
    if a.schedule.len() > MAX_SCHEDULE_RULES {
        return Err(format!(
            "{} schedule rules; at most {MAX_SCHEDULE_RULES}",
            a.schedule.len()
        ));
    }
    if let Some(k) = a.keepalive_secs {
        check_keepalive_secs(k)?;
    }
    for r in &a.schedule {
        if r.start_hour > 23 || r.end_hour > 24 || r.start_hour == r.end_hour {
            return Err(format!(
                "schedule rule {}-{} h must start at 0..=23, end at 0..=24, and not end where it starts",
                r.start_hour, r.end_hour
            ));
        }
    }
    Ok(())
}

/// The bounds of an address's keepalive interval, with the way out.
pub fn check_keepalive_secs(k: u32) -> Result<(), String> {
    if !(MIN_KEEPALIVE_SECS..=MAX_KEEPALIVE_SECS).contains(&k) {
        return Err(format!(
            "keepalive {k} s is outside {MIN_KEEPALIVE_SECS}..={MAX_KEEPALIVE_SECS} s; give a value \
             in that range, or `default` for the node's --keepalive-secs"
        ));
    }
    Ok(())
}

/// At most 64 characters of a value for an error message: an error never
/// echoes a whole hostile value (a multi-megabyte name, say).
pub fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control() -> SiteControl {
        SiteControl {
            site_code: "S01".parse().unwrap(),
            site_name: "S01 secondary site".into(),
            serial: 3,
            parent_site_code: Some("PRI".parse().unwrap()),
            polling_interval_ms: DEFAULT_POLLING_INTERVAL_MS,
            domains: vec![Domain {
                name: "CORP".into(),
                browse: vec!["m1.corp:8521".into()],
                logon_servers: vec![],
            }],
            addresses: vec![Address::new("PRI".parse().unwrap(), "p:1".into())],
            version: "0.1.0".into(),
            next_unique_id: 1,
            management_points: vec![],
            status_rules: vec![],
        }
    }

    #[test]
    fn an_ordinary_control_passes() {
        assert_eq!(check_site_control(&control()), Ok(()));
    }

    #[test]
    fn an_id_counter_near_the_top_is_refused() {
        let mut c = control();
        c.next_unique_id = u64::MAX - 5;
        let e = check_site_control(&c).unwrap_err();
        assert!(e.contains("99999999"), "{e}");
        c.next_unique_id = MAX_UNIQUE_ID;
        assert!(check_site_control(&c).is_ok());
        c.next_unique_id = 0;
        assert!(check_site_control(&c).is_err());
    }

    #[test]
    fn intervals_delays_and_rates_are_bounded() {
        let mut c = control();
        c.polling_interval_ms = u64::MAX;
        assert!(check_site_control(&c)
            .unwrap_err()
            .contains("polling interval"));
        let mut c = control();
        c.addresses[0].retry_delay_ms = u64::MAX;
        assert!(check_site_control(&c).unwrap_err().contains("retry delay"));
        let mut c = control();
        c.addresses[0].retry_count = 0;
        assert!(check_site_control(&c).unwrap_err().contains("retry count"));
        let mut c = control();
        c.addresses[0].concurrent_sendings = 100_000;
        assert!(check_site_control(&c).unwrap_err().contains("concurrent"));
        let mut c = control();
        c.addresses[0].rate_limit_bytes_per_sec = u64::MAX;
        assert!(check_site_control(&c).unwrap_err().contains("rate limit"));
    }

    #[test]
    fn keepalive_is_optional_and_bounded() {
        let mut c = control();
        assert_eq!(c.addresses[0].keepalive_secs, None, "default: the node's");
        for ok in [MIN_KEEPALIVE_SECS, 30, MAX_KEEPALIVE_SECS] {
            c.addresses[0].keepalive_secs = Some(ok);
            assert_eq!(check_site_control(&c), Ok(()), "{ok}");
        }
        for bad in [0, MAX_KEEPALIVE_SECS + 1, u32::MAX] {
            c.addresses[0].keepalive_secs = Some(bad);
            let e = check_site_control(&c).unwrap_err();
            assert!(
                e.contains(&format!("keepalive {bad} s is outside 1..=3600 s"))
                    && e.contains("site PRI")
                    && e.contains("`default`"),
                "{e}"
            );
        }
    }

    #[test]
    fn rule_counts_and_hours_are_bounded() {
        let mut c = control();
        let rule = ScheduleRule {
            start_hour: 8,
            end_hour: 18,
            lowest: Priority::High,
        };
        c.addresses[0].schedule = vec![rule.clone(); MAX_SCHEDULE_RULES + 1];
        assert!(check_site_control(&c)
            .unwrap_err()
            .contains("schedule rules"));
        c.addresses[0].schedule = vec![ScheduleRule {
            start_hour: 25,
            ..rule.clone()
        }];
        assert!(check_site_control(&c).is_err());
        c.addresses[0].schedule = vec![ScheduleRule {
            start_hour: 8,
            end_hour: 8,
            ..rule
        }];
        assert!(check_site_control(&c).is_err());
    }

    #[test]
    fn names_are_bounded_in_length_and_characters() {
        let mut c = control();
        c.site_name = "x".repeat(MAX_SITE_NAME + 1);
        assert!(check_site_control(&c).unwrap_err().contains("at most 50"));
        c.site_name = "bad\u{7}name".into();
        assert!(check_site_control(&c).is_err());
        let mut c = control();
        c.domains[0].name = "A-VERY-LONG-DOMAIN".into();
        assert!(check_site_control(&c).unwrap_err().contains("1 to 15"));
        c.domains[0].name = "CO RP".into();
        assert!(check_site_control(&c).is_err());
        let mut c = control();
        c.domains[0].browse = vec!["has space:1".into()];
        assert!(check_site_control(&c).unwrap_err().contains("domain CORP"));
        let mut c = control();
        c.domains = vec![c.domains[0].clone(); MAX_DOMAINS + 1];
        assert!(check_site_control(&c).unwrap_err().contains("domains"));
    }
}
