//! CT1 validation by the Site Configuration Manager.

use sms_types::*;

use super::support::*;
use crate::site_config::{validate, MIN_POLLING_INTERVAL_MS};

/// A CT1 proposing `proposed` against the node's current CT0.
fn ct1(base_serial: u64, proposed: SiteControl) -> Ct1 {
    Ct1 {
        signature: None,
        base_serial,
        proposed,
        origin: "a test".into(),
    }
}

fn domain(name: &str) -> Domain {
    Domain {
        name: name.into(),
        browse: vec!["10.0.0.1".into()],
        logon_servers: vec![],
    }
}

#[tokio::test]
async fn a_valid_ct1_becomes_the_next_serial_with_site_owned_fields_reset() {
    let node = secondary("S01", "PRI");
    let current = node.ctx.config().unwrap();
    let mut p = current.clone();
    p.site_name = "Renamed".into();
    p.serial = 77; // the proposal's own serial is ignored
    p.parent_site_code = None; // the parent is the identity's, not the proposal's
    p.version = "0.0.1-old".into();
    p.polling_interval_ms = MIN_POLLING_INTERVAL_MS; // the minimum itself is fine
    p.next_unique_id = current.next_unique_id; // equal is not moving back
    let mut d = domain("CORP");
    d.logon_servers.push(LogonServer {
        server: "10.0.0.9".into(),
        state: LogonState::Active,
    });
    p.domains.push(d);
    p.addresses
        .push(Address::new(code("PRI"), "127.0.0.1:7000".into()));

    let new = validate(&node.ctx, &ct1(1, p.clone()), Some(&current)).unwrap();
    assert_eq!(new.serial, 2);
    assert_eq!(new.site_name, "Renamed");
    assert_eq!(new.parent_site_code, Some(code("PRI")));
    assert_eq!(new.version, SOFTWARE_VERSION);
    assert_eq!(new.polling_interval_ms, MIN_POLLING_INTERVAL_MS);
    assert_eq!(new.domains.len(), 1);
    assert_eq!(new.domains[0].name, "CORP");
    assert!(
        new.domains[0].logon_servers.is_empty(),
        "logon servers are the site's own"
    );
    assert_eq!(new.addresses, p.addresses);
}

#[tokio::test]
async fn the_central_site_gets_no_parent_and_a_first_ct0_is_serial_1() {
    let node = central("PRI");
    let mut p = ct0("PRI", Some("XYZ"));
    p.next_unique_id = 500;
    let new = validate(&node.ctx, &ct1(0, p), None).unwrap();
    assert_eq!(new.serial, 1);
    assert_eq!(new.parent_site_code, None);
    assert_eq!(new.next_unique_id, 500);
}

#[tokio::test]
async fn a_bare_node_refuses_every_ct1() {
    let node = bare();
    let err = validate(&node.ctx, &ct1(0, ct0("PRI", None)), None).unwrap_err();
    assert_eq!(err, "no site is installed");
}

#[tokio::test]
async fn a_ct1_for_another_site_is_refused() {
    let node = central("PRI");
    let current = node.ctx.config().unwrap();
    let err = validate(&node.ctx, &ct1(1, ct0("S01", None)), Some(&current)).unwrap_err();
    assert_eq!(err, "it is for site S01, but this is site PRI");
}

#[tokio::test]
async fn stale_and_advanced_base_serials_are_refused() {
    let node = central("PRI");
    let mut current = node.ctx.config().unwrap();
    current.serial = 4;
    let stale = validate(&node.ctx, &ct1(3, current.clone()), Some(&current)).unwrap_err();
    assert_eq!(
        stale,
        "it is stale: it was made against serial 3 but the site control is at serial 4"
    );
    let ahead = validate(&node.ctx, &ct1(5, current.clone()), Some(&current)).unwrap_err();
    assert!(
        ahead.contains("serial 5") && ahead.contains("at serial 4"),
        "{ahead}"
    );
    // With no CT0 at all only base 0 fits.
    assert!(validate(&node.ctx, &ct1(1, current.clone()), None)
        .unwrap_err()
        .contains("at serial 0"));
}

#[tokio::test]
async fn a_polling_interval_below_the_minimum_is_refused() {
    let node = central("PRI");
    let current = node.ctx.config().unwrap();
    let mut p = current.clone();
    p.polling_interval_ms = MIN_POLLING_INTERVAL_MS - 1;
    let err = validate(&node.ctx, &ct1(1, p), Some(&current)).unwrap_err();
    assert_eq!(
        err,
        format!(
            "polling interval {} ms is below the minimum of {MIN_POLLING_INTERVAL_MS} ms",
            MIN_POLLING_INTERVAL_MS - 1
        )
    );
}

#[tokio::test]
async fn a_blank_site_name_is_refused() {
    let node = central("PRI");
    let current = node.ctx.config().unwrap();
    let mut p = current.clone();
    p.site_name = "  \t".into();
    assert_eq!(
        validate(&node.ctx, &ct1(1, p), Some(&current)).unwrap_err(),
        "the site name is empty"
    );
}

#[tokio::test]
async fn moving_the_unique_id_counter_back_is_refused() {
    let node = central("PRI");
    let mut current = node.ctx.config().unwrap();
    current.next_unique_id = 100;
    let mut p = current.clone();
    p.next_unique_id = 99;
    let err = validate(&node.ctx, &ct1(1, p.clone()), Some(&current)).unwrap_err();
    assert!(err.contains("from 100 to 99"), "{err}");
    p.next_unique_id = 101;
    assert_eq!(
        validate(&node.ctx, &ct1(1, p), Some(&current))
            .unwrap()
            .next_unique_id,
        101
    );
}

#[tokio::test]
async fn blank_and_repeated_domains_are_refused() {
    let node = central("PRI");
    let current = node.ctx.config().unwrap();
    let mut p = current.clone();
    p.domains = vec![domain(" ")];
    assert_eq!(
        validate(&node.ctx, &ct1(1, p.clone()), Some(&current)).unwrap_err(),
        "a domain has an empty name"
    );
    p.domains = vec![domain("Corp"), domain("CORP")];
    assert_eq!(
        validate(&node.ctx, &ct1(1, p), Some(&current)).unwrap_err(),
        "domain CORP is listed twice"
    );
}

#[tokio::test]
async fn two_addresses_to_one_site_or_an_address_without_attempts_are_refused() {
    let node = central("PRI");
    let current = node.ctx.config().unwrap();
    let mut p = current.clone();
    p.addresses = vec![
        Address::new(code("S01"), "a:1".into()),
        Address::new(code("S01"), "b:2".into()),
    ];
    assert_eq!(
        validate(&node.ctx, &ct1(1, p.clone()), Some(&current)).unwrap_err(),
        "site S01 has two addresses"
    );
    let mut none = Address::new(code("S02"), "c:3".into());
    none.retry_count = 0;
    p.addresses = vec![Address::new(code("S01"), "a:1".into()), none];
    assert_eq!(
        validate(&node.ctx, &ct1(1, p), Some(&current)).unwrap_err(),
        "the address of site S02 allows no attempts"
    );
}
