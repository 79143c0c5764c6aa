//! Routing: `scheduler::next_hop` on its own, and over a real store.

use std::cell::Cell;
use std::collections::HashMap;

use sms_types::*;

use super::support::*;
use crate::scheduler::{next_hop, route, route_from, Route, RouteError};

fn identity(site: &str, parent: Option<&str>) -> Identity {
    Identity {
        site_code: code(site),
        site_name: site.into(),
        kind: SiteKind::Primary,
        parent: parent.map(|p| ParentLink {
            site_code: code(p),
            address: "127.0.0.1:7000".into(),
            link_secret: "s".into(),
        }),
        installed_unix_ms: 0,
        version: SOFTWARE_VERSION.into(),
        ancestors: parent.into_iter().map(code).collect(),
    }
}

/// (site, parent) pairs as the Hierarchy Manager's records.
fn tree(pairs: &[(&str, Option<&str>)]) -> HashMap<SiteCode, Option<SiteCode>> {
    pairs.iter().map(|(s, p)| (code(s), p.map(code))).collect()
}

fn hop(
    id: &Identity,
    dest: &str,
    t: &HashMap<SiteCode, Option<SiteCode>>,
) -> Result<Route, RouteError> {
    next_hop(id, &code(dest), |c| t.get(c).cloned())
}

#[test]
fn this_site_is_local_and_children_are_direct_hops() {
    let id = identity("PRI", None);
    let t = tree(&[("S01", Some("PRI")), ("P02", Some("PRI"))]);
    assert_eq!(hop(&id, "PRI", &t), Ok(Route::Local));
    assert_eq!(hop(&id, "S01", &t), Ok(Route::Hop(code("S01"))));
    assert_eq!(hop(&id, "P02", &t), Ok(Route::Hop(code("P02"))));
}

#[test]
fn a_site_deeper_down_goes_through_the_child_above_it() {
    let id = identity("PRI", None);
    let t = tree(&[
        ("P02", Some("PRI")),
        ("P03", Some("P02")),
        ("S04", Some("P03")),
    ]);
    assert_eq!(hop(&id, "P03", &t), Ok(Route::Hop(code("P02"))));
    assert_eq!(hop(&id, "S04", &t), Ok(Route::Hop(code("P02"))));
}

#[test]
fn an_unknown_site_goes_to_the_parent() {
    let id = identity("P02", Some("PRI"));
    let t = tree(&[("S03", Some("P02")), ("S09", Some("ZZZ"))]);
    assert_eq!(hop(&id, "XYZ", &t), Ok(Route::Hop(code("PRI"))));
    // A site known only under a stranger goes up too, as does the parent.
    assert_eq!(hop(&id, "S09", &t), Ok(Route::Hop(code("PRI"))));
    assert_eq!(hop(&id, "PRI", &t), Ok(Route::Hop(code("PRI"))));
}

#[test]
fn the_central_site_has_no_route_to_an_unknown_site() {
    let id = identity("PRI", None);
    let t = tree(&[("S01", Some("PRI")), ("S09", None)]);
    for dest in ["XYZ", "S09"] {
        assert_eq!(
            hop(&id, dest, &t),
            Err(RouteError::NoRoute {
                from: code("PRI"),
                to: code(dest)
            })
        );
    }
}

#[test]
fn a_loop_in_the_records_ends_the_walk() {
    let t = tree(&[("AAA", Some("BBB")), ("BBB", Some("AAA"))]);
    let calls = Cell::new(0u32);
    let central = identity("PRI", None);
    let r = next_hop(&central, &code("AAA"), |c| {
        calls.set(calls.get() + 1);
        t.get(c).cloned()
    });
    assert!(matches!(r, Err(RouteError::NoRoute { .. })), "{r:?}");
    assert!(
        calls.get() <= 64,
        "the walk is bounded, took {}",
        calls.get()
    );
    let below = identity("P02", Some("PRI"));
    assert_eq!(hop(&below, "BBB", &t), Ok(Route::Hop(code("PRI"))));
}

#[tokio::test]
async fn routes_follow_the_records_in_the_store() {
    let node = secondary("P02", "PRI");
    let ctx = &node.ctx;
    put_site(ctx, "S03", Some("P02"), SiteKind::Secondary);
    put_site(ctx, "P04", Some("P02"), SiteKind::Primary);
    put_site(ctx, "S05", Some("P04"), SiteKind::Secondary);
    put_site(ctx, "S06", Some("PRI"), SiteKind::Secondary);
    let id = ctx.identity().unwrap();
    let r = |d: &str| route_from(ctx, &id, &code(d));
    assert_eq!(r("P02"), Ok(Route::Local));
    assert_eq!(r("S03"), Ok(Route::Hop(code("S03"))));
    assert_eq!(r("S05"), Ok(Route::Hop(code("P04"))));
    assert_eq!(
        r("S06"),
        Ok(Route::Hop(code("PRI"))),
        "a sibling is reached upwards"
    );
    assert_eq!(r("XYZ"), Ok(Route::Hop(code("PRI"))));
    assert_eq!(route(ctx, &code("S05")), Ok(Route::Hop(code("P04"))));
}

#[tokio::test]
async fn a_bare_node_routes_nothing() {
    let node = bare();
    assert_eq!(
        route(&node.ctx, &code("PRI")),
        Err(RouteError::NotInstalled)
    );
}
