//! Status filter rules: matching, order and `stop`, and their actions at a
//! site (replication priority or none, retention, webhook, program), and
//! the site control change that adds and removes them.

use std::sync::atomic::Ordering::Relaxed;

use sms_types::catalog;
use sms_types::status_rules::*;
use sms_types::*;

use super::support::*;
use crate::hierarchy::ControlChange;
use crate::status_rules::{Action, Compiled};

fn rule(name: &str) -> StatusRule {
    StatusRule {
        name: name.into(),
        ids: None,
        severity: None,
        component: None,
        site_code: None,
        replicate: None,
        keep_days: None,
        webhook: None,
        program: vec![],
        stop: false,
    }
}

fn message(id: u32, severity: Severity, component: &str, site: &str) -> StatusMessage {
    StatusMessage {
        uid: uuid::Uuid::now_v7(),
        id,
        severity,
        site_code: code(site),
        component: component.into(),
        machine: "m".into(),
        time_unix_ms: now_ms(),
        insertion_strings: vec!["a".into()],
        text: "text".into(),
    }
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// One rule, "hook", that posts every message to `url`; the calls it asks
/// for, as the runner would get them.
fn one_webhook(node: &Node, url: &str) -> tokio::sync::mpsc::Receiver<crate::status_rules::Call> {
    set_rules(
        node,
        vec![StatusRule {
            webhook: Some(url.into()),
            ..rule("hook")
        }],
    );
    node.ctx.status.actions.take_receiver().unwrap()
}

/// Installs `rules` as the site's control, as a new CT0 would.
fn set_rules(node: &Node, rules: Vec<StatusRule>) {
    let mut c = node.ctx.config().expect("a site control");
    c.serial += 1;
    c.status_rules = rules;
    node.ctx.publish_config(c);
}

#[test]
fn each_matcher_narrows_and_an_empty_rule_matches_everything() {
    let m = message(5000, Severity::Warning, "SMS_SITE_CONFIG_MANAGER", "S01");
    let keeps = |r: StatusRule| {
        let mut r = r;
        r.keep_days = Some(9);
        Compiled::new(&[r]).evaluate(&m, |_, _| {}).keep_days == Some(9)
    };
    assert!(keeps(rule("all")));
    assert!(keeps(StatusRule {
        ids: Some((4000, 5000)),
        ..rule("r")
    }));
    assert!(!keeps(StatusRule {
        ids: Some((5001, 6000)),
        ..rule("r")
    }));
    assert!(keeps(StatusRule {
        severity: Some(SeverityMatch::AtLeast(Severity::Informational)),
        ..rule("r")
    }));
    assert!(!keeps(StatusRule {
        severity: Some(SeverityMatch::AtLeast(Severity::Error)),
        ..rule("r")
    }));
    assert!(!keeps(StatusRule {
        severity: Some(SeverityMatch::Exactly(Severity::Informational)),
        ..rule("r")
    }));
    assert!(keeps(StatusRule {
        component: Some("sms_site_config_manager".into()),
        ..rule("r")
    }));
    assert!(!keeps(StatusRule {
        component: Some("SMS_HIERARCHY_MANAGER".into()),
        ..rule("r")
    }));
    assert!(keeps(StatusRule {
        site_code: Some(code("S01")),
        ..rule("r")
    }));
    assert!(!keeps(StatusRule {
        site_code: Some(code("S02")),
        ids: Some((5000, 5000)),
        ..rule("r")
    }));
}

#[test]
fn rules_apply_in_order_the_first_decides_and_stop_ends_them() {
    let m = message(5000, Severity::Error, "C", "S01");
    let rules = [
        StatusRule {
            ids: Some((6000, 6000)),
            replicate: Some(Replicate::Never),
            ..rule("other-id")
        },
        StatusRule {
            replicate: Some(Replicate::At(Priority::Low)),
            webhook: Some("http://127.0.0.1:1/a".into()),
            ..rule("first")
        },
        StatusRule {
            replicate: Some(Replicate::Never),
            keep_days: Some(3),
            program: args(&["/bin/true"]),
            stop: true,
            ..rule("second")
        },
        StatusRule {
            keep_days: Some(30),
            webhook: Some("http://127.0.0.1:1/after-stop".into()),
            ..rule("after-stop")
        },
    ];
    let mut calls = Vec::new();
    let d = Compiled::new(&rules).evaluate(&m, |rule, a| calls.push((rule.to_string(), a)));
    assert_eq!(
        d,
        Disposition {
            replicate: Some(Replicate::At(Priority::Low)),
            keep_days: Some(3),
        },
        "the first rule to set each decides; none after the stop"
    );
    let names: Vec<_> = calls.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["first", "second"]);
    assert!(matches!(&calls[0].1, Action::Webhook(w) if w.path == "/a"));
    assert!(matches!(&calls[1].1, Action::Program(p) if p[0] == "/bin/true"));
    // No rules: nothing decided, nothing allocated per message.
    let (d, c) = Compiled::new(&[]).decide(std::slice::from_ref(&m));
    assert!(d.is_empty() && c.is_empty());
}

#[tokio::test]
async fn a_secondary_keeps_a_dropped_message_and_sends_another_at_the_rule_priority() {
    let node = secondary("S01", "PRI");
    let ctx = &node.ctx;
    set_rules(
        &node,
        vec![
            StatusRule {
                ids: Some((catalog::LINK_SEVERED.id, catalog::LINK_SEVERED.id)),
                replicate: Some(Replicate::Never),
                stop: true,
                ..rule("keep-severed-here")
            },
            StatusRule {
                ids: Some((catalog::LINK_RESTORED.id, catalog::LINK_RESTORED.id)),
                replicate: Some(Replicate::At(Priority::Low)),
                ..rule("restored-low")
            },
        ],
    );
    crate::status::emit(ctx, &catalog::LINK_SEVERED, &args(&["PRI"])).unwrap();
    crate::status::emit(ctx, &catalog::LINK_RESTORED, &args(&["PRI"])).unwrap();
    crate::status::emit(ctx, &catalog::HM_PRIMARY_ATTACHED, &args(&["S09", "x:1"])).unwrap();
    let stored: Vec<u32> = ctx
        .store
        .status_messages(None, None, 10)
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert!(
        stored.contains(&catalog::LINK_SEVERED.id),
        "kept at the site"
    );
    assert!(crate::status_manager::replicate(ctx).await.unwrap());
    let jobs = |p| {
        ctx.store
            .outbox_scan(&code("PRI"), p, None, 10)
            .unwrap()
            .into_iter()
            .flat_map(|(_, j)| match j.payload {
                Payload::Status(m) => m.into_iter().map(|m| m.id).collect(),
                _ => vec![],
            })
            .collect::<Vec<u32>>()
    };
    assert_eq!(jobs(Priority::Low), vec![catalog::LINK_RESTORED.id]);
    let medium = jobs(Priority::Medium);
    let high = jobs(Priority::High);
    assert!(
        medium.contains(&catalog::HM_PRIMARY_ATTACHED.id)
            || high.contains(&catalog::HM_PRIMARY_ATTACHED.id),
        "a message no rule touches goes up as before"
    );
    for p in Priority::ALL {
        assert!(
            !jobs(p).contains(&catalog::LINK_SEVERED.id),
            "the dropped message never goes up"
        );
    }
}

#[tokio::test]
async fn a_parent_applies_its_rules_to_what_its_children_report() {
    let node = primary_below("S01", "PRI");
    let ctx = &node.ctx;
    set_rules(
        &node,
        vec![StatusRule {
            site_code: Some(code("S02")),
            replicate: Some(Replicate::Never),
            ..rule("s02-stays")
        }],
    );
    let from_child = message(5000, Severity::Informational, "C", "S02");
    let other = message(5000, Severity::Informational, "C", "S03");
    ctx.store
        .put_inbox(
            sms_store::Inbox::Status,
            &job(
                "S02",
                "S01",
                Priority::Medium,
                Payload::Status(vec![from_child.clone(), other.clone()]),
            ),
        )
        .unwrap();
    crate::status_manager::despool_inbox(ctx).await.unwrap();
    assert_eq!(ctx.store.status_messages(None, None, 10).unwrap().len(), 2);
    assert_eq!(ctx.store.status_outq(10).unwrap(), vec![other]);
}

#[tokio::test]
async fn a_batch_resent_after_a_lost_acknowledgement_calls_once() {
    let node = primary_below("S01", "PRI");
    let ctx = &node.ctx;
    let mut rx = one_webhook(&node, "http://127.0.0.1:9/hook");
    let (a, b) = (
        message(5000, Severity::Error, "C", "S02"),
        message(5001, Severity::Error, "C", "S02"),
    );
    let stored_errors = || ctx.status.stored_by_severity()[2].1;
    let before = stored_errors();
    let batch =
        |msgs: Vec<StatusMessage>| job("S02", "S01", Priority::Medium, Payload::Status(msgs));
    // The child's sender never saw the first acknowledgement: the same
    // batch comes again, then a later one that repeats `b` beside a new one.
    let c = message(5002, Severity::Error, "C", "S02");
    for j in [
        batch(vec![a.clone(), b.clone()]),
        batch(vec![a.clone(), b.clone()]),
        batch(vec![b.clone(), c.clone()]),
    ] {
        ctx.store.put_inbox(sms_store::Inbox::Status, &j).unwrap();
        crate::status_manager::despool_inbox(ctx).await.unwrap();
    }
    let mut called = Vec::new();
    while let Ok(call) = rx.try_recv() {
        let v: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
        called.push(v["id"].as_u64().unwrap());
    }
    assert_eq!(
        called,
        [5000, 5001, 5002],
        "one call per message, none for a repeat"
    );
    assert_eq!(stored_errors() - before, 3, "a repeat is not counted again");
    assert_eq!(ctx.store.status_outq(10).unwrap(), vec![a, b, c]);
}

#[tokio::test]
async fn a_rule_keeps_matching_messages_longer_or_shorter() {
    let node = central("PRI");
    let ctx = &node.ctx;
    set_rules(
        &node,
        vec![
            StatusRule {
                ids: Some((catalog::LINK_SEVERED.id, catalog::LINK_SEVERED.id)),
                keep_days: Some(1),
                ..rule("short")
            },
            StatusRule {
                ids: Some((catalog::LINK_RESTORED.id, catalog::LINK_RESTORED.id)),
                keep_days: Some(30),
                ..rule("long")
            },
        ],
    );
    for def in [
        &catalog::LINK_SEVERED,
        &catalog::LINK_RESTORED,
        &catalog::HM_PRIMARY_ATTACHED,
    ] {
        crate::status::emit(ctx, def, &args(&["S01", "x:1"])).unwrap();
    }
    let ids = || -> Vec<u32> {
        ctx.store
            .status_messages(None, None, 10)
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect()
    };
    // The hourly prune as it runs two days from now, then eight.
    let prune_at = |t: u64| ctx.store.prune_status(t - DEFAULT_RETENTION_MS).unwrap();
    assert_eq!(prune_at(now_ms() + 2 * DAY_MS), 1);
    assert!(!ids().contains(&catalog::LINK_SEVERED.id));
    assert_eq!(prune_at(now_ms() + 8 * DAY_MS), 1);
    assert_eq!(ids(), vec![catalog::LINK_RESTORED.id]);
}

#[tokio::test]
async fn a_webhook_gets_the_message_as_json_and_is_retried_a_bounded_number_of_times() {
    let node = central("PRI");
    let ctx = &node.ctx;
    let mut rx = one_webhook(&node, "http://127.0.0.1:9/hook");
    crate::status::emit(ctx, &catalog::LINK_SEVERED, &args(&["S01"])).unwrap();
    crate::status::emit(ctx, &catalog::LINK_RESTORED, &args(&["S01"])).unwrap();

    // Refused connection, then a 503, then accepted.
    *node.peers.post_answers.lock().unwrap() = vec![
        Err("cannot connect".into()),
        Ok((503, "Service Unavailable".into(), vec![])),
        Ok((200, "OK".into(), vec![])),
    ];
    crate::status_actions::run(ctx, rx.try_recv().unwrap()).await;
    let counts = ctx.status.actions.counts();
    assert_eq!((counts.done, counts.failed), (1, 0));
    let posted = node.peers.posted.lock().unwrap().clone();
    assert_eq!(posted.len(), 3);
    let v: serde_json::Value = serde_json::from_slice(&posted[2]).unwrap();
    assert_eq!(v["id"], catalog::LINK_SEVERED.id);
    assert_eq!(v["site_code"], "PRI");
    assert_eq!(v["severity"], catalog::LINK_SEVERED.severity.as_str());
    assert_eq!(v["insertion_strings"], serde_json::json!(["S01"]));
    assert!(node
        .peers
        .calls()
        .contains(&"http_post 127.0.0.1:9/hook".to_string()));

    // Never answered: tried WEBHOOK_ATTEMPTS times, then counted as failed.
    node.peers.posted.lock().unwrap().clear();
    crate::status_actions::run(ctx, rx.try_recv().unwrap()).await;
    assert_eq!(
        node.peers.posted.lock().unwrap().len(),
        crate::status_actions::WEBHOOK_ATTEMPTS as usize
    );
    assert_eq!(ctx.status.actions.counts().failed, 1);
}

#[tokio::test]
async fn a_refusing_webhook_is_not_tried_again() {
    let node = central("PRI");
    let ctx = &node.ctx;
    let mut rx = one_webhook(&node, "http://127.0.0.1:9/");
    crate::status::emit(ctx, &catalog::LINK_SEVERED, &args(&["S01"])).unwrap();
    *node.peers.post_answers.lock().unwrap() = vec![Ok((400, "Bad Request".into(), vec![]))];
    crate::status_actions::run(ctx, rx.try_recv().unwrap()).await;
    assert_eq!(node.peers.posted.lock().unwrap().len(), 1);
    assert_eq!(ctx.status.actions.counts().failed, 1);
}

#[tokio::test]
async fn a_program_gets_the_message_on_stdin_and_its_failure_is_counted() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("save.sh");
    std::fs::write(&script, "#!/bin/sh\ncat > \"$1\"\nexit \"$2\"\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = dir.path().join("message.json");
    let argv = |code: &str| {
        vec![
            script.display().to_string(),
            out.display().to_string(),
            code.to_string(),
        ]
    };
    let node = central("PRI");
    let ctx = &node.ctx;
    set_rules(
        &node,
        vec![
            StatusRule {
                ids: Some((catalog::LINK_SEVERED.id, catalog::LINK_SEVERED.id)),
                program: argv("0"),
                ..rule("save")
            },
            StatusRule {
                ids: Some((catalog::LINK_RESTORED.id, catalog::LINK_RESTORED.id)),
                program: argv("3"),
                ..rule("fails")
            },
        ],
    );
    let mut rx = ctx.status.actions.take_receiver().unwrap();
    crate::status::emit(ctx, &catalog::LINK_SEVERED, &args(&["S01"])).unwrap();
    crate::status_actions::run(ctx, rx.try_recv().unwrap()).await;
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v["id"], catalog::LINK_SEVERED.id);
    assert_eq!(v["component"], catalog::LINK_SEVERED.component);
    assert_eq!(ctx.status.actions.counts().done, 1);

    crate::status::emit(ctx, &catalog::LINK_RESTORED, &args(&["S01"])).unwrap();
    crate::status_actions::run(ctx, rx.try_recv().unwrap()).await;
    assert_eq!(ctx.status.actions.counts().failed, 1);
    let err = crate::status_actions::program(&args(&["/nonexistent/prog"]), b"{}")
        .await
        .unwrap_err();
    assert!(err.contains("cannot start /nonexistent/prog"), "{err}");
}

#[test]
fn a_full_queue_drops_calls_and_counts_them() {
    let q = crate::status_rules::ActionQueue::default();
    let call = crate::status_rules::Call {
        msg: 0,
        rule: "r".into(),
        action: Action::Program(vec!["/bin/true".to_string()].into()),
        body: std::sync::Arc::new(vec![]),
    };
    q.push(vec![call; crate::status_rules::ACTION_BACKLOG + 2]);
    assert_eq!(q.dropped.load(Relaxed), 2);
}

#[test]
fn rules_are_added_at_a_position_and_removed_by_name_or_position() {
    let mut c = ct0("S01", Some("PRI"));
    let add = |name: &str, position: Option<usize>| ControlChange {
        add_status_rule: Some((
            StatusRule {
                stop: true,
                ..rule(name)
            },
            position,
        )),
        ..Default::default()
    };
    let names = |c: &SiteControl| -> Vec<String> {
        c.status_rules.iter().map(|r| r.name.clone()).collect()
    };
    add("a", None).apply(&mut c).unwrap();
    add("c", None).apply(&mut c).unwrap();
    add("b", Some(2)).apply(&mut c).unwrap();
    add("first", Some(1)).apply(&mut c).unwrap();
    assert_eq!(names(&c), ["first", "a", "b", "c"]);
    assert!(add("A", None)
        .apply(&mut c)
        .unwrap_err()
        .contains("already has a status rule named A"));
    assert!(add("z", Some(6))
        .apply(&mut c)
        .unwrap_err()
        .contains("outside 1..=5"));
    assert!(ControlChange {
        add_status_rule: Some((rule("no-action"), None)),
        ..Default::default()
    }
    .apply(&mut c)
    .unwrap_err()
    .contains("no action"));
    let remove = |w: &str| ControlChange {
        remove_status_rule: Some(w.into()),
        ..Default::default()
    };
    remove("B").apply(&mut c).unwrap();
    remove("1").apply(&mut c).unwrap();
    assert_eq!(names(&c), ["a", "c"]);
    assert!(remove("3")
        .apply(&mut c)
        .unwrap_err()
        .contains("no status rule at position 3"));
    assert!(remove("zz")
        .apply(&mut c)
        .unwrap_err()
        .contains("no status rule named zz"));
}
