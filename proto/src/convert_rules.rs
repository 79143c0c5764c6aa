//! Status filter rules: wire <-> domain. The wire form is flat (strings,
//! optional ids) so the controller and other clients can build one without
//! the domain's enums; every field from the wire is checked here.

use sms_types::status_rules::*;
use sms_types::{Priority, Severity};

use crate::convert::{opt_code, WireError};
use crate::v1 as pb;

type R<T> = Result<T, WireError>;

pub fn rule_to(r: &StatusRule) -> pb::StatusRule {
    let (severity, severity_exact) = match r.severity {
        None => (String::new(), false),
        Some(SeverityMatch::AtLeast(s)) => (s.as_str().to_string(), false),
        Some(SeverityMatch::Exactly(s)) => (s.as_str().to_string(), true),
    };
    pb::StatusRule {
        name: r.name.clone(),
        id_min: r.ids.map(|(lo, _)| lo),
        id_max: r.ids.map(|(_, hi)| hi),
        severity,
        severity_exact,
        component: r.component.clone().unwrap_or_default(),
        site_code: r
            .site_code
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        replicate: match r.replicate {
            None => String::new(),
            Some(Replicate::Never) => "never".into(),
            Some(Replicate::At(p)) => p.as_str().into(),
        },
        keep_days: r.keep_days.unwrap_or(0),
        webhook: r.webhook.clone().unwrap_or_default(),
        program: r.program.clone(),
        stop: r.stop,
    }
}

pub fn rule_from(r: &pb::StatusRule) -> R<StatusRule> {
    let bad = |e: String| WireError(format!("status rule {:?}: {e}", r.name));
    let ids = match (r.id_min, r.id_max) {
        (None, None) => None,
        (Some(lo), None) => Some((lo, lo)),
        (None, Some(hi)) => Some((0, hi)),
        (Some(lo), Some(hi)) => Some((lo, hi)),
    };
    let severity = if r.severity.is_empty() {
        None
    } else {
        let s: Severity = r.severity.parse().map_err(bad)?;
        Some(if r.severity_exact {
            SeverityMatch::Exactly(s)
        } else {
            SeverityMatch::AtLeast(s)
        })
    };
    let replicate = match r.replicate.to_ascii_lowercase().as_str() {
        "" => None,
        "never" | "none" => Some(Replicate::Never),
        p => Some(Replicate::At(p.parse::<Priority>().map_err(|_| {
            bad(format!(
                "replicate {:?} is not high, medium, low or never",
                sms_types::limits::clip(p)
            ))
        })?)),
    };
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Ok(StatusRule {
        name: r.name.clone(),
        ids,
        severity,
        component: nonempty(&r.component),
        site_code: opt_code(&r.site_code, "status rule site_code")?,
        replicate,
        keep_days: (r.keep_days != 0).then_some(r.keep_days),
        webhook: nonempty(&r.webhook),
        program: r.program.clone(),
        stop: r.stop,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_survives_the_wire_and_bad_fields_are_named() {
        let r = StatusRule {
            name: "r1".into(),
            ids: Some((5000, 5100)),
            severity: Some(SeverityMatch::Exactly(Severity::Warning)),
            component: Some("SMS_X".into()),
            site_code: Some("S01".parse().unwrap()),
            replicate: Some(Replicate::At(Priority::Low)),
            keep_days: Some(30),
            webhook: Some("http://h:1/x".into()),
            program: vec!["/bin/true".into()],
            stop: true,
        };
        assert_eq!(rule_from(&rule_to(&r)).unwrap(), r);
        let never = StatusRule {
            ids: Some((7, 7)),
            severity: Some(SeverityMatch::AtLeast(Severity::Error)),
            replicate: Some(Replicate::Never),
            ..r.clone()
        };
        assert_eq!(rule_from(&rule_to(&never)).unwrap(), never);
        let mut w = rule_to(&r);
        w.replicate = "urgent".into();
        assert!(rule_from(&w)
            .unwrap_err()
            .0
            .contains("not high, medium, low or never"));
        let mut w = rule_to(&r);
        w.severity = "fatal".into();
        assert!(rule_from(&w).unwrap_err().0.contains("r1"));
        let mut w = rule_to(&r);
        w.site_code = "toolong".into();
        assert!(rule_from(&w).is_err());
    }
}
