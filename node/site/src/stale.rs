//! Stale sites: each primary keeps, for every site below it, when that
//! site last reported here (a CT2 or a status message arriving, by this
//! site's clock). An Active site silent for longer than
//! [`HmState::stale_after_intervals`](crate::core::HmState) of its own
//! polling intervals (from its last CT2) is Stale: reported once with an
//! error status message, and cleared with an informational one when it
//! reports again. The report time and the stale flag are kept in the
//! store, so a restart neither repeats nor loses either message; silence
//! is counted only while this site runs (a parent that was down itself
//! does not call all its children stale on restart).

use std::time::Duration;

use sms_types::catalog;
use sms_types::records::SiteReport;
use sms_types::*;

use crate::core::Ctx;

pub use crate::core::DEFAULT_STALE_AFTER_INTERVALS;

/// How often the check runs at the most (it runs sooner when a site is
/// due sooner).
pub(crate) const MAX_CHECK_PERIOD: Duration = Duration::from_secs(5);

/// Records that `site` reported here now; a stale site is cleared (with
/// status message 3121). Sites not in this site's list, and this site
/// itself, are not tracked. Call with the site records lock held.
pub(crate) fn reported(ctx: &Ctx, site: &SiteCode) -> anyhow::Result<()> {
    if ctx.site_code().as_ref() == Some(site) || ctx.store.site(site)?.is_none() {
        return Ok(());
    }
    let now = now_ms();
    let before = ctx.store.site_report(site)?;
    ctx.store.put_site_report(
        site,
        &SiteReport {
            last_report_unix_ms: now,
            stale: false,
        },
    )?;
    if let Some(b) = before.filter(|b| b.stale) {
        let silence = humantime::format_duration(Duration::from_secs(
            now.saturating_sub(b.last_report_unix_ms) / 1000,
        ));
        tracing::info!(%site, %silence, "site reports again; no longer stale");
        crate::status::emit(
            ctx,
            &catalog::HM_SITE_REPORTS_AGAIN,
            &[site.to_string(), silence.to_string()],
        )?;
    }
    Ok(())
}

/// Records a report from every site that sent one of `msgs`.
pub(crate) fn reported_messages(ctx: &Ctx, msgs: &[StatusMessage]) -> anyhow::Result<()> {
    let mut seen: Vec<&SiteCode> = Vec::new();
    for m in msgs {
        if !seen.contains(&&m.site_code) {
            seen.push(&m.site_code);
            reported(ctx, &m.site_code)?;
        }
    }
    Ok(())
}

/// A site's polling interval as its last CT2 reported it.
fn polling_interval_ms(ctx: &Ctx, site: &SiteCode) -> u64 {
    ctx.store
        .child_ct2(site)
        .ok()
        .flatten()
        .map(|c| c.control.polling_interval_ms)
        .unwrap_or(DEFAULT_POLLING_INTERVAL_MS)
        .max(1)
}

/// Whether `site` is stale and when it last reported (for the site list).
pub fn report_of(ctx: &Ctx, site: &SiteCode) -> Option<SiteReport> {
    ctx.store.site_report(site).ok().flatten()
}

/// Marks every Active site below that has been silent too long as Stale
/// (status message 3120, once). Returns how long until the next site could
/// go stale (at most [`MAX_CHECK_PERIOD`]). Call with the site records lock
/// held.
pub(crate) fn check(ctx: &Ctx) -> anyhow::Result<Duration> {
    let mut next = MAX_CHECK_PERIOD;
    let Some(me) = ctx.site_code() else {
        return Ok(next);
    };
    let intervals = u64::from(ctx.hm.stale_after_intervals());
    let started = ctx.hm.started_unix_ms();
    let now = now_ms();
    for rec in ctx.store.sites()? {
        if rec.site_code == me || rec.status != SiteStatus::Active {
            continue;
        }
        let report = ctx.store.site_report(&rec.site_code)?;
        if report.as_ref().is_some_and(|r| r.stale) {
            continue;
        }
        let last = report
            .as_ref()
            .map(|r| r.last_report_unix_ms)
            .unwrap_or(rec.status_changed_unix_ms);
        let interval = polling_interval_ms(ctx, &rec.site_code);
        let limit = interval.saturating_mul(intervals);
        let silent_here = now.saturating_sub(last.max(started));
        if silent_here <= limit {
            next = next.min(Duration::from_millis(limit - silent_here + 1));
            continue;
        }
        ctx.store.put_site_report(
            &rec.site_code,
            &SiteReport {
                last_report_unix_ms: last,
                stale: true,
            },
        )?;
        let silent =
            humantime::format_duration(Duration::from_secs(now.saturating_sub(last) / 1000));
        let every = humantime::format_duration(Duration::from_millis(interval));
        tracing::warn!(site = %rec.site_code, %silent, "site is stale: no report within {intervals} polling intervals of {every}");
        crate::status::emit(
            ctx,
            &catalog::HM_SITE_STALE,
            &[
                rec.site_code.to_string(),
                silent.to_string(),
                intervals.to_string(),
                every.to_string(),
            ],
        )?;
    }
    Ok(next)
}
