//! Site Component Manager's record: which components run, which stage 3 of
//! the watchdog cycle verifies and CT2s report. Starting them is the
//! wiring's job (`wiring`), the one module that knows every component.

use std::collections::BTreeMap;
use std::sync::Mutex;

use std::sync::Arc;

use sms_types::{ComponentState, StatusMessage};

pub const SCHEDULER: &str = "SMS_SCHEDULER";
pub const SENDER: &str = "SMS_SENDER";
pub const DESPOOLER: &str = "SMS_DESPOOLER";
pub const SITE_CONFIG_MANAGER: &str = "SMS_SITE_CONFIG_MANAGER";
pub const HIERARCHY_MANAGER: &str = "SMS_HIERARCHY_MANAGER";
pub const STATUS_MANAGER: &str = "SMS_STATUS_MANAGER";
pub const SITE_COMPONENT_MANAGER: &str = "SMS_SITE_COMPONENT_MANAGER";
pub const BOOTSTRAP: &str = "SMS_BOOTSTRAP";

/// How a component's state starts while it waits to be started again.
pub const RESTARTING_PREFIX: &str = "restarting after error: ";

/// Component name → state (`running`, `stopped`, `failed: ...`).
#[derive(Default)]
pub struct Components {
    states: Mutex<BTreeMap<&'static str, String>>,
    /// Restarts of each supervised component since the node started.
    restarts: Mutex<BTreeMap<&'static str, u64>>,
}

impl Components {
    pub fn set(&self, name: &'static str, state: impl Into<String>) {
        self.states
            .lock()
            .expect("components lock")
            .insert(name, state.into());
    }

    /// Records that a supervised component failed and is restarting.
    pub fn restarting(&self, name: &'static str, why: &str) {
        self.set(name, format!("{RESTARTING_PREFIX}{why}"));
        *self
            .restarts
            .lock()
            .expect("components lock")
            .entry(name)
            .or_default() += 1;
    }

    /// Restarts per component since start (components never restarted are
    /// listed with 0).
    pub fn restarts(&self) -> Vec<(String, u64)> {
        let r = self.restarts.lock().expect("components lock");
        self.states
            .lock()
            .expect("components lock")
            .keys()
            .map(|n| (n.to_string(), r.get(n).copied().unwrap_or(0)))
            .collect()
    }

    /// The components that are restarting after a failure, with why: the
    /// node does not report itself ready meanwhile.
    pub fn restarting_now(&self) -> Vec<(String, String)> {
        self.states
            .lock()
            .expect("components lock")
            .iter()
            .filter_map(|(n, s)| {
                s.strip_prefix(RESTARTING_PREFIX)
                    .map(|why| (n.to_string(), why.to_string()))
            })
            .collect()
    }

    pub fn remove(&self, name: &'static str) {
        self.states.lock().expect("components lock").remove(name);
    }

    pub fn state(&self, name: &str) -> Option<String> {
        self.states
            .lock()
            .expect("components lock")
            .get(name)
            .cloned()
    }

    pub fn is_running(&self, name: &str) -> bool {
        self.state(name).as_deref() == Some("running")
    }

    pub fn list(&self) -> Vec<ComponentState> {
        self.states
            .lock()
            .expect("components lock")
            .iter()
            .map(|(n, s)| ComponentState {
                name: n.to_string(),
                state: s.clone(),
            })
            .collect()
    }
}

/// Status messages stored together at this site, as a watcher sees them.
#[derive(Debug, Clone)]
pub struct Stored {
    pub messages: Arc<[StatusMessage]>,
    /// When they were stored (microseconds since the epoch).
    pub stored_unix_us: u64,
}
