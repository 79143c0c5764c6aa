//! `controller status-rules`: a site's status filter rules. `list` reads
//! the site control; `add` and `remove` are site control changes sent as a
//! CT1 (at the site or an ancestor), like `add-domain`.

use serde_json::{json, Value};
use sms_proto::v1 as pb;

use crate::output::{or_dash, shown, table, Out};

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// A site's rules in the order they are evaluated.
    List(ListArgs),
    /// Add a rule: what it matches (nothing given: every message) and what
    /// it does. Matching rules apply in order until one with --stop; the
    /// first to set --replicate or --keep-days decides it.
    Add(Box<AddArgs>),
    /// Remove a rule by name or position.
    Remove(RemoveArgs),
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// At an ancestor: a descendant's rules (from its last CT2).
    #[arg(long)]
    pub site: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// The site whose rules change (at the site itself or any ancestor).
    #[arg(long)]
    pub site: String,
    /// The rule's name (a letter, then letters, digits, '-', '_', '.').
    #[arg(long)]
    pub name: String,
    /// Insert at this 1-based position [default: last].
    #[arg(long, value_name = "N")]
    pub position: Option<u32>,
    /// Match a message id or an inclusive range (5000 or 5000-5099).
    #[arg(long, value_name = "ID[-ID]", value_parser = parse_ids)]
    pub id: Option<(u32, u32)>,
    /// Match this severity or worse (informational, warning, error).
    #[arg(long, value_name = "LEVEL", conflicts_with = "severity")]
    pub min_severity: Option<String>,
    /// Match exactly this severity.
    #[arg(long, value_name = "LEVEL")]
    pub severity: Option<String>,
    /// Match the reporting component (case does not matter).
    #[arg(long)]
    pub component: Option<String>,
    /// Match the site that reported the message (this site or a descendant).
    #[arg(long, value_name = "CODE")]
    pub from_site: Option<String>,
    /// Replicate matching messages to the parent at this priority, or never
    /// (high, medium, low, never).
    #[arg(long, value_name = "PRIORITY")]
    pub replicate: Option<String>,
    /// Keep matching messages this many days at the site (default 7).
    #[arg(long, value_name = "DAYS")]
    pub keep_days: Option<u32>,
    /// POST each matching message as JSON to this http:// URL (plain HTTP;
    /// 5 s per attempt, 3 attempts).
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// Run this program (absolute path, no shell) with the message as JSON
    /// on stdin; killed after 10 s.
    #[arg(long, value_name = "PATH")]
    pub program: Option<String>,
    /// An argument for --program (repeat for several, in order).
    #[arg(
        long = "arg",
        value_name = "ARG",
        requires = "program",
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,
    /// Evaluate no rule after this one for matching messages.
    #[arg(long)]
    pub stop: bool,
}

#[derive(clap::Args, Debug)]
pub struct RemoveArgs {
    /// The site whose rules change (at the site itself or any ancestor).
    #[arg(long)]
    pub site: String,
    /// The rule's name or its 1-based position.
    #[arg(long, value_name = "NAME|N")]
    pub rule: String,
}

/// `5000` or `5000-5099`.
fn parse_ids(s: &str) -> Result<(u32, u32), String> {
    let num = |t: &str| {
        t.trim()
            .parse::<u32>()
            .map_err(|_| format!("{t:?} is not a message id (a number)"))
    };
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(s)?, num(s)?),
    };
    if lo > hi {
        return Err(format!("the range {lo}-{hi} is empty (low above high)"));
    }
    Ok((lo, hi))
}

/// The wire rule `add` sends; the node checks it.
pub fn rule(a: &AddArgs) -> pb::StatusRule {
    let (severity, severity_exact) = match (&a.min_severity, &a.severity) {
        (Some(s), _) => (s.clone(), false),
        (None, Some(s)) => (s.clone(), true),
        (None, None) => (String::new(), false),
    };
    pb::StatusRule {
        name: a.name.clone(),
        id_min: a.id.map(|(lo, _)| lo),
        id_max: a.id.map(|(_, hi)| hi),
        severity,
        severity_exact,
        component: a.component.clone().unwrap_or_default(),
        site_code: a.from_site.clone().unwrap_or_default(),
        replicate: a.replicate.clone().unwrap_or_default(),
        keep_days: a.keep_days.unwrap_or(0),
        webhook: a.webhook.clone().unwrap_or_default(),
        program: a.program.iter().chain(a.args.iter()).cloned().collect(),
        stop: a.stop,
    }
}

pub async fn run(node: &Option<String>, out: &Out, cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::List(a) => list(node, out, a).await,
        Cmd::Add(a) => {
            if a.keep_days == Some(0) {
                anyhow::bail!("--keep-days must be at least 1");
            }
            let req = pb::ChangeSiteControlRequest {
                site: a.site.clone(),
                add_status_rule: Some(rule(&a)),
                status_rule_position: a.position.unwrap_or(0),
                ..Default::default()
            };
            if a.position == Some(0) {
                anyhow::bail!("--position counts from 1");
            }
            super::site_control::send_change(node, out, "status-rules add", req).await
        }
        Cmd::Remove(a) => {
            let req = pb::ChangeSiteControlRequest {
                site: a.site,
                remove_status_rule: a.rule,
                ..Default::default()
            };
            super::site_control::send_change(node, out, "status-rules remove", req).await
        }
    }
}

/// One rule as `status-rules list --json` and `site-control --json` show it.
pub fn rule_json(position: usize, r: &pb::StatusRule) -> Value {
    let some = |s: &str| if s.is_empty() { Value::Null } else { json!(s) };
    json!({
        "position": position,
        "name": r.name,
        "id_min": r.id_min,
        "id_max": r.id_max,
        "severity": some(&r.severity),
        "severity_exact": r.severity_exact,
        "component": some(&r.component),
        "from_site": some(&r.site_code),
        "replicate": some(&r.replicate),
        "keep_days": if r.keep_days == 0 { Value::Null } else { json!(r.keep_days) },
        "webhook": some(&r.webhook),
        "program": r.program,
        "stop": r.stop,
    })
}

/// A rule from the shape [`rule_json`] prints (`submit-ct1` reads it back);
/// the node checks every field.
pub fn rule_from_json(v: &Value) -> pb::StatusRule {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    let n = |k: &str| v[k].as_u64().map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    pb::StatusRule {
        name: s("name"),
        id_min: n("id_min"),
        id_max: n("id_max"),
        severity: s("severity"),
        severity_exact: v["severity_exact"].as_bool().unwrap_or(false),
        component: s("component"),
        site_code: s("from_site"),
        replicate: s("replicate"),
        keep_days: n("keep_days").unwrap_or(0),
        webhook: s("webhook"),
        program: v["program"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default(),
        stop: v["stop"].as_bool().unwrap_or(false),
    }
}

/// What a rule matches, as the table shows it.
fn matches(r: &pb::StatusRule) -> String {
    let mut m = Vec::new();
    match (r.id_min, r.id_max) {
        (Some(lo), Some(hi)) if lo == hi => m.push(format!("id {lo}")),
        (Some(lo), Some(hi)) => m.push(format!("id {lo}-{hi}")),
        (Some(lo), None) => m.push(format!("id {lo}")),
        (None, Some(hi)) => m.push(format!("id 0-{hi}")),
        (None, None) => {}
    }
    if !r.severity.is_empty() {
        let op = if r.severity_exact { "=" } else { ">=" };
        m.push(format!("severity {op} {}", r.severity));
    }
    if !r.component.is_empty() {
        m.push(format!("component {}", shown(&r.component)));
    }
    if !r.site_code.is_empty() {
        m.push(format!("from {}", r.site_code));
    }
    if m.is_empty() {
        "every message".into()
    } else {
        m.join(", ")
    }
}

/// What a rule does, as the table shows it.
fn actions(r: &pb::StatusRule) -> String {
    let mut a = Vec::new();
    if !r.replicate.is_empty() {
        a.push(if r.replicate == "never" {
            "not replicated".to_string()
        } else {
            format!("replicate {}", r.replicate)
        });
    }
    if r.keep_days != 0 {
        a.push(format!("keep {} days", r.keep_days));
    }
    if !r.webhook.is_empty() {
        a.push(format!("webhook {}", shown(&r.webhook)));
    }
    if !r.program.is_empty() {
        a.push(format!("run {}", shown(&r.program.join(" "))));
    }
    if r.stop {
        a.push("stop".into());
    }
    a.join(", ")
}

async fn list(node: &Option<String>, out: &Out, a: ListArgs) -> anyhow::Result<()> {
    let c = super::site_control::fetch(node, a.site, "status-rules list").await?;
    let v = json!({
        "site_code": c.site_code,
        "serial": c.serial,
        "rules": c.status_rules.iter().enumerate().map(|(i, r)| rule_json(i + 1, r)).collect::<Vec<_>>(),
    });
    out.print(&v, || {
        if c.status_rules.is_empty() {
            println!(
                "site {} has no status filter rules (controller status-rules add --site {0} --name NAME ...)",
                c.site_code
            );
            return;
        }
        let mut t = table(&["#", "name", "matches", "actions"]);
        for (i, r) in c.status_rules.iter().enumerate() {
            t.add_row(vec![
                (i + 1).to_string(),
                shown(&r.name),
                matches(r),
                or_dash(&actions(r)),
            ]);
        }
        println!("{t}");
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn add(args: &[&str]) -> AddArgs {
        let argv = ["controller", "status-rules", "add"]
            .into_iter()
            .chain(args.iter().copied());
        match crate::cli::Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(crate::cli::Command::StatusRules(Cmd::Add(a))) => *a,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn add_flags_make_the_wire_rule() {
        let a = add(&[
            "--site",
            "S01",
            "--name",
            "hook",
            "--id",
            "5000-5099",
            "--min-severity",
            "warning",
            "--component",
            "SMS_X",
            "--from-site",
            "S02",
            "--replicate",
            "low",
            "--keep-days",
            "30",
            "--webhook",
            "http://127.0.0.1:9/h",
            "--program",
            "/bin/logger",
            "--arg",
            "-t",
            "--arg",
            "sms",
            "--stop",
            "--position",
            "2",
        ]);
        let r = rule(&a);
        assert_eq!((r.id_min, r.id_max), (Some(5000), Some(5099)));
        assert_eq!((r.severity.as_str(), r.severity_exact), ("warning", false));
        assert_eq!(r.site_code, "S02");
        assert_eq!(r.replicate, "low");
        assert_eq!(r.keep_days, 30);
        assert_eq!(r.program, ["/bin/logger", "-t", "sms"]);
        assert!(r.stop);
        assert_eq!(a.position, Some(2));
        let r = rule(&add(&[
            "--site",
            "S01",
            "--name",
            "x",
            "--id",
            "7",
            "--severity",
            "error",
            "--stop",
        ]));
        assert_eq!((r.id_min, r.id_max), (Some(7), Some(7)));
        assert!(r.severity_exact);
        let j = rule_json(1, &r);
        assert_eq!(j["id_min"], 7);
        assert_eq!(
            rule_from_json(&j),
            r,
            "submit-ct1 reads back what list prints"
        );
        assert_eq!(j["webhook"], Value::Null);
        assert_eq!(matches(&r), "id 7, severity = error");
        assert_eq!(actions(&r), "stop");
    }

    #[test]
    fn bad_add_flags_are_refused_by_name() {
        assert!(parse_ids("9-3").unwrap_err().contains("empty"));
        assert!(parse_ids("x").unwrap_err().contains("not a message id"));
        let argv = [
            "controller",
            "status-rules",
            "add",
            "--site",
            "S01",
            "--name",
            "x",
            "--arg",
            "a",
        ];
        let e = crate::cli::Cli::try_parse_from(argv)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--program"), "{e}");
        let argv = [
            "controller",
            "status-rules",
            "add",
            "--site",
            "S01",
            "--name",
            "x",
            "--severity",
            "error",
            "--min-severity",
            "warning",
        ];
        assert!(crate::cli::Cli::try_parse_from(argv).is_err());
    }
}
