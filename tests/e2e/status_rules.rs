//! Status filter rules across real processes: rules added at the central
//! site travel to a secondary in its site control; there, one keeps a
//! message id from replicating (the parent never sees it, the secondary
//! has it) and another POSTs a message to a local webhook.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// A webhook receiver on 127.0.0.1:0 (axum, on its own runtime): every
/// JSON body POSTed to /hook.
struct Hook {
    addr: String,
    got: Arc<Mutex<Vec<Value>>>,
    _rt: tokio::runtime::Runtime,
}

impl Hook {
    fn start() -> Hook {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let got: Arc<Mutex<Vec<Value>>> = Default::default();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(v);
                    "ok"
                }
            }),
        );
        rt.spawn(async move { axum::serve(listener, app).await });
        Hook { addr, got, _rt: rt }
    }

    fn received(&self) -> Vec<Value> {
        self.got.lock().unwrap().clone()
    }
}

fn ids_from(n: &NodeProc, site: &str, def: &catalog::MessageDef) -> usize {
    n.json(&["status-messages", "--site", site, "--id", &id(def)])["messages"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn a_secondary_rule_keeps_a_message_from_the_parent_and_another_calls_a_webhook() {
    let p = Pair::start();
    p.create_s01();
    let hook = Hook::start();
    // The watchdog applies CT1s on its cycle: a short one.
    p.parent.json(&[
        "set-site-control",
        "--site",
        "S01",
        "--polling-interval-ms",
        "300",
    ]);
    let severed = id(&catalog::LINK_SEVERED);
    let restored = id(&catalog::LINK_RESTORED);
    let url = format!("http://{}/hook", hook.addr);
    let v = p.parent.json(&[
        "status-rules",
        "add",
        "--site",
        "S01",
        "--name",
        "severed-stays-here",
        "--id",
        &severed,
        "--replicate",
        "never",
        "--stop",
    ]);
    assert_eq!(v["site_code"], "S01");
    p.parent.json(&[
        "status-rules",
        "add",
        "--site",
        "S01",
        "--name",
        "tell-the-hook",
        "--id",
        &restored,
        "--webhook",
        &url,
    ]);
    // A bad rule is refused at the call, naming the mistake.
    let err = p.parent.fails(&[
        "status-rules",
        "add",
        "--site",
        "S01",
        "--name",
        "tls",
        "--webhook",
        "https://example.invalid/",
    ]);
    assert!(err.contains("only http://"), "{err}");

    wait_for("S01 to apply both rules", Duration::from_secs(30), || {
        p.child.json(&["status-rules", "list"])["rules"]
            .as_array()
            .is_some_and(|r| r.len() == 2)
    });
    let rules = p.child.json(&["status-rules", "list"]);
    assert_eq!(rules["rules"][0]["name"], "severed-stays-here");
    assert_eq!(rules["rules"][0]["replicate"], "never");
    assert_eq!(rules["rules"][1]["webhook"], url.as_str());
    // The parent's copy follows the secondary's next CT2.
    wait_for("PRI's copy of S01's rules", Duration::from_secs(30), || {
        p.parent.json(&["status-rules", "list", "--site", "S01"])["rules"]
            .as_array()
            .is_some_and(|r| r.len() == 2)
    });

    // At S01: a message the first rule keeps there, then one that goes up
    // (queued after it: had the first gone up, it would be there first).
    p.child.json(&["sever-link", "--to", "PRI"]);
    p.child.json(&["restore-link", "--to", "PRI"]);
    wait_for(
        "S01's link-restored message at PRI",
        Duration::from_secs(30),
        || ids_from(&p.parent, "S01", &catalog::LINK_RESTORED) == 1,
    );
    assert_eq!(ids_from(&p.child, "S01", &catalog::LINK_SEVERED), 1);
    assert_eq!(
        ids_from(&p.parent, "S01", &catalog::LINK_SEVERED),
        0,
        "the parent never sees what the rule keeps at S01"
    );

    wait_for(
        "the webhook to receive the message",
        Duration::from_secs(30),
        || !hook.received().is_empty(),
    );
    let got = hook.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["id"], catalog::LINK_RESTORED.id);
    assert_eq!(got[0]["site_code"], "S01");
    assert_eq!(got[0]["component"], catalog::LINK_RESTORED.component);

    // Removed by name and by position: S01 ends with none.
    p.parent.json(&[
        "status-rules",
        "remove",
        "--site",
        "S01",
        "--rule",
        "tell-the-hook",
    ]);
    wait_for(
        "S01 to drop the webhook rule",
        Duration::from_secs(30),
        || {
            p.child.json(&["status-rules", "list"])["rules"]
                .as_array()
                .is_some_and(|r| r.len() == 1)
        },
    );
    p.parent
        .json(&["status-rules", "remove", "--site", "S01", "--rule", "1"]);
    wait_for("S01 to drop the last rule", Duration::from_secs(30), || {
        p.child.json(&["status-rules", "list"])["rules"]
            .as_array()
            .is_some_and(|r| r.is_empty())
    });
}
