//! Stale sites: silence past the allowed polling intervals marks a site
//! Stale once (3120), a report clears it once (3121), and silence before
//! this node started does not count.

use std::time::Duration;

use sms_types::catalog;
use sms_types::*;

use super::support::*;
use crate::stale::{check, reported, DEFAULT_STALE_AFTER_INTERVALS};

fn ids(ctx: &crate::Ctx, def: &catalog::MessageDef) -> usize {
    ctx.store
        .status_messages(None, Some(def.id), 100)
        .unwrap()
        .len()
}

fn row(ctx: &crate::Ctx, site: &str) -> sms_types::views::SiteRow {
    crate::queries::sites(ctx)
        .unwrap()
        .into_iter()
        .find(|r| r.record.site_code == code(site))
        .expect("listed")
}

#[test]
fn a_silent_site_goes_stale_once_and_a_report_clears_it_once() {
    let node = central("PRI");
    let ctx = &node.ctx;
    put_site(ctx, "S01", Some("PRI"), SiteKind::Secondary);
    // Active since the epoch, never reported, and this node "up" as long.
    ctx.hm.set_started_unix_ms(0);
    assert!(!row(ctx, "S01").stale);

    check(ctx).unwrap();
    let r = row(ctx, "S01");
    assert!(r.stale, "silent for decades");
    assert_eq!(r.shown_status(), "Stale");
    assert_eq!(ids(ctx, &catalog::HM_SITE_STALE), 1);
    let m = &ctx
        .store
        .status_messages(None, Some(catalog::HM_SITE_STALE.id), 1)
        .unwrap()[0];
    assert_eq!(m.severity, Severity::Error);
    assert_eq!(m.insertion_strings[0], "S01");
    assert_eq!(
        m.insertion_strings[2],
        DEFAULT_STALE_AFTER_INTERVALS.to_string()
    );
    assert!(
        ctx.store.site_report(&code("S01")).unwrap().unwrap().stale,
        "kept in the store, for after a restart"
    );

    check(ctx).unwrap();
    assert_eq!(ids(ctx, &catalog::HM_SITE_STALE), 1, "reported once");

    reported(ctx, &code("S01")).unwrap();
    let r = row(ctx, "S01");
    assert!(!r.stale);
    assert_eq!(r.shown_status(), "Active");
    assert!(r.report_age_ms.unwrap() < 60_000);
    assert_eq!(ids(ctx, &catalog::HM_SITE_REPORTS_AGAIN), 1);
    reported(ctx, &code("S01")).unwrap();
    assert_eq!(ids(ctx, &catalog::HM_SITE_REPORTS_AGAIN), 1, "cleared once");
    check(ctx).unwrap();
    assert!(!row(ctx, "S01").stale, "it just reported");
}

#[test]
fn silence_counts_only_while_this_site_runs_and_only_for_active_sites() {
    let node = central("PRI");
    let ctx = &node.ctx;
    // Active for ages, but this node just started: not stale yet, and the
    // check comes back before the site could be.
    put_site(ctx, "S01", Some("PRI"), SiteKind::Secondary);
    let next = check(ctx).unwrap();
    assert!(!row(ctx, "S01").stale);
    assert!(next <= Duration::from_secs(5));

    // A site still installing is Pending, not Stale, however long it is quiet.
    let mut pending = record("S02", Some("PRI"), SiteKind::Secondary);
    pending.status = SiteStatus::Pending;
    ctx.store.put_site(&pending).unwrap();
    ctx.hm.set_started_unix_ms(0);
    check(ctx).unwrap();
    assert!(!row(ctx, "S02").stale);
    assert!(row(ctx, "S01").stale);
    assert_eq!(ids(ctx, &catalog::HM_SITE_STALE), 1, "only S01");

    // A report from this site itself or a stranger is not tracked.
    reported(ctx, &code("PRI")).unwrap();
    reported(ctx, &code("S09")).unwrap();
    assert!(ctx.store.site_report(&code("PRI")).unwrap().is_none());
    assert!(ctx.store.site_report(&code("S09")).unwrap().is_none());
}

#[test]
fn the_allowed_silence_is_the_sites_own_polling_interval_times_the_setting() {
    let node = central("PRI");
    let ctx = &node.ctx;
    put_site(ctx, "S01", Some("PRI"), SiteKind::Secondary);
    // The site reported just now: with the default 60 s interval and 3
    // intervals it is due in about 3 minutes, never sooner than the check
    // period.
    reported(ctx, &code("S01")).unwrap();
    ctx.hm.set_started_unix_ms(0);
    ctx.hm.set_stale_after_intervals(1);
    assert_eq!(ctx.hm.stale_after_intervals(), 1);
    check(ctx).unwrap();
    assert!(!row(ctx, "S01").stale, "within one interval of 60 s");
    ctx.hm.set_stale_after_intervals(0);
    assert_eq!(ctx.hm.stale_after_intervals(), 1, "at least one interval");
}
