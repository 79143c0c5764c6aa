//! Site control out of bounds: a CT1 carrying it goes to the bad box (its
//! reason names the value), and a change that would make it is refused at
//! the call, with nothing queued.

use sms_types::*;

use super::support::*;
use crate::error::Refused;
use crate::hierarchy::{change_site_control, AddressChange, ControlChange};
use crate::site_config::validate;

#[tokio::test]
async fn a_ct1_setting_the_id_counter_near_2_64_is_refused() {
    let node = secondary("S01", "PRI");
    let current = node.ctx.config().unwrap();
    let mut p = current.clone();
    p.next_unique_id = u64::MAX - 10;
    let ct1 = Ct1 {
        signature: None,
        base_serial: current.serial,
        proposed: p,
        origin: "a test".into(),
    };
    let e = validate(&node.ctx, &ct1, Some(&current)).unwrap_err();
    assert!(
        e.contains("next SMS unique ID") && e.contains("99999999"),
        "{e}"
    );
}

#[tokio::test]
async fn a_ct1_with_a_retry_delay_of_a_year_is_refused() {
    let node = secondary("S01", "PRI");
    let current = node.ctx.config().unwrap();
    let mut p = current.clone();
    let mut a = Address::new(code("PRI"), "p:1".into());
    a.retry_delay_ms = 365 * 24 * 3_600_000;
    p.addresses = vec![a];
    let ct1 = Ct1 {
        signature: None,
        base_serial: current.serial,
        proposed: p,
        origin: "a test".into(),
    };
    let e = validate(&node.ctx, &ct1, Some(&current)).unwrap_err();
    assert!(
        e.contains("address of site PRI") && e.contains("retry delay"),
        "{e}"
    );
}

fn change() -> ControlChange {
    ControlChange {
        polling_interval_ms: None,
        site_name: None,
        address: None,
        add_domain: None,
        remove_domain: None,
        add_management_point: None,
        remove_management_point: None,
        add_status_rule: None,
        remove_status_rule: None,
    }
}

#[tokio::test]
async fn a_change_out_of_bounds_is_refused_at_the_call_and_nothing_is_queued() {
    let node = central("PRI");
    let before = node.ctx.store.inbox_len(sms_store::Inbox::SiteControl);
    let huge_interval = ControlChange {
        polling_interval_ms: Some(u64::MAX),
        ..change()
    };
    let e = change_site_control(&node.ctx, None, &huge_interval)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Refused::Invalid(m) if m.contains("polling interval")),
        "{e:?}"
    );
    let long_name = ControlChange {
        site_name: Some("n".repeat(200)),
        ..change()
    };
    assert!(matches!(
        change_site_control(&node.ctx, None, &long_name).await,
        Err(Refused::Invalid(_))
    ));
    let rate = ControlChange {
        address: Some(AddressChange {
            to: "S01".into(),
            retry_count: None,
            retry_delay_ms: None,
            concurrent_sendings: None,
            rate_limit_bytes_per_sec: Some(u64::MAX),
            schedule: None,
            keepalive_secs: None,
        }),
        ..change()
    };
    assert!(matches!(
        change_site_control(&node.ctx, None, &rate).await,
        Err(Refused::Invalid(m)) if m.contains("rate limit")
    ));
    assert_eq!(
        node.ctx.store.inbox_len(sms_store::Inbox::SiteControl),
        before,
        "a refused change was queued"
    );
    assert_eq!(node.ctx.config().unwrap().serial, 1);
}
