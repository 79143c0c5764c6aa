//! Reaching a site by its code: the next hop, the bounds on a relayed
//! request's path, and who may relay to a site.

use sms_types::records::LinkFault;
use sms_types::*;

use super::support::*;
use crate::error::Refused;
use crate::relay::{accept_from, check_path, step, NextHop, Step, MAX_HOPS};

fn codes(list: &[&str]) -> Vec<SiteCode> {
    list.iter().map(|c| code(c)).collect()
}

/// P01 below PRI, with children S11 and P02, and S21 below P02.
fn p01() -> Node {
    let node = primary_below("P01", "PRI");
    put_site(&node.ctx, "S11", Some("P01"), SiteKind::Secondary);
    put_site(&node.ctx, "P02", Some("P01"), SiteKind::Primary);
    put_site(&node.ctx, "S21", Some("P02"), SiteKind::Secondary);
    node
}

#[test]
fn a_request_goes_down_to_a_descendant_and_up_to_anything_else() {
    let node = p01();
    let ctx = &node.ctx;
    assert_eq!(step(ctx, &code("P01"), &[], None), Ok(Step::Here));
    assert_eq!(
        step(ctx, &code("S11"), &[], None),
        Ok(Step::Forward(NextHop {
            site: code("S11"),
            server: "127.0.0.1:7111".into()
        }))
    );
    // A grandchild goes through the child above it.
    assert_eq!(
        step(ctx, &code("S21"), &codes(&["PRI"]), None),
        Ok(Step::Forward(NextHop {
            site: code("P02"),
            server: "127.0.0.1:7102".into()
        }))
    );
    // The parent, an ancestor, and a site this one does not know: up.
    for dest in ["PRI", "XYZ"] {
        assert_eq!(
            step(ctx, &code(dest), &[], None),
            Ok(Step::Forward(NextHop {
                site: code("PRI"),
                server: "127.0.0.1:7000".into()
            })),
            "{dest}"
        );
    }
}

#[test]
fn the_central_site_says_an_unknown_site_is_not_in_the_hierarchy() {
    let node = central("PRI");
    match step(&node.ctx, &code("S99"), &[], None) {
        Err(Refused::NotFound(m)) => {
            assert!(
                m.starts_with("site S99 is not below or above site PRI"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_severed_link_is_named_as_the_reason_there_is_no_route() {
    let node = p01();
    let ctx = &node.ctx;
    ctx.store
        .set_link_fault(&code("S11"), Some(&LinkFault { severed_unix_ms: 1 }))
        .unwrap();
    match step(ctx, &code("S11"), &codes(&["PRI"]), None) {
        Err(Refused::Unreachable(m)) => assert!(
            m.starts_with("no route to site S11: the link from P01 to S11 is severed"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    // Sites the severed link does not lead to are still reached.
    assert!(matches!(
        step(ctx, &code("S21"), &[], None),
        Ok(Step::Forward(_))
    ));
}

#[test]
fn loops_and_paths_over_the_hop_limit_are_refused() {
    let (here, dest) = (code("P01"), code("S11"));
    assert_eq!(check_path(&here, &dest, &codes(&["PRI"])), Ok(()));
    match check_path(&here, &dest, &codes(&["PRI", "P01", "PRI"])) {
        Err(Refused::Precondition(m)) => {
            assert!(m.starts_with("routing loop"), "{m}");
            assert!(m.contains("PRI > P01 > PRI"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    let long: Vec<SiteCode> = (0..MAX_HOPS).map(|i| code(&format!("X{i:02}"))).collect();
    assert_eq!(check_path(&here, &dest, &long[..MAX_HOPS - 1]), Ok(()));
    match check_path(&here, &dest, &long) {
        Err(Refused::Precondition(m)) => assert!(m.contains("relayed 16 times"), "{m}"),
        other => panic!("{other:?}"),
    }
    // At a node, a looping request is refused before it is routed.
    let node = p01();
    assert!(matches!(
        step(&node.ctx, &dest, &codes(&["P01"]), None),
        Err(Refused::Precondition(_))
    ));
}

#[test]
fn only_the_parent_or_a_direct_child_may_relay() {
    let node = p01();
    let ctx = &node.ctx;
    for ok in ["PRI", "S11", "P02"] {
        assert_eq!(accept_from(ctx, &code(ok)), Ok(()), "{ok}");
    }
    // A grandchild, a stranger, and a site that is only known further down.
    for refused in ["S21", "XYZ"] {
        match accept_from(ctx, &code(refused)) {
            Err(Refused::Denied(m)) => assert!(m.contains("not a neighbour of site P01"), "{m}"),
            other => panic!("{refused}: {other:?}"),
        }
    }
}

#[test]
fn a_bare_node_answers_only_a_request_relayed_to_the_site_it_is_certified_as() {
    let node = bare();
    let ctx = &node.ctx;
    let s01 = code("S01");
    assert_eq!(
        step(ctx, &s01, &codes(&["PRI"]), Some(&s01)),
        Ok(Step::Here)
    );
    // Plaintext: no certificate to compare, the relay chose this server.
    assert_eq!(step(ctx, &s01, &codes(&["PRI"]), None), Ok(Step::Here));
    // Certified as another site, or called directly: it cannot route.
    for (path, cert) in [(codes(&["PRI"]), Some(code("S02"))), (vec![], None)] {
        match step(ctx, &s01, &path, cert.as_ref()) {
            Err(Refused::Precondition(m)) => assert!(m.contains("this node is bare"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(accept_from(ctx, &code("PRI")), Ok(()));
}
