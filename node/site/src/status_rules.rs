//! Status filter rules, compiled: the site control's ordered rule list made
//! ready for matching every message stored here (lower-cased component,
//! parsed webhook, shared argv), rebuilt only when a new CT0 is published.
//! Evaluation allocates nothing unless a rule calls a webhook or a program.
//! The calls themselves are made by `status_actions`, off the store path.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use sms_types::status_rules::*;
use sms_types::{SiteCode, StatusMessage};

/// One compiled rule.
#[derive(Debug)]
struct Rule {
    name: Arc<str>,
    ids: Option<(u32, u32)>,
    severity: Option<SeverityMatch>,
    component: Option<String>,
    site: Option<SiteCode>,
    replicate: Option<Replicate>,
    keep_days: Option<u32>,
    webhook: Option<Arc<WebhookUrl>>,
    program: Option<Arc<[String]>>,
    stop: bool,
}

impl Rule {
    fn matches(&self, m: &StatusMessage) -> bool {
        self.ids.is_none_or(|(lo, hi)| (lo..=hi).contains(&m.id))
            && self.severity.is_none_or(|s| s.matches(m.severity))
            && self
                .component
                .as_deref()
                .is_none_or(|c| m.component.eq_ignore_ascii_case(c))
            && self.site.as_ref().is_none_or(|s| s == &m.site_code)
    }
}

/// An outside call a rule asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Webhook(Arc<WebhookUrl>),
    Program(Arc<[String]>),
}

/// One call to make for one message.
#[derive(Clone, Debug)]
pub struct Call {
    /// The message's place in the batch decided on: a call is made only
    /// if the store says that message was new here.
    pub msg: usize,
    pub rule: Arc<str>,
    pub action: Action,
    /// The message as JSON (see [`message_json`]).
    pub body: Arc<Vec<u8>>,
}

/// A site's rules, ready to evaluate.
#[derive(Debug, Default)]
pub struct Compiled {
    rules: Vec<Rule>,
}

impl Compiled {
    /// Compiles a rule list that passed [`check_rules`]; a webhook that does
    /// not parse (it cannot, after the check) is left out, with a warning.
    pub fn new(rules: &[StatusRule]) -> Compiled {
        let rules = rules
            .iter()
            .map(|r| Rule {
                name: r.name.as_str().into(),
                ids: r.ids,
                severity: r.severity,
                component: r.component.clone(),
                site: r.site_code.clone(),
                replicate: r.replicate,
                keep_days: r.keep_days,
                webhook: r.webhook.as_deref().and_then(|w| match parse_webhook(w) {
                    Ok(u) => Some(Arc::new(u)),
                    Err(e) => {
                        tracing::warn!(rule = %r.name, "status rule webhook ignored: {e}");
                        None
                    }
                }),
                program: (!r.program.is_empty()).then(|| r.program.clone().into()),
                stop: r.stop,
            })
            .collect();
        Compiled { rules }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// What the rules decide for `m`: matching rules apply in order until
    /// one with `stop`; the first to set the replication or the keep
    /// period decides it; every matching rule's calls are handed to `call`.
    pub fn evaluate(&self, m: &StatusMessage, mut call: impl FnMut(&str, Action)) -> Disposition {
        let mut d = Disposition::default();
        for r in &self.rules {
            if !r.matches(m) {
                continue;
            }
            d.replicate = d.replicate.or(r.replicate);
            d.keep_days = d.keep_days.or(r.keep_days);
            if let Some(w) = &r.webhook {
                call(&r.name, Action::Webhook(w.clone()));
            }
            if let Some(p) = &r.program {
                call(&r.name, Action::Program(p.clone()));
            }
            if r.stop {
                break;
            }
        }
        d
    }

    /// Decides for a batch about to be stored: one disposition per message
    /// (none at all when there are no rules, the common case) and the calls
    /// to make once it is stored.
    pub fn decide(&self, msgs: &[StatusMessage]) -> (Vec<Disposition>, Vec<Call>) {
        if self.rules.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let mut calls = Vec::new();
        let dispositions = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut body: Option<Arc<Vec<u8>>> = None;
                self.evaluate(m, |rule, action| {
                    let body = body
                        .get_or_insert_with(|| Arc::new(message_json(m)))
                        .clone();
                    calls.push(Call {
                        msg: i,
                        rule: rule.into(),
                        action,
                        body,
                    });
                })
            })
            .collect();
        (dispositions, calls)
    }
}

/// The message as a webhook or program receives it: the fields of
/// `controller status-messages --json`, plus its uid and insertion strings.
pub fn message_json(m: &StatusMessage) -> Vec<u8> {
    serde_json::json!({
        "uid": m.uid.to_string(),
        "id": m.id,
        "severity": m.severity.as_str(),
        "site_code": m.site_code.to_string(),
        "component": m.component,
        "machine": m.machine,
        "time_unix_ms": m.time_unix_ms,
        "insertion_strings": m.insertion_strings,
        "text": m.text,
    })
    .to_string()
    .into_bytes()
}

/// Calls waiting for the action runner, at most this many: a burst beyond
/// it is dropped and counted rather than slowing the store.
pub const ACTION_BACKLOG: usize = 1024;

/// The queue between the store path and the action runner, and what
/// became of the calls.
pub struct ActionQueue {
    tx: mpsc::Sender<Call>,
    rx: Mutex<Option<mpsc::Receiver<Call>>>,
    pub(crate) done: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

impl Default for ActionQueue {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(ACTION_BACKLOG);
        ActionQueue {
            tx,
            rx: Mutex::new(Some(rx)),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }
}

/// Counts of rule calls since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActionCounts {
    pub done: u64,
    pub failed: u64,
    pub dropped: u64,
}

impl ActionQueue {
    /// Queues calls without waiting; when the runner is that far behind, a
    /// call is dropped, logged and counted.
    pub fn push(&self, calls: Vec<Call>) {
        for c in calls {
            if let Err(e) = self.tx.try_send(c) {
                let c = match e {
                    mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => c,
                };
                self.dropped.fetch_add(1, Relaxed);
                tracing::warn!(
                    rule = %c.rule,
                    "status rule action dropped: {ACTION_BACKLOG} calls are already waiting"
                );
            }
        }
    }

    /// The receiving end, once (to the runner).
    pub(crate) fn take_receiver(&self) -> Option<mpsc::Receiver<Call>> {
        self.rx.lock().expect("action queue lock").take()
    }

    pub fn counts(&self) -> ActionCounts {
        ActionCounts {
            done: self.done.load(Relaxed),
            failed: self.failed.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
        }
    }
}
