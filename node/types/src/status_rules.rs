//! Status filter rules (SMS's "status filter rules"): an ordered list in a
//! site's control that says, for the status messages stored at that site,
//! whether and at which priority they go up to the parent, how long they
//! are kept, and whom to tell (a webhook, a program).
//!
//! Rules are evaluated in order; every matching rule applies until one that
//! says `stop`. For the replication and the retention the first matching
//! rule that sets them decides (a later rule cannot undo an earlier one);
//! every matching rule's webhook and program run.

use serde::{Deserialize, Serialize};

use crate::model::{Priority, Severity, SiteCode};

/// Rules per site.
pub const MAX_STATUS_RULES: usize = 64;
/// A rule's name: a letter, then letters, digits, `-`, `_`, `.`.
pub const MAX_RULE_NAME: usize = 32;
pub const MAX_RULE_COMPONENT: usize = 64;
pub const MAX_WEBHOOK_URL: usize = 512;
/// A program's argv: entries and bytes per entry.
pub const MAX_PROGRAM_ARGS: usize = 8;
pub const MAX_PROGRAM_ARG: usize = 256;
/// Longest retention a rule may ask for: ten years.
pub const MAX_KEEP_DAYS: u32 = 3650;

/// How long status messages are kept at a site when no rule says
/// otherwise: SMS's default, a week.
pub const DEFAULT_RETENTION_MS: u64 = 7 * 24 * 3_600_000;
pub const DAY_MS: u64 = 24 * 3_600_000;

/// What the rules decided for one message at this site (nothing: the
/// defaults).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Disposition {
    pub replicate: Option<Replicate>,
    pub keep_days: Option<u32>,
}

/// How a rule matches a message's severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeverityMatch {
    AtLeast(Severity),
    Exactly(Severity),
}

/// What a rule does to a message's replication to the parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Replicate {
    /// Up at this priority, whatever the Status Manager would choose.
    At(Priority),
    /// Kept at this site only.
    Never,
}

/// One status filter rule. A matcher left empty matches every message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRule {
    pub name: String,
    /// Message ids, inclusive range (one id: `(n, n)`).
    pub ids: Option<(u32, u32)>,
    pub severity: Option<SeverityMatch>,
    /// Component name, compared without regard to case.
    pub component: Option<String>,
    /// The site that reported the message (this site or a descendant).
    pub site_code: Option<SiteCode>,
    pub replicate: Option<Replicate>,
    /// Keep matching messages this many days at this site.
    pub keep_days: Option<u32>,
    /// `http://HOST:PORT/PATH`: the message is POSTed there as JSON.
    pub webhook: Option<String>,
    /// A program and its arguments (no shell), the message as JSON on stdin.
    pub program: Vec<String>,
    /// Stop evaluating the rules after this one.
    pub stop: bool,
}

impl Severity {
    /// Informational < warning < error.
    pub fn rank(self) -> u8 {
        self as u8
    }
}

impl SeverityMatch {
    pub fn matches(self, s: Severity) -> bool {
        match self {
            SeverityMatch::AtLeast(min) => s.rank() >= min.rank(),
            SeverityMatch::Exactly(x) => s == x,
        }
    }
}

/// A webhook address split into what a plain HTTP/1.1 client needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookUrl {
    /// `HOST:PORT` (port 80 when the URL gives none).
    pub host_port: String,
    /// The path and query, at least `/`.
    pub path: String,
}

/// Parses `http://HOST[:PORT][/PATH]`. Only plain HTTP: a webhook is meant
/// for a local relay or collector, and keeps TLS out of the status path.
pub fn parse_webhook(url: &str) -> Result<WebhookUrl, String> {
    if url.len() > MAX_WEBHOOK_URL {
        return Err(format!(
            "webhook URL has {} characters; at most {MAX_WEBHOOK_URL}",
            url.len()
        ));
    }
    let Some(rest) = url.strip_prefix("http://") else {
        if url.starts_with("https://") {
            return Err(format!(
                "webhook {} uses https; only http:// is supported (point it at a local relay)",
                crate::limits::clip(url)
            ));
        }
        return Err(format!(
            "webhook {} must start with http://",
            crate::limits::clip(url)
        ));
    };
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("webhook URL contains a space or control character".into());
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!(
            "webhook {} needs a host (http://HOST:PORT/PATH, no user info)",
            crate::limits::clip(url)
        ));
    }
    // The port is after the last ':' unless that is inside an IPv6 literal.
    let host_port = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => {
            let port = &authority[i + 1..];
            port.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    format!(
                        "webhook {}: port {port:?} is not a TCP port (1..=65535)",
                        crate::limits::clip(url)
                    )
                })?;
            authority.to_string()
        }
        _ => format!("{authority}:80"),
    };
    Ok(WebhookUrl {
        host_port,
        path: path.to_string(),
    })
}

/// A rule name: `remove` takes a name or a position, so a name starts with
/// a letter.
pub fn check_rule_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if name.is_empty()
        || name.len() > MAX_RULE_NAME
        || !ok_chars
        || !name.starts_with(|c: char| c.is_ascii_alphabetic())
    {
        return Err(format!(
            "rule name {:?} must have 1 to {MAX_RULE_NAME} characters: a letter, then letters, digits, '-', '_' or '.'",
            crate::limits::clip(name)
        ));
    }
    Ok(())
}

/// Checks one rule: its name, matchers and actions within bounds, and at
/// least one action (a rule that does nothing is a mistake).
pub fn check_rule(r: &StatusRule) -> Result<(), String> {
    check_rule_name(&r.name)?;
    let named = |e: String| format!("status rule {}: {e}", r.name);
    if let Some((lo, hi)) = r.ids {
        if lo > hi {
            return Err(named(format!(
                "id range {lo}-{hi} is empty (low above high)"
            )));
        }
    }
    if let Some(c) = &r.component {
        if c.trim().is_empty() || c.len() > MAX_RULE_COMPONENT {
            return Err(named(format!(
                "component must have 1 to {MAX_RULE_COMPONENT} characters"
            )));
        }
    }
    if let Some(d) = r.keep_days {
        if d == 0 || d > MAX_KEEP_DAYS {
            return Err(named(format!(
                "keep {d} days is outside 1..={MAX_KEEP_DAYS}"
            )));
        }
    }
    if let Some(w) = &r.webhook {
        parse_webhook(w).map_err(named)?;
    }
    if r.program.len() > MAX_PROGRAM_ARGS {
        return Err(named(format!(
            "program has {} arguments; at most {MAX_PROGRAM_ARGS}",
            r.program.len()
        )));
    }
    if let Some(p) = r.program.first() {
        if !p.starts_with('/') {
            return Err(named(format!(
                "program {} must be an absolute path (it is run without a shell or PATH lookup)",
                crate::limits::clip(p)
            )));
        }
    }
    for a in &r.program {
        if a.len() > MAX_PROGRAM_ARG || a.contains('\0') {
            return Err(named(format!(
                "a program argument must have at most {MAX_PROGRAM_ARG} bytes and no NUL"
            )));
        }
    }
    if r.replicate.is_none()
        && r.keep_days.is_none()
        && r.webhook.is_none()
        && r.program.is_empty()
        && !r.stop
    {
        return Err(named(
            "no action: give at least one of replicate, keep, webhook, program or stop".into(),
        ));
    }
    Ok(())
}

/// Checks a site's rule list: its length, each rule, names used once.
pub fn check_rules(rules: &[StatusRule]) -> Result<(), String> {
    if rules.len() > MAX_STATUS_RULES {
        return Err(format!(
            "{} status rules; a site has at most {MAX_STATUS_RULES}",
            rules.len()
        ));
    }
    for (i, r) in rules.iter().enumerate() {
        check_rule(r)?;
        if rules[..i]
            .iter()
            .any(|o| o.name.eq_ignore_ascii_case(&r.name))
        {
            return Err(format!("status rule name {} is used twice", r.name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str) -> StatusRule {
        StatusRule {
            name: name.into(),
            ids: None,
            severity: None,
            component: None,
            site_code: None,
            replicate: None,
            keep_days: None,
            webhook: None,
            program: vec![],
            stop: true,
        }
    }

    #[test]
    fn webhooks_are_plain_http_with_a_host_and_a_port() {
        let w = parse_webhook("http://127.0.0.1:8088/hook?x=1").unwrap();
        assert_eq!(w.host_port, "127.0.0.1:8088");
        assert_eq!(w.path, "/hook?x=1");
        let w = parse_webhook("http://relay").unwrap();
        assert_eq!((w.host_port.as_str(), w.path.as_str()), ("relay:80", "/"));
        let w = parse_webhook("http://[::1]:9/x").unwrap();
        assert_eq!(w.host_port, "[::1]:9");
        assert!(parse_webhook("https://x/")
            .unwrap_err()
            .contains("only http://"));
        assert!(parse_webhook("ftp://x/").unwrap_err().contains("http://"));
        assert!(parse_webhook("http://x:0/").unwrap_err().contains("port"));
        assert!(parse_webhook("http://x:99999/")
            .unwrap_err()
            .contains("port"));
        assert!(parse_webhook("http:///p").unwrap_err().contains("host"));
        assert!(parse_webhook("http://a b/").unwrap_err().contains("space"));
    }

    #[test]
    fn a_rule_needs_a_good_name_an_action_and_sane_bounds() {
        assert!(check_rule(&rule("drop-5000")).is_ok());
        assert!(check_rule(&rule("3")).unwrap_err().contains("a letter"));
        assert!(check_rule(&rule("")).is_err());
        let mut r = rule("x");
        r.stop = false;
        assert!(check_rule(&r).unwrap_err().contains("no action"));
        r.ids = Some((10, 5));
        r.stop = true;
        assert!(check_rule(&r).unwrap_err().contains("empty"));
        let mut r = rule("x");
        r.keep_days = Some(0);
        assert!(check_rule(&r).unwrap_err().contains("1..="));
        let mut r = rule("x");
        r.program = vec!["notify".into()];
        assert!(check_rule(&r).unwrap_err().contains("absolute path"));
        let mut r = rule("x");
        r.webhook = Some("https://h/".into());
        assert!(check_rule(&r).unwrap_err().contains("status rule x"));
    }

    #[test]
    fn a_list_is_bounded_and_names_are_unique() {
        assert!(check_rules(&[rule("a"), rule("A")])
            .unwrap_err()
            .contains("twice"));
        let many: Vec<_> = (0..=MAX_STATUS_RULES)
            .map(|i| rule(&format!("r{i}")))
            .collect();
        assert!(check_rules(&many).unwrap_err().contains("at most"));
        assert!(check_rules(&many[..MAX_STATUS_RULES]).is_ok());
    }

    #[test]
    fn severity_at_least_and_exactly() {
        use Severity::*;
        assert!(SeverityMatch::AtLeast(Warning).matches(Error));
        assert!(SeverityMatch::AtLeast(Warning).matches(Warning));
        assert!(!SeverityMatch::AtLeast(Warning).matches(Informational));
        assert!(SeverityMatch::Exactly(Warning).matches(Warning));
        assert!(!SeverityMatch::Exactly(Warning).matches(Error));
    }
}
