//! What the console's JSON endpoints answer: the site's read models
//! (`sms_site::queries`) shaped for the page. Nothing here decides
//! anything the domain does not already know; secrets the records hold
//! (link secrets) are never copied out.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::{json, Value};
use sms_site::error::Refused;
use sms_site::{queries, Ctx};
use sms_types::link::LinkState;
use sms_types::views::{LinkView, SiteRow};
use sms_types::*;

/// Per-link rates between two looks at the link counters.
#[derive(Default)]
pub struct Rates {
    last: HashMap<SiteCode, (u64, u64, Instant)>,
    per_sec: HashMap<SiteCode, (f64, f64)>,
}

impl Rates {
    /// Looks at every link's byte and acknowledgement counters; the rates
    /// are from the previous look to this one.
    pub fn sample(&mut self, ctx: &Ctx) {
        let now = Instant::now();
        for l in ctx.links.links() {
            let bytes = l.bytes_sent.load(Ordering::Relaxed);
            let acked = l.frames_acked.load(Ordering::Relaxed);
            if let Some((b0, a0, t0)) = self.last.get(&l.to) {
                let secs = now.duration_since(*t0).as_secs_f64();
                if secs > 0.0 {
                    self.per_sec.insert(
                        l.to.clone(),
                        (
                            bytes.saturating_sub(*b0) as f64 / secs,
                            acked.saturating_sub(*a0) as f64 / secs,
                        ),
                    );
                }
            }
            self.last.insert(l.to.clone(), (bytes, acked, now));
        }
    }

    /// (bytes/s, jobs acknowledged/s) over `to`, once sampled twice.
    pub fn of(&self, to: &SiteCode) -> Option<(f64, f64)> {
        self.per_sec.get(to).copied()
    }
}

/// A site of the list, as the tree and the site page show it.
pub fn site_row_json(r: &SiteRow) -> Value {
    let s = &r.record;
    json!({
        "code": s.site_code.as_str(),
        "parent": s.parent_site_code.as_ref().map(|p| p.as_str()),
        "kind": s.kind.as_str(),
        "server": s.server,
        "status": r.shown_status(),
        "install_status": s.status.to_string(),
        "stale": r.stale,
        "status_changed_unix_ms": s.status_changed_unix_ms,
        "serial": s.serial,
        "version": r.version,
        "last_report_unix_ms": r.last_report_unix_ms,
        "recent_errors": r.recent_errors,
        "recent_warnings": r.recent_warnings,
    })
}

/// One link as this node sees it, with its rates when known.
pub fn link_json(l: &LinkView, ctx: &Ctx, rates: Option<&Rates>) -> Value {
    let link = ctx.links.link(&l.to);
    let counter = |f: fn(&sms_site::links::Link) -> u64| link.as_ref().map(|k| f(k)).unwrap_or(0);
    let rate = rates.and_then(|r| r.of(&l.to));
    let mut v = link_fields(l);
    v["sent_jobs"] = json!(counter(|k| k.sent.load(Ordering::Relaxed)));
    v["bytes_sent"] = json!(counter(|k| k.bytes_sent.load(Ordering::Relaxed)));
    v["round_trip_ms"] =
        json!(counter(|k| k.round_trip_us.load(Ordering::Relaxed)) as f64 / 1000.0);
    v["bytes_per_sec"] = json!(rate.map(|r| r.0.round()));
    v["acked_per_sec"] = json!(rate.map(|r| (r.1 * 10.0).round() / 10.0));
    v
}

/// What any view of a link has; the counters and rates only where this
/// node holds the link.
fn link_fields(l: &LinkView) -> Value {
    json!({
        "to": l.to.as_str(),
        "state": l.state.as_str(),
        "detail": l.detail,
        "server": l.server,
        "queued_jobs": l.queued_jobs,
        "failed_jobs": l.failed_jobs,
        "sent_jobs": null,
        "bytes_sent": null,
        "round_trip_ms": null,
        "bytes_per_sec": null,
        "acked_per_sec": null,
        "clock_skew_ms": l.clock_skew_ms,
    })
}

pub fn message_json(m: &StatusMessage) -> Value {
    json!({
        "uid": m.uid.to_string(),
        "id": m.id,
        "severity": m.severity.as_str(),
        "site": m.site_code.as_str(),
        "component": m.component,
        "machine": m.machine,
        "time_unix_ms": m.time_unix_ms,
        "text": m.text,
    })
}

pub fn failed_job_json(f: &FailedJob) -> Value {
    json!({
        "job_id": f.job.id.to_string(),
        "kind": f.job.payload.kind(),
        "source": f.job.source.as_str(),
        "dest": f.job.dest.as_str(),
        "attempts": f.job.attempts,
        "reason": f.reason,
        "failed_unix_ms": f.failed_unix_ms,
    })
}

/// A site control image: domains with their logon servers, addresses,
/// management points.
pub fn control_json(c: &SiteControl) -> Value {
    json!({
        "site_code": c.site_code.as_str(),
        "site_name": c.site_name,
        "serial": c.serial,
        "parent_site_code": c.parent_site_code.as_ref().map(|p| p.as_str()),
        "polling_interval_ms": c.polling_interval_ms,
        "version": c.version,
        "next_unique_id": c.next_unique_id,
        "domains": c.domains.iter().map(|d| json!({
            "name": d.name,
            "browse": d.browse,
            "logon_servers": d.logon_servers.iter().map(|l| json!({
                "server": l.server, "state": l.state.as_str(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "addresses": c.addresses.iter().map(|a| json!({
            "site_code": a.site_code.as_str(),
            "server": a.server,
            "retry_count": a.retry_count,
            "retry_delay_ms": a.retry_delay_ms,
            "concurrent_sendings": a.concurrent_sendings,
            "rate_limit_bytes_per_sec": a.rate_limit_bytes_per_sec,
            "keepalive_secs": a.keepalive_secs,
            "schedule": a.schedule.iter().map(|r| json!({
                "start_hour": r.start_hour, "end_hour": r.end_hour, "lowest": r.lowest.as_str(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "management_points": c.management_points.iter().map(|m| json!({
            "server": m.server,
            "port": m.port,
            "is_default": m.is_default,
            "state": m.state.as_str(),
            "detail": m.detail,
            "verified_unix_ms": m.verified_unix_ms,
            "verification": m.verification,
            "bound_port": m.bound_port,
        })).collect::<Vec<_>>(),
    })
}

/// A link one tier down, as the child primary that holds it reported it:
/// no counters or rates of this node's, and `far`, so the page offers no
/// action on it from here.
fn far_link_json(l: &LinkView) -> Value {
    let mut v = link_fields(l);
    v["far"] = json!(true);
    v
}

/// The hierarchy as this node knows it: sites (a primary's site list; a
/// secondary knows itself and its parent) and every parent-child edge,
/// with this node's view of the link where the edge is one of its own,
/// and the child primary's view (`far`) where the edge is one tier below.
pub fn tree(ctx: &Ctx, rates: &Rates, far: &[queries::ChildLinks]) -> Result<Value, Refused> {
    let Some(me) = ctx.identity() else {
        return Ok(json!({"site": null, "sites": [], "edges": [],
            "note": "a bare node: no site is installed here yet"}));
    };
    let sites: Vec<Value> = if me.kind == SiteKind::Secondary {
        let p = me.parent.as_ref().expect("a secondary has a parent");
        vec![
            json!({"code": p.site_code.as_str(), "parent": null, "kind": "parent",
                   "server": p.address, "status": "", "stale": false, "version": "",
                   "last_report_unix_ms": null}),
            json!({"code": me.site_code.as_str(), "parent": p.site_code.as_str(),
                   "kind": me.kind.as_str(), "server": ctx.advertise, "status": "Active",
                   "stale": false, "version": me.version, "last_report_unix_ms": null,
                   "serial": ctx.config().map(|c| c.serial).unwrap_or(0)}),
        ]
    } else {
        queries::sites(ctx)?.iter().map(site_row_json).collect()
    };
    let mut edges = Vec::new();
    for s in &sites {
        let (Some(child), Some(parent)) = (s["code"].as_str(), s["parent"].as_str()) else {
            continue;
        };
        let other = if parent == me.site_code.as_str() {
            Some(child)
        } else if child == me.site_code.as_str() {
            Some(parent)
        } else {
            None
        };
        let link = other
            .and_then(|o| o.parse::<SiteCode>().ok())
            .filter(|o| ctx.links.link(o).is_some())
            .map(|o| link_json(&queries::link_view(ctx, &o), ctx, Some(rates)));
        if link.is_some() {
            edges.push(json!({
                "parent": parent, "child": child, "seen_from": me.site_code.as_str(),
                "link": link, "note": "",
            }));
            continue;
        }
        // One tier down: what the child primary holding the link said.
        let (link, note) = match far.iter().find(|(p, _)| p.as_str() == parent) {
            Some((_, Ok(links))) => match links.iter().find(|l| l.to.as_str() == child) {
                Some(l) => (Some(far_link_json(l)), String::new()),
                None => (None, format!("{parent} reports no link to {child}")),
            },
            Some((_, Err(e))) => (None, format!("{parent} did not say how its link is: {e}")),
            None => (
                None,
                format!("the link is kept at {parent} and {child}; open {parent}'s console"),
            ),
        };
        edges.push(json!({
            "parent": parent,
            "child": child,
            "seen_from": if link.is_some() { parent } else { me.site_code.as_str() },
            "link": link,
            "note": note,
        }));
    }
    Ok(json!({
        "site": me.site_code.as_str(),
        "kind": me.kind.as_str(),
        "sites": sites,
        "edges": edges,
    }))
}

/// What this node can tell about one site, in plain words: the causes it
/// sees from here, each with the command that fixes it. The full
/// diagnosis, which also asks the site's own server, is
/// `controller diagnose --site CODE`.
pub fn findings(
    me: &SiteCode,
    code: &SiteCode,
    row: Option<&SiteRow>,
    link: Option<&LinkView>,
    failed: &[FailedJob],
    last: &[StatusMessage],
) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(l) = link.filter(|l| l.state == LinkState::Severed) {
        out.push(json!({
            "cause": format!("the link from {me} to {code} was cut by an administrator ({}); work for {code} waits at {me} until it is restored", l.detail),
            "fix": format!("controller restore-link --to {code}"),
            "action": "restore-link",
        }));
    }
    if let Some(j) = failed.first() {
        out.push(json!({
            "cause": format!("a {} job from {me} to {code} failed after {} attempts: {}", j.job.payload.kind(), j.job.attempts, j.reason),
            "fix": format!("controller retry-jobs --to {code}"),
            "action": "retry-jobs",
        }));
    }
    if let Some(r) = row.filter(|r| r.stale) {
        out.push(json!({
            "cause": format!("{code} has not reported to {me} for {} s (a CT2 or a status message is due every polling interval)",
                r.report_age_ms.unwrap_or(0) / 1000),
            "fix": format!("check that sms-node runs at {} and that its link to its parent is up: controller diagnose --site {code}", r.record.server),
        }));
    }
    if let Some(r) = row.filter(|r| r.record.status != SiteStatus::Active) {
        if last.is_empty() {
            out.push(json!({
                "cause": format!("{code} is {} and no status message from it has reached {me}", r.record.status),
                "fix": format!("controller diagnose --site {code} (asks {code}'s own server about its bootstrap)"),
            }));
        }
    }
    if out.is_empty() {
        out.push(json!({"cause": format!("nothing wrong is seen from {me}"), "fix": ""}));
    }
    out
}

/// A site's page: its record, site control (with the serials there are),
/// components, links with their failed jobs, and the diagnosis from here.
pub fn site_page(ctx: &Ctx, code: &SiteCode) -> Result<Value, Refused> {
    let me = queries::installed(ctx)?;
    let own = code == &me.site_code;
    let rows = if me.kind == SiteKind::Secondary {
        vec![]
    } else {
        queries::sites(ctx)?
    };
    let row = rows.iter().find(|r| &r.record.site_code == code);
    let direct = ctx.links.link(code).is_some();
    if !own && row.is_none() && !direct {
        return Err(Refused::NotFound(format!(
            "site {code} is not in the site list of {}",
            me.site_code
        )));
    }
    let control = queries::site_control(ctx, (!own).then(|| code.clone()), 0);
    let serials = if own {
        queries::site_control_serials(ctx)?
    } else {
        control.as_ref().map(|c| vec![c.serial]).unwrap_or_default()
    };
    let components = queries::site_components(ctx, code);
    // The links this page shows: all of this node's for its own site,
    // else this node's link to that site.
    let links: Vec<LinkView> = if own {
        queries::node_view(ctx).links
    } else if direct {
        vec![queries::link_view(ctx, code)]
    } else {
        vec![]
    };
    let mut failed_all = Vec::new();
    let mut links_json = Vec::new();
    for l in &links {
        let failed = queries::failed_jobs(ctx, &l.to)?;
        let mut j = link_json(l, ctx, None);
        j["failed"] = failed.iter().map(failed_job_json).collect();
        links_json.push(j);
        if !own {
            failed_all = failed;
        }
    }
    let last = queries::status_messages(ctx, Some(code), None, 5, None)?;
    let link_here = (!own && direct).then(|| &links[0]);
    let findings = if own {
        vec![]
    } else {
        findings(&me.site_code, code, row, link_here, &failed_all, &last)
    };
    let err = |e: &Refused| e.to_string();
    Ok(json!({
        "code": code.as_str(),
        "seen_from": me.site_code.as_str(),
        "own": own,
        "row": row.map(site_row_json),
        "control": control.as_ref().map(control_json).map_err(err).unwrap_or_else(|e| json!({"error": e})),
        "serials": serials,
        "components": match &components {
            Ok(c) => c.iter().map(|c| json!({"name": c.name, "state": c.state})).collect(),
            Err(e) => json!({"error": e.to_string()}),
        },
        "links": links_json,
        "diagnose": {
            "link": link_here.map(|l| link_json(l, ctx, None)),
            "last_messages": last.iter().map(message_json).collect::<Vec<_>>(),
            "findings": findings,
            "full": format!("controller diagnose --site {code}"),
        },
    }))
}

/// What changed in a site's control between serials `a` and `b` (this
/// site's history; a descendant's only has its last CT2's serial).
pub fn diff(ctx: &Ctx, code: &SiteCode, a: u64, b: u64) -> Result<Value, Refused> {
    let me = queries::installed(ctx)?;
    let site = (code != &me.site_code).then(|| code.clone());
    let x = control_json(&queries::site_control(ctx, site.clone(), a)?);
    let y = control_json(&queries::site_control(ctx, site, b)?);
    Ok(
        json!({"site": code.as_str(), "from_serial": a, "to_serial": b, "changes": sms_types::json_diff::changes(&x, &y)}),
    )
}
