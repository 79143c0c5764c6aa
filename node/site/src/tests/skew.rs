//! A neighbour's clock is measured at its link handshake and shown with
//! the link; status retention does not depend on it.

use sms_types::link::LinkHello;
use sms_types::*;

use super::support::*;
use crate::despooler::accept_link;
use crate::site_component::DESPOOLER;

#[tokio::test]
async fn a_child_thirty_days_behind_shows_with_its_link() {
    let node = central("PRI");
    let rec = put_site(&node.ctx, "S01", Some("PRI"), SiteKind::Secondary);
    node.ctx.components.set(DESPOOLER, "running");
    let thirty_days = 30 * 24 * 3_600_000;
    let hello = LinkHello {
        source_site: code("S01"),
        dest_site: code("PRI"),
        source_address: String::new(),
        link_secret: rec.link_secret.clone(),
        sent_unix_ms: now_ms() - thirty_days,
    };
    assert_eq!(accept_link(&node.ctx, &hello).await, Ok(code("S01")));
    let skew = crate::queries::link_view(&node.ctx, &code("S01"))
        .clock_skew_ms
        .expect("measured at the handshake");
    assert!(
        (-(thirty_days as i64) - 5_000..=-(thirty_days as i64)).contains(&skew),
        "{skew}"
    );
}

#[tokio::test]
async fn an_older_node_that_sends_no_clock_shows_none() {
    let node = central("PRI");
    let rec = put_site(&node.ctx, "S01", Some("PRI"), SiteKind::Secondary);
    node.ctx.components.set(DESPOOLER, "running");
    let hello = LinkHello {
        source_site: code("S01"),
        dest_site: code("PRI"),
        source_address: String::new(),
        link_secret: rec.link_secret.clone(),
        sent_unix_ms: 0,
    };
    assert!(accept_link(&node.ctx, &hello).await.is_ok());
    assert_eq!(
        crate::queries::link_view(&node.ctx, &code("S01")).clock_skew_ms,
        None
    );
}
