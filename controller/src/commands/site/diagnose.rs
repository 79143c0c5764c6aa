//! `controller diagnose --site C` (at C's parent, or any ancestor that lists
//! C): gathers both ends of the link, names the likely cause in plain words,
//! and gives the command that fixes it.

use std::time::Duration;

use serde_json::{json, Value};
use sms_proto::v1 as pb;
use sms_types::link::{LinkState, NodeRole};
use sms_types::SiteStatus;

use crate::client::{admin_for, connect, Reply};
use crate::output::{self, time, Out};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The site to explain.
    #[arg(long)]
    pub site: String,
}

/// What the child's own node says, when it can be reached.
struct ChildView {
    status: pb::NodeStatus,
    bootstrap_log: Vec<String>,
    failed_up: Vec<pb::FailedJob>,
    /// The controller arguments that reached it, for the fixes:
    /// `--node PARENT --site CODE` through the relay, or `--node SERVER`.
    reach: String,
}

/// How long the child's view may take to gather.
const CHILD_WAIT: Duration = Duration::from_secs(10);

/// The child's own view: through the relay from the node diagnosing it
/// (the parent reaches its child's server where the controller may not,
/// as in Compose), else by dialling its server (a node that cannot answer
/// as its site yet: its certificate exchange failed).
async fn child_view(addr: &str, site: &pb::SiteRecord) -> Result<ChildView, String> {
    let code = &site.site_code;
    let relayed = gather(addr, Some(code), &site.parent_site_code).await;
    let relay_err = match relayed {
        Ok(mut v) => {
            v.reach = format!("--node {addr} --site {code}");
            return Ok(v);
        }
        Err(e) => e,
    };
    match gather(&site.server, None, &site.parent_site_code).await {
        Ok(mut v) => {
            v.reach = format!("--node {}", site.server);
            Ok(v)
        }
        Err(e) => Err(format!("{relay_err}; dialled directly: {e}")),
    }
}

async fn gather(addr: &str, site: Option<&str>, parent_code: &str) -> Result<ChildView, String> {
    tokio::time::timeout(CHILD_WAIT, gather_now(addr, site, parent_code))
        .await
        .map_err(|_| format!("no answer within {CHILD_WAIT:?}"))?
}

async fn gather_now(
    addr: &str,
    site: Option<&str>,
    parent_code: &str,
) -> Result<ChildView, String> {
    let mut c = admin_for(addr, site).await.map_err(|e| format!("{e:#}"))?;
    let status = c
        .get_status(pb::GetStatusRequest {})
        .await
        .map_err(|e| e.message().to_string())?
        .into_inner();
    let bootstrap_log = c
        .read_log(pb::ReadLogRequest {
            name: "bootstrap".into(),
            tail: 15,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().lines)
        .unwrap_or_default();
    let failed_up = if crate::wire::role(&status) == Some(NodeRole::Bare) {
        vec![]
    } else {
        c.list_failed_jobs(pb::LinkRequest {
            to: parent_code.into(),
        })
        .await
        .map(|r| r.into_inner().jobs)
        .unwrap_or_default()
    };
    Ok(ChildView {
        status,
        bootstrap_log,
        failed_up,
        reach: String::new(),
    })
}

/// A link that may not exist: `null` in the JSON when it does not.
fn link_json(l: Option<&pb::LinkState>) -> Value {
    l.map(output::link_json).unwrap_or(Value::Null)
}

/// The part of a failed job that explains a diagnosis.
fn job_json(j: &pb::FailedJob) -> Value {
    json!({"kind": j.kind, "attempts": j.attempts, "reason": j.reason})
}

/// `FROM -> TO link: ...` as the diagnosis prints each end's link.
fn link_line(from: &str, l: &pb::LinkState) -> String {
    format!(
        "  {from} -> {} link: {} ({} queued, {} failed) {}",
        output::shown(&l.to),
        output::shown(&l.state),
        l.queued_jobs,
        l.failed_jobs,
        output::shown(&l.detail)
    )
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    let (addr, mut c) = connect(node).await?;
    let me = c
        .get_status(pb::GetStatusRequest {})
        .await
        .reply("diagnose")?;
    let sites = super::list_sites(&mut c, "diagnose").await?;
    let Some(site) = sites.iter().find(|s| s.site_code == a.site).cloned() else {
        anyhow::bail!(
            "site {} is not in the site list of {} ({addr})",
            a.site,
            me.site_code
        );
    };
    let link = me.links.iter().find(|l| l.to == site.site_code).cloned();
    let failed_down = if link.is_some() {
        c.list_failed_jobs(pb::LinkRequest {
            to: site.site_code.clone(),
        })
        .await
        .map(|r| r.into_inner().jobs)
        .unwrap_or_default()
    } else {
        vec![]
    };
    let last = c
        .list_status_messages(pb::ListStatusMessagesRequest {
            site: site.site_code.clone(),
            id: 0,
            limit: 5,
            after_uid: vec![],
        })
        .await
        .map(|r| r.into_inner().messages)
        .unwrap_or_default();
    let child = child_view(&addr, &site).await;
    // The fixes at this node name it as it was reached (--site included).
    let addr = match crate::client::site() {
        Some(s) => format!("{addr} --site {s}"),
        None => addr,
    };
    // The site's management points, as this node's copy of its control shows them.
    let own = site.site_code == me.site_code;
    let mps = c
        .get_site_control(pb::GetSiteControlRequest {
            site: if own {
                String::new()
            } else {
                site.site_code.clone()
            },
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().management_points)
        .unwrap_or_default();
    let mp_found = mp_findings(&addr, &site.site_code, &mps);

    // Findings, most specific first.
    // A node that tried to join as this site with a refused token (reported
    // at this node, the token's issuer).
    let refusals: Vec<String> = c
        .list_status_messages(pb::ListStatusMessagesRequest {
            site: me.site_code.clone(),
            id: 4806,
            limit: 20,
            after_uid: vec![],
        })
        .await
        .map(|r| {
            r.into_inner()
                .messages
                .into_iter()
                .map(|m| m.text)
                .collect()
        })
        .unwrap_or_default();
    let (cause, mut fix): (String, Vec<String>) = match join_refusal(&addr, &site, &refusals) {
        Some(found) => found,
        None => diagnose(
            &addr,
            &me,
            &site,
            link.as_ref(),
            &failed_down,
            &last,
            &child,
        ),
    };
    fix.dedup();

    let child_json = match &child {
        Ok(v) => json!({
            "reachable": true,
            "role": v.status.role,
            "site_code": v.status.site_code,
            "bootstrap": {"state": v.status.bootstrap_state, "detail": v.status.bootstrap_detail},
            "link_to_parent": link_json(v.status.links.iter().find(|l| l.to == site.parent_site_code)),
            "failed_jobs_to_parent": v.failed_up.iter().map(job_json).collect::<Vec<_>>(),
            "bootstrap_log": v.bootstrap_log,
            "reached_with": v.reach,
        }),
        Err(e) => json!({"reachable": false, "error": e}),
    };
    let v = json!({
        "site_code": site.site_code,
        "status": output::shown_status(&site),
        "stale": site.stale,
        "since": time(site.status_changed_unix_ms),
        "last_report_unix_ms": (site.last_report_unix_ms > 0).then_some(site.last_report_unix_ms),
        "last_report_age_ms": (site.last_report_unix_ms > 0).then_some(site.last_report_age_ms),
        "server": site.server,
        "parent": {
            "site_code": me.site_code,
            "link": link_json(link.as_ref()),
            "clock_skew_ms": link.as_ref().and_then(|l| l.clock_skew_ms),
            "failed_jobs": failed_down.iter().map(job_json).collect::<Vec<_>>(),
            "last_messages": last.iter().map(|m| json!({"id": m.id, "time": time(m.time_unix_ms), "text": m.text})).collect::<Vec<_>>(),
        },
        "child": child_json,
        "cause": cause,
        "fix": fix,
        "management_points": mp_found.iter().map(|(server, problem, fix)| json!({"server": server, "problem": problem, "fix": fix})).collect::<Vec<_>>(),
    });
    out.print(&v, || {
        println!(
            "site {} on {}: {} since {}",
            output::shown(&site.site_code),
            output::shown(&site.server),
            output::shown(&site.status),
            time(site.status_changed_unix_ms)
        );
        if site.stale {
            println!(
                "  Stale: last report to {} {}",
                me.site_code,
                output::report_age(&site)
            );
        } else if site.last_report_unix_ms > 0 {
            println!(
                "  last report to {} {}",
                me.site_code,
                output::report_age(&site)
            );
        }
        match &link {
            Some(l) => println!("{}", link_line(&me.site_code, l)),
            None => println!(
                "  {} has no direct link to {}",
                me.site_code, site.site_code
            ),
        }
        // Under a second is the handshake's own latency: not worth a line.
        let skew = link
            .as_ref()
            .and_then(|l| l.clock_skew_ms)
            .filter(|ms| ms.abs() >= 1_000);
        if let Some(w) = output::skew_words(skew) {
            println!(
                "  clock of {} is {w} of {}'s (status messages are kept by when they arrive, so this shortens no retention)",
                site.site_code, me.site_code
            );
        }
        match last.last() {
            Some(m) => println!(
                "  last status message from {}: {} {}",
                site.site_code,
                time(m.time_unix_ms),
                output::shown(&m.text)
            ),
            None => println!(
                "  no status message from {} has reached {}",
                site.site_code, me.site_code
            ),
        }
        match &child {
            Ok(cv) => {
                println!(
                    "  {} says: role {}, bootstrap {} {}",
                    output::shown(&site.server),
                    output::shown(&cv.status.role),
                    output::shown(&cv.status.bootstrap_state),
                    output::shown(&cv.status.bootstrap_detail)
                );
                if let Some(l) = cv
                    .status
                    .links
                    .iter()
                    .find(|l| l.to == site.parent_site_code)
                {
                    println!("{}", link_line(&site.site_code, l));
                }
                for j in &cv.failed_up {
                    println!(
                        "  failed job on {}: {} after {} attempts: {}",
                        site.site_code,
                        output::shown(&j.kind),
                        j.attempts,
                        output::shown(&j.reason)
                    );
                }
                if !cv.bootstrap_log.is_empty() {
                    println!("  bootstrap log (last lines):");
                    for l in cv.bootstrap_log.iter().rev().take(5).rev() {
                        println!("    {}", output::shown(l));
                    }
                }
            }
            Err(e) => println!("  cannot reach {}: {e}", site.server),
        }
        println!("\nlikely cause: {cause}");
        for f in &fix {
            println!("fix: {f}");
        }
        for (server, problem, fix) in &mp_found {
            println!("\nmanagement point {}: {}", output::shown(server), output::shown(problem));
            println!("fix: {fix}");
        }
    });
    Ok(())
}

/// A site that never became Active because the node meant for it was
/// refused a join token (status message 4806 at the issuer): the cause and
/// the fix, from the latest such message.
pub fn join_refusal(
    addr: &str,
    site: &pb::SiteRecord,
    texts: &[String],
) -> Option<(String, Vec<String>)> {
    if site.status == "Active" {
        return None;
    }
    let code = &site.site_code;
    let t = texts
        .iter()
        .rev()
        .find(|t| t.contains(&format!(" as site {code} ")))?;
    Some((
        format!("the node meant for {code} could not join: {t}"),
        vec![
            format!("controller --node {addr} token create --site {code}"),
            format!("start the node on {} with --join-token set to that token (an empty data dir), then it installs", site.server),
        ],
    ))
}

/// What is wrong with a site's management points, each with the fix
/// (seed 001's checklist, from what the site recorded of its installs and
/// verifications): (server, problem, fix).
pub fn mp_findings(
    addr: &str,
    site: &str,
    mps: &[pb::ManagementPoint],
) -> Vec<(String, String, String)> {
    let mut out = vec![];
    for m in mps {
        let server = m.server.clone();
        let d = m.detail.as_str();
        let fix = if m.state == "failed" {
            if d.starts_with("filesystem check")
                || d.contains("no allowed data volume")
                || d.contains("allows no data volumes")
            {
                format!("give {server} a data volume on a filesystem that honours fsync, mounted read-write (sms-node --mp-volumes DIR), then wait for the next retry")
            } else if d.starts_with("space check") {
                format!("free at least 70 MB on the volume of {server} or allow a larger one (sms-node --mp-volumes); the install is retried every interval")
            } else if d.starts_with("port check") {
                format!("stop the process named above on {server}, or move the management point: controller --node {addr} mp remove --site {site} --server {server}, then mp add with another --port")
            } else if d.starts_with("version check") {
                format!("remove the later management point from {server} (clear-fault mp-later-version there if it was injected)")
            } else if d.starts_with("database check") {
                format!("let the site database of {site} accept management points: controller --node {addr} clear-fault mp-db-access-refused (at the site server); the install is retried")
            } else if d.starts_with("cannot reach") {
                format!("start the sms-node on {server} or fix the address: controller mp check --server {server}")
            } else {
                format!("controller mp check --server {server}")
            }
        } else if m.state == "active" && m.verification.contains("failed") {
            if m.verification.contains("503") {
                format!("start the agent on {server}: controller --node {server} clear-fault mp-agent-stopped")
            } else {
                format!("check the server and its port: controller mp check --server {server}")
            }
        } else if m.state == "pending-install"
            || m.state == "installing"
            || m.state == "pending-uninstall"
        {
            format!("wait for the next watchdog cycle of {site}; watch it with controller --node {addr} mp list --site {site}")
        } else {
            continue;
        };
        let problem = if m.state == "active" {
            format!("installed but its verification fails: {}", m.verification)
        } else if d.is_empty() {
            m.state.clone()
        } else {
            format!("{}: {d}", m.state)
        };
        out.push((server, problem, fix));
    }
    out
}

fn diagnose(
    addr: &str,
    me: &pb::NodeStatus,
    site: &pb::SiteRecord,
    link: Option<&pb::LinkState>,
    failed_down: &[pb::FailedJob],
    last: &[pb::StatusMessage],
    child: &Result<ChildView, String>,
) -> (String, Vec<String>) {
    let (code, server, p) = (&site.site_code, &site.server, &me.site_code);
    let mut fix = Vec::new();
    if let Some(l) = link.filter(|l| crate::wire::link_state(l) == Some(LinkState::Severed)) {
        fix.push(format!("controller --node {addr} restore-link --to {code}"));
        return (format!("the link from {p} to {code} was cut by an administrator ({}); {code}'s reports wait at {code} until it is restored", l.detail), fix);
    }
    // A trust failure shows as the reason a link or a connection failed.
    let mut texts: Vec<String> = link.map(|l| l.detail.clone()).into_iter().collect();
    if let Err(e) = child {
        texts.push(e.clone());
    }
    if let Ok(cv) = child {
        texts.extend(
            cv.status
                .links
                .iter()
                .filter(|l| l.to == site.parent_site_code)
                .map(|l| l.detail.clone()),
        );
    }
    if let Some((why, how)) = trust_cause(&texts) {
        fix.push(
            how.replace("{code}", code)
                .replace("{addr}", addr)
                .replace(
                    "{reach}",
                    &child
                        .as_ref()
                        .map(|cv| cv.reach.clone())
                        .unwrap_or_else(|_| format!("--node {server}")),
                )
                .replace("{server}", server),
        );
        return (
            format!(
                "{p} and {code} do not trust each other: {}",
                why.replace("{code}", code)
            ),
            fix,
        );
    }
    if let Some(j) = failed_down.first() {
        fix.push(format!("controller --node {addr} retry-jobs --to {code}"));
        return (
            format!(
                "a {} job from {p} to {code} failed after {} attempts: {}",
                j.kind, j.attempts, j.reason
            ),
            fix,
        );
    }
    let cv = match child {
        Err(e) => {
            fix.push(format!("start sms-node on {server} with its existing data dir, or repair the network; its queued reports then flow without further action"));
            return (
                format!("{p} cannot reach {code}'s server {server}: {e}"),
                fix,
            );
        }
        Ok(cv) => cv,
    };
    let reach = &cv.reach;
    let st = &cv.status;
    if st.bootstrap_state == "failed" {
        if st.bootstrap_detail.contains("injected fault") {
            fix.push(format!("controller {reach} clear-fault bootstrap-failure"));
        }
        fix.push(format!(
            "controller --node {addr} upgrade-site --site {code} --wait"
        ));
        return (
            format!(
                "the bootstrap on {server} {}; as in SMS, no status message about it reaches {p}",
                st.bootstrap_detail
            ),
            fix,
        );
    }
    if crate::wire::role(st) == Some(NodeRole::Bare) && st.bootstrap_state == "none" {
        let detail = link
            .map(|l| format!("{} {}", l.state, l.detail))
            .unwrap_or_default();
        return (format!("the bootstrap has not reached {server} yet (link from {p}: {detail}); {p} keeps retrying"), fix);
    }
    if st.site_code != *code && !st.site_code.is_empty() {
        return (
            format!("{server} is installed as site {}, not {code}", st.site_code),
            fix,
        );
    }
    let up = st.links.iter().find(|l| l.to == site.parent_site_code);
    if let Some(l) = up.filter(|l| crate::wire::link_state(l) == Some(LinkState::Severed)) {
        fix.push(format!(
            "controller {reach} restore-link --to {}",
            site.parent_site_code
        ));
        return (
            format!(
                "{code} cut its own link to {} ({})",
                site.parent_site_code, l.detail
            ),
            fix,
        );
    }
    if let Some(j) = cv.failed_up.iter().find(|j| j.kind == "ct2") {
        if j.reason.contains("injected fault") {
            fix.push(format!("controller {reach} clear-fault ct2-job-failure"));
        }
        fix.push(format!("controller {reach} force-ct2"));
        return (format!("the job carrying {code}'s site control report (CT2) failed after {} attempts: {}; the phase 4 report got through, so {p} shows {}", j.attempts, j.reason, site.status), fix);
    }
    if let Some(j) = cv.failed_up.first() {
        fix.push(format!(
            "controller {reach} retry-jobs --to {}",
            site.parent_site_code
        ));
        return (
            format!(
                "a {} job from {code} failed after {} attempts: {}",
                j.kind, j.attempts, j.reason
            ),
            fix,
        );
    }
    if let Some(l) = up.filter(|l| l.queued_jobs > 0 && l.state != "up") {
        return (
            format!(
                "{code} holds {} reports for {} but its link is {}: {}",
                l.queued_jobs, site.parent_site_code, l.state, l.detail
            ),
            fix,
        );
    }
    if site.stale {
        fix.push(format!("controller {reach} force-ct2"));
        return (
            format!(
                "{code} is Stale: nothing from it has reached {p} for {}, though its server \
                 answers and nothing is held back on its side; its next report clears it",
                output::report_age(site).trim_end_matches(" ago"),
            ),
            fix,
        );
    }
    if crate::wire::site_status(site) == Some(SiteStatus::Active) {
        let when = last
            .last()
            .map(|m| time(m.time_unix_ms))
            .unwrap_or_else(|| "-".into());
        return (
            format!("{code} is Active; nothing to fix (last status message {when})"),
            fix,
        );
    }
    if st.bootstrap_state == "running" {
        return (
            format!("{code} is still installing ({})", st.bootstrap_detail),
            fix,
        );
    }
    (
        format!("{code} is installed and its links are up; its reports should arrive shortly"),
        fix,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent() -> pb::NodeStatus {
        pb::NodeStatus {
            role: "primary".into(),
            site_code: "PRI".into(),
            ..Default::default()
        }
    }

    fn site(status: &str) -> pb::SiteRecord {
        pb::SiteRecord {
            site_code: "S01".into(),
            parent_site_code: "PRI".into(),
            server: "h:2".into(),
            status: status.into(),
            ..Default::default()
        }
    }

    fn link(to: &str, state: &str) -> pb::LinkState {
        pb::LinkState {
            to: to.into(),
            state: state.into(),
            detail: "by admin".into(),
            ..Default::default()
        }
    }

    fn child(role: &str, bootstrap: &str, detail: &str) -> Result<ChildView, String> {
        Ok(ChildView {
            status: pb::NodeStatus {
                role: role.into(),
                site_code: if role == "bare" { "" } else { "S01" }.into(),
                bootstrap_state: bootstrap.into(),
                bootstrap_detail: detail.into(),
                ..Default::default()
            },
            bootstrap_log: vec![],
            failed_up: vec![],
            reach: "--node h:2".into(),
        })
    }

    fn job(kind: &str, reason: &str) -> pb::FailedJob {
        pb::FailedJob {
            kind: kind.into(),
            attempts: 5,
            reason: reason.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_severed_link_at_the_parent_is_fixed_by_restoring_it() {
        let l = link("S01", "severed");
        let (cause, fix) = diagnose(
            "h:1",
            &parent(),
            &site("Pending"),
            Some(&l),
            &[job("ct2", "x")],
            &[],
            &child("bare", "none", ""),
        );
        assert!(
            cause.starts_with("the link from PRI to S01 was cut by an administrator (by admin)")
        );
        assert_eq!(fix, ["controller --node h:1 restore-link --to S01"]);
    }

    #[test]
    fn failed_jobs_down_are_retried_and_an_unreachable_child_is_named() {
        let l = link("S01", "up");
        let (cause, fix) = diagnose(
            "h:1",
            &parent(),
            &site("Pending"),
            Some(&l),
            &[job("bootstrap", "refused")],
            &[],
            &Err("h:2 did not answer within 5 s".into()),
        );
        assert_eq!(
            cause,
            "a bootstrap job from PRI to S01 failed after 5 attempts: refused"
        );
        assert_eq!(fix, ["controller --node h:1 retry-jobs --to S01"]);
        let (cause, fix) = diagnose(
            "h:1",
            &parent(),
            &site("Pending"),
            Some(&l),
            &[],
            &[],
            &Err("h:2 did not answer within 5 s".into()),
        );
        assert_eq!(
            cause,
            "PRI cannot reach S01's server h:2: h:2 did not answer within 5 s"
        );
        assert_eq!(fix.len(), 1);
    }

    #[test]
    fn an_injected_bootstrap_failure_is_cleared_before_the_install_is_rerun() {
        let (cause, fix) = diagnose(
            "h:1",
            &parent(),
            &site("Phase 2 Complete"),
            None,
            &[],
            &[],
            &child("bare", "failed", "failed in phase 3: injected fault"),
        );
        assert!(
            cause.contains("no status message about it reaches PRI"),
            "{cause}"
        );
        assert_eq!(
            fix,
            [
                "controller --node h:2 clear-fault bootstrap-failure",
                "controller --node h:1 upgrade-site --site S01 --wait",
            ]
        );
    }

    #[test]
    fn a_stale_site_that_answers_is_named_stale_with_its_silence() {
        let mut s = site("Active");
        s.stale = true;
        s.last_report_unix_ms = 5;
        s.last_report_age_ms = 200_000;
        let (cause, fix) = diagnose(
            "h:1",
            &parent(),
            &s,
            None,
            &[],
            &[],
            &child("secondary", "done", ""),
        );
        assert!(cause.starts_with("S01 is Stale"), "{cause}");
        assert!(cause.contains("for 3m 20s"), "{cause}");
        assert_eq!(fix, ["controller --node h:2 force-ct2"]);
    }

    #[test]
    fn a_failed_ct2_is_forced_again_and_an_active_site_needs_nothing() {
        let mut cv = child("secondary", "done", "").unwrap();
        cv.failed_up = vec![job("ct2", "injected fault")];
        let (cause, fix) = diagnose(
            "h:1",
            &parent(),
            &site("Phase 4 Complete"),
            None,
            &[],
            &[],
            &Ok(cv),
        );
        assert!(cause.contains("shows Phase 4 Complete"), "{cause}");
        assert_eq!(
            fix,
            [
                "controller --node h:2 clear-fault ct2-job-failure",
                "controller --node h:2 force-ct2",
            ]
        );
        let last = [pb::StatusMessage {
            time_unix_ms: 0,
            ..Default::default()
        }];
        let (cause, fix) = diagnose(
            "h:1",
            &parent(),
            &site("Active"),
            None,
            &[],
            &last,
            &child("secondary", "done", ""),
        );
        assert_eq!(
            cause,
            "S01 is Active; nothing to fix (last status message 1970-01-01T00:00:00.000Z)"
        );
        assert!(fix.is_empty());
    }
}

/// The trust failure a connection error names, if any: (cause, fix), the
/// fix with `{code}` and `{addr}` to fill in.
pub fn trust_cause(texts: &[String]) -> Option<(String, String)> {
    let all = texts.join(" | ");
    let has = |w: &str| all.contains(w);
    let rejoin = "join the node again: `controller --node {addr} token create --site {code}`, then start its sms-node with --join-token (a new data dir if the site was deleted)";
    if has("fault cert-exchange-failure") {
        return Some((
            "{code}'s server presents a certificate from outside the hierarchy (its certificate \
             exchange failed: the fault cert-exchange-failure is in force there), so its links \
             are refused and its reports never arrive"
                .into(),
            "controller {reach} clear-fault cert-exchange-failure (its sender retries \
             and the site reports within a retry interval)"
                .into(),
        ));
    }
    if has("UnknownCA") || has("unknown ca") || has("BadCertificate") {
        return Some((
            "a server presents a certificate this hierarchy did not issue (its certificate \
             exchange failed, or it joined another hierarchy)"
                .into(),
            rejoin.into(),
        ));
    }
    if has("revoked") {
        return Some((
            "a certificate was revoked (the site was deleted, or an administrator revoked it)"
                .into(),
            rejoin.into(),
        ));
    }
    if has("Expired") || has("expired") {
        return Some(("a certificate has expired (its holder renews at two thirds of its life, so its issuer was out of reach for the last third, or a node was stopped that long), or the clocks are far apart".into(), format!("check both clocks; if a certificate expired, {rejoin}")));
    }
    if has("NotValidYet") {
        return Some((
            "a certificate is not valid yet: the clocks of the two servers are far apart".into(),
            "set both clocks right (NTP); nothing else is needed".into(),
        ));
    }
    if has("UnknownIssuer") || has("does not end in the hierarchy root") || has("BadSignature") {
        return Some(("a certificate was issued by another hierarchy's authority (a node joined elsewhere, or a reinstalled central site)".into(), rejoin.into()));
    }
    if has("not for site") || has("certificate is for site") {
        return Some(("the server at the site's address holds another site's certificate (an address mix-up, or a reused node)".into(), "check the site's address (controller sites); if the node is the wrong one, give the site its own node and join it with a token".into()));
    }
    if has("client certificate") || has("CertificateRequired") {
        return Some(("a node without a certificate (or started with --insecure) talks to one that requires TLS".into(), rejoin.into()));
    }
    None
}

#[cfg(test)]
mod trust_tests {
    use super::{join_refusal, mp_findings, pb, trust_cause};

    #[test]
    fn a_refused_join_is_the_cause_of_a_pending_site() {
        let site = pb::SiteRecord {
            site_code: "S01".into(),
            status: "Pending".into(),
            server: "10.0.0.7:8500".into(),
            ..Default::default()
        };
        let texts = vec![
            "A node at 10.0.0.7:4000 tried to join as site S02 with join token ab and was refused: expired".to_string(),
            "A node at 10.0.0.7:4000 tried to join as site S01 with join token cd and was refused: this join token was already used".to_string(),
        ];
        let (cause, fix) = join_refusal("pri:1", &site, &texts).unwrap();
        assert!(cause.contains("already used"), "{cause}");
        assert!(fix[0].contains("token create --site S01"), "{fix:?}");
        let active = pb::SiteRecord {
            status: "Active".into(),
            ..site.clone()
        };
        assert!(join_refusal("pri:1", &active, &texts).is_none());
        assert!(
            join_refusal("pri:1", &site, &texts[..1]).is_none(),
            "another site's refusal"
        );
    }

    fn mp(state: &str, detail: &str, verification: &str) -> pb::ManagementPoint {
        pb::ManagementPoint {
            server: "10.0.0.9:8500".into(),
            state: state.into(),
            detail: detail.into(),
            verification: verification.into(),
            ..Default::default()
        }
    }

    #[test]
    fn management_point_failures_are_named_with_their_fix() {
        let cases = [
            (
                mp(
                    "failed",
                    "port check: port 80 on h is already in use by pid 7 (nginx)",
                    "",
                ),
                "another --port",
            ),
            (mp("failed", "space check: v has 51 MB free", ""), "70 MB"),
            (
                mp("failed", "filesystem check: v is on tmpfs", ""),
                "honours fsync",
            ),
            (
                mp("failed", "no allowed data volume is usable (v: tmpfs)", ""),
                "honours fsync",
            ),
            (
                mp("failed", "version check: version 1.0.0 is installed", ""),
                "later management point",
            ),
            (
                mp("failed", "database check: refused", ""),
                "clear-fault mp-db-access-refused",
            ),
            (
                mp("failed", "cannot reach x: refused", ""),
                "start the sms-node",
            ),
            (
                mp(
                    "active",
                    "",
                    "Http verification .sms_aut failed with status code 503, Service Unavailable",
                ),
                "clear-fault mp-agent-stopped",
            ),
        ];
        for (m, want) in cases {
            let f = mp_findings("pri:1", "S01", std::slice::from_ref(&m));
            assert_eq!(f.len(), 1, "{m:?}");
            assert!(f[0].2.contains(want), "{m:?} -> {}", f[0].2);
        }
        let ok = mp(
            "active",
            "installed",
            "Http verification .sms_aut succeeded with status code 200, OK",
        );
        assert!(mp_findings("pri:1", "S01", &[ok]).is_empty());
    }

    #[test]
    fn trust_failures_are_named_with_their_fix() {
        let t = |s: &str| trust_cause(&[s.to_string()]).map(|(c, _)| c);
        assert!(t("PermissionDenied: certificate 0a1b was revoked here")
            .unwrap()
            .contains("revoked"));
        assert!(t("invalid peer certificate: Expired")
            .unwrap()
            .contains("expired"));
        assert!(t("invalid peer certificate: UnknownIssuer")
            .unwrap()
            .contains("another hierarchy"));
        assert!(
            t("the server presents a certificate for S02 (secondary), not for site S01")
                .unwrap()
                .contains("another site")
        );
        assert!(t("received fatal alert: UnknownCA")
            .unwrap()
            .contains("did not issue"));
        let (cause, fix) = trust_cause(&["h2 protocol error (this node presents a certificate \
             from outside the hierarchy: fault cert-exchange-failure)"
            .to_string()])
        .unwrap();
        assert!(cause.contains("certificate exchange failed"), "{cause}");
        assert!(fix.contains("clear-fault cert-exchange-failure"), "{fix}");
        assert_eq!(t("connection refused"), None);
        let (_, fix) = trust_cause(&["revoked".to_string()]).unwrap();
        assert!(fix.contains("token create --site {code}"), "{fix}");
    }
}
