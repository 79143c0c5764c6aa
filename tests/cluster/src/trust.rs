//! The runner's view of a secure hierarchy: which administrator
//! certificate reaches which node. A central site writes its first
//! administrator's certificate to `DATA/admin`; every node started below
//! it (with `--parent` or a join token naming its issuer) is reached with
//! the same certificate. Nodes started with SMS_INSECURE are reached in
//! plaintext.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

type Tls = Arc<rustls::ClientConfig>;

static BY_ADDR: Mutex<Option<HashMap<String, Tls>>> = Mutex::new(None);

fn with<T>(f: impl FnOnce(&mut HashMap<String, Tls>) -> T) -> T {
    let mut g = BY_ADDR.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// The TLS settings for reaching `addr`, if it is a secure node this
/// process started.
pub fn tls_for(addr: &str) -> Option<Tls> {
    with(|m| m.get(addr).cloned())
}

/// Records how to reach a node that just started at `addr` with `args`.
pub(crate) fn learn(data: &Path, args: &[String], addr: &str) {
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let tls = if let Some(parent) = arg("--parent") {
        tls_for(&parent)
    } else if let Some(token) = arg("--join-token") {
        sms_trust::JoinToken::decode(&token)
            .ok()
            .and_then(|t| tls_for(&t.issuer))
    } else if arg("--install-primary").is_some() || data.join("admin").join("admin.pem").exists() {
        sms_connect::load_admin(&data.join("admin"))
            .ok()
            .and_then(|c| sms_connect::admin_tls(&c).ok())
    } else {
        None
    };
    // A restarted node keeps what was learnt for its address.
    if let Some(tls) = tls {
        with(|m| m.insert(addr.to_string(), tls));
    }
}

/// Tells the runner that `addr` is reached like `like` (a node that
/// joined without the runner seeing how).
pub fn same_as(addr: &str, like: &str) {
    if let Some(t) = tls_for(like) {
        with(|m| m.insert(addr.to_string(), t));
    }
}
