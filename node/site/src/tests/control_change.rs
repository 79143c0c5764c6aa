//! `hierarchy::ControlChange::apply`: an administrator's change to a copy
//! of a site control.

use sms_types::*;

use super::support::*;
use crate::hierarchy::{AddressChange, ControlChange};
use crate::site_config::MIN_POLLING_INTERVAL_MS;

fn control() -> SiteControl {
    let mut c = ct0("PRI", None);
    c.domains.push(Domain {
        name: "Corp".into(),
        browse: vec!["10.0.0.1".into()],
        logon_servers: vec![],
    });
    let mut a = Address::new(code("S01"), "127.0.0.1:7101".into());
    a.schedule = vec![ScheduleRule {
        start_hour: 8,
        end_hour: 18,
        lowest: Priority::High,
    }];
    c.addresses.push(a);
    c
}

fn refused(change: ControlChange) -> String {
    let mut c = control();
    change.apply(&mut c).unwrap_err()
}

#[test]
fn an_empty_change_is_refused() {
    assert_eq!(refused(ControlChange::default()), "nothing to change");
}

#[test]
fn the_polling_interval_has_a_floor() {
    let err = refused(ControlChange {
        polling_interval_ms: Some(MIN_POLLING_INTERVAL_MS - 1),
        ..Default::default()
    });
    assert_eq!(
        err,
        format!(
            "polling interval {} ms is below the minimum of {MIN_POLLING_INTERVAL_MS} ms",
            MIN_POLLING_INTERVAL_MS - 1
        )
    );
    let mut c = control();
    ControlChange {
        polling_interval_ms: Some(MIN_POLLING_INTERVAL_MS),
        ..Default::default()
    }
    .apply(&mut c)
    .unwrap();
    assert_eq!(c.polling_interval_ms, MIN_POLLING_INTERVAL_MS);
}

#[test]
fn the_site_name_is_trimmed_and_may_not_be_blank() {
    let mut c = control();
    ControlChange {
        site_name: Some("  North office ".into()),
        ..Default::default()
    }
    .apply(&mut c)
    .unwrap();
    assert_eq!(c.site_name, "North office");
    assert_eq!(
        refused(ControlChange {
            site_name: Some("   ".into()),
            ..Default::default()
        }),
        "the site name cannot be empty"
    );
}

#[test]
fn a_new_address_gets_the_defaults_for_what_the_change_leaves_out() {
    let mut c = control();
    ControlChange {
        address: Some(AddressChange {
            to: "S02".into(),
            retry_count: Some(3),
            ..Default::default()
        }),
        ..Default::default()
    }
    .apply(&mut c)
    .unwrap();
    assert_eq!(c.addresses.len(), 2);
    let a = c
        .addresses
        .iter()
        .find(|a| a.site_code == code("S02"))
        .unwrap();
    let d = Address::new(code("S02"), String::new());
    assert_eq!(a.retry_count, 3);
    assert_eq!(a.server, "");
    assert_eq!(a.retry_delay_ms, d.retry_delay_ms);
    assert_eq!(a.concurrent_sendings, d.concurrent_sendings);
    assert_eq!(a.rate_limit_bytes_per_sec, d.rate_limit_bytes_per_sec);
    assert!(a.schedule.is_empty());
}

#[test]
fn an_address_change_keeps_or_replaces_the_schedule() {
    let original = control().addresses[0].clone();
    let mut c = control();
    ControlChange {
        address: Some(AddressChange {
            to: "S01".into(),
            concurrent_sendings: Some(8),
            rate_limit_bytes_per_sec: Some(1000),
            retry_delay_ms: Some(50),
            ..Default::default()
        }),
        ..Default::default()
    }
    .apply(&mut c)
    .unwrap();
    assert_eq!(
        c.addresses.len(),
        1,
        "the existing address is changed in place"
    );
    let a = &c.addresses[0];
    assert_eq!(
        (
            a.concurrent_sendings,
            a.rate_limit_bytes_per_sec,
            a.retry_delay_ms
        ),
        (8, 1000, 50)
    );
    assert_eq!(a.schedule, original.schedule, "no schedule given: kept");
    assert_eq!(a.server, original.server);
    assert_eq!(a.retry_count, original.retry_count);

    let rules = vec![ScheduleRule {
        start_hour: 22,
        end_hour: 6,
        lowest: Priority::Low,
    }];
    ControlChange {
        address: Some(AddressChange {
            to: "S01".into(),
            schedule: Some(rules.clone()),
            ..Default::default()
        }),
        ..Default::default()
    }
    .apply(&mut c)
    .unwrap();
    assert_eq!(c.addresses[0].schedule, rules, "replaced");
    ControlChange {
        address: Some(AddressChange {
            to: "S01".into(),
            schedule: Some(vec![]),
            ..Default::default()
        }),
        ..Default::default()
    }
    .apply(&mut c)
    .unwrap();
    assert!(
        c.addresses[0].schedule.is_empty(),
        "an empty schedule clears it"
    );
}

#[test]
fn bad_address_changes_are_refused() {
    let addr = |a: AddressChange| ControlChange {
        address: Some(a),
        ..Default::default()
    };
    let bad_code = refused(addr(AddressChange {
        to: "s1".into(),
        ..Default::default()
    }));
    assert!(bad_code.starts_with("address: "), "{bad_code}");
    assert_eq!(
        refused(addr(AddressChange {
            to: "S01".into(),
            retry_count: Some(0),
            ..Default::default()
        })),
        "an address needs at least 1 attempt per job"
    );
    assert_eq!(
        refused(addr(AddressChange {
            to: "S01".into(),
            concurrent_sendings: Some(0),
            ..Default::default()
        })),
        "an address needs at least 1 concurrent sending"
    );
}

#[test]
fn a_domain_is_added_with_a_cleaned_browse_list() {
    let mut c = control();
    ControlChange {
        add_domain: Some((" Sales ".into(), vec![" 10.1.1.1 ".into(), "  ".into()])),
        ..Default::default()
    }
    .apply(&mut c)
    .unwrap();
    let d = c.domains.last().unwrap();
    assert_eq!(d.name, "Sales");
    assert_eq!(d.browse, vec!["10.1.1.1".to_string()]);
    assert!(d.logon_servers.is_empty());
}

#[test]
fn adding_a_duplicate_blank_or_unbrowsable_domain_is_refused() {
    let add = |name: &str, browse: &[&str]| ControlChange {
        add_domain: Some((name.into(), browse.iter().map(|b| b.to_string()).collect())),
        ..Default::default()
    };
    assert_eq!(
        refused(add("CORP", &["x"])),
        "domain CORP is already in the site control of PRI"
    );
    assert_eq!(refused(add(" ", &["x"])), "the domain name cannot be empty");
    assert_eq!(
        refused(add("Sales", &[" ", ""])),
        "domain Sales needs a browse list (at least one address or DNS name)"
    );
}

#[test]
fn removing_a_domain_ignores_case_and_unknown_ones_are_refused() {
    let mut c = control();
    ControlChange {
        remove_domain: Some(" cORP ".into()),
        ..Default::default()
    }
    .apply(&mut c)
    .unwrap();
    assert!(c.domains.is_empty());
    assert_eq!(
        refused(ControlChange {
            remove_domain: Some("Sales".into()),
            ..Default::default()
        }),
        "there is no domain Sales in the site control of PRI"
    );
}
