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

/// Component name → state (`running`, `stopped`, `failed: ...`).
#[derive(Default)]
pub struct Components {
    states: Mutex<BTreeMap<&'static str, String>>,
}

impl Components {
    pub fn set(&self, name: &'static str, state: impl Into<String>) {
        self.states
            .lock()
            .expect("components lock")
            .insert(name, state.into());
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
