//! `/metrics` and `/ready` on real nodes, the deploy/ files that depend on
//! them, and stale sites: a secondary stopped with SIGSTOP goes Stale at
//! its parent (status message 3120, once) and clears when it reports again
//! (3121).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// One HTTP/1.1 GET over plain HTTP (the loopback listener); returns the
/// status code and the body.
pub fn http_get(url: &str, path: &str) -> Result<(u16, String), String> {
    let addr = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url} is not a plain HTTP URL"))?;
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer: {text}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line: {head}"))?;
    // axum answers small bodies with a length, never chunked.
    Ok((code, body.to_string()))
}

/// The node's HTTP URL, from DIR/http.addr.
pub fn http_url(node: &NodeProc) -> String {
    std::fs::read_to_string(node.data.join("http.addr"))
        .expect("http.addr is written at start")
        .trim()
        .to_string()
}

/// Scrapes `/metrics`, checks it parses as Prometheus text, and returns
/// it parsed.
fn scrape(url: &str) -> prometheus_parse::Scrape {
    let (code, body) = http_get(url, "/metrics").expect("scrape /metrics");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("/metrics parses as Prometheus text")
}

/// The value of `name` with label `key`=`value` (or unlabelled when `key`
/// is empty).
fn value(s: &prometheus_parse::Scrape, name: &str, key: &str, val: &str) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == name && (key.is_empty() || x.labels.get(key) == Some(val)))
        .and_then(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
}

/// Every sample name the text exposes (histograms as `_bucket`, `_sum`
/// and `_count`), as a PromQL query names them.
fn exposed_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// The metric names a PromQL expression uses (this project's are all
/// `sms_...`).
fn queried_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("sms_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[test]
fn metrics_move_with_traffic_and_the_dashboard_queries_only_exported_names() {
    let dir = tempfile::tempdir().unwrap();
    let parent = NodeProc::start(
        &dir.path().join("pri"),
        &["--install-primary", "PRI", "--http-listen", "127.0.0.1:0"],
    );
    let child = NodeProc::start(&dir.path().join("s01"), &[]);
    let pair = Pair { dir, parent, child };
    pair.create_s01();
    let url = http_url(&pair.parent);
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "loopback is plain HTTP: {url}"
    );
    assert_eq!(http_get(&url, "/ready").unwrap(), (200, "ready\n".into()));
    assert_eq!(http_get(&url, "/nothing").unwrap().0, 404);

    let before = scrape(&url);
    let acked = |s: &prometheus_parse::Scrape| {
        value(s, "sms_link_frames_acknowledged_total", "link", "S01").unwrap_or(0.0)
    };
    let ids = pair.parent.send_probes("S01", 200, "medium");
    assert_eq!(ids.len(), 200);
    wait_for(
        "200 more frames acknowledged by S01",
        Duration::from_secs(30),
        || acked(&scrape(&url)) >= acked(&before) + 200.0,
    );
    let after = scrape(&url);
    for (name, key, val) in [
        ("sms_link_frames_sent_total", "link", "S01"),
        ("sms_link_jobs_delivered_total", "link", "S01"),
        ("sms_link_sent_bytes_total", "link", "S01"),
        ("sms_store_commits_total", "", ""),
        (
            "sms_status_messages_stored_total",
            "severity",
            "informational",
        ),
    ] {
        let (b, a) = (
            value(&before, name, key, val).unwrap_or(0.0),
            value(&after, name, key, val).unwrap_or_else(|| panic!("{name} is exported")),
        );
        assert!(
            a > b,
            "{name}{{{key}={val}}} moved with the traffic: {b} -> {a}"
        );
    }
    assert!(value(&after, "sms_link_round_trip_seconds", "link", "S01").unwrap() > 0.0);
    assert_eq!(value(&after, "sms_link_state", "link", "S01"), Some(1.0));
    assert_eq!(value(&after, "sms_sites", "status", "Active"), Some(2.0));
    assert_eq!(value(&after, "sms_node_ready", "", ""), Some(1.0));
    assert_eq!(
        value(
            &after,
            "sms_component_up",
            "component",
            "SMS_HIERARCHY_MANAGER"
        ),
        Some(1.0)
    );
    // The child despooled the probes in batches.
    assert!(
        after
            .samples
            .iter()
            .any(|s| s.metric == "sms_store_commit_duration_seconds"),
        "the group-commit histogram is exported"
    );

    // Every name the dashboard queries is one a node exports.
    let (_, text) = http_get(&url, "/metrics").unwrap();
    let exported = exposed_names(&text);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/sms-hierarchy.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let mut queried = BTreeSet::new();
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            queried.extend(queried_names(t["expr"].as_str().expect("an expr")));
        }
    }
    assert!(queried.len() >= 10, "the dashboard queries {queried:?}");
    let unknown: Vec<_> = queried.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries {unknown:?}, which no node exports"
    );

    // The scrape configuration names every Compose node on the port the
    // Compose file gives SMS_HTTP_LISTEN, over TLS checked with the root.
    let cfg = yaml_rust2::YamlLoader::load_from_str(
        &std::fs::read_to_string(root.join("deploy/prometheus/prometheus.yml")).unwrap(),
    )
    .expect("prometheus.yml is YAML");
    let compose = std::fs::read_to_string(root.join("deploy/compose.yaml")).unwrap();
    let jobs = cfg[0]["scrape_configs"].as_vec().expect("scrape_configs");
    let mut targets = BTreeSet::new();
    for j in jobs {
        assert_eq!(j["scheme"].as_str(), Some("https"), "{j:?}");
        assert_eq!(j["tls_config"]["ca_file"].as_str(), Some("/admin/ca.pem"));
        let name = j["tls_config"]["server_name"]
            .as_str()
            .expect("server_name");
        assert!(
            name == "pri.sms.invalid" || name.ends_with(".pri.sms.invalid"),
            "the name in a certificate of this hierarchy: {name}"
        );
        for sc in j["static_configs"].as_vec().expect("static_configs") {
            for t in sc["targets"].as_vec().expect("targets") {
                targets.insert(t.as_str().expect("a target").to_string());
            }
        }
    }
    let expected: BTreeSet<String> = ["pri", "s01", "m1", "m2"]
        .iter()
        .map(|n| format!("{n}:9100"))
        .collect();
    assert_eq!(targets, expected);
    assert_eq!(
        compose.matches("SMS_HTTP_LISTEN: 0.0.0.0:9100").count(),
        4,
        "every Compose node serves /metrics on 9100"
    );
}

fn signal(node: &NodeProc, sig: &str) {
    let pid = node.pid().expect("the node runs").to_string();
    let ok = Command::new("kill").args([sig, &pid]).status().unwrap();
    assert!(ok.success(), "kill {sig} {pid}");
}

fn site(parent: &NodeProc, code: &str) -> Value {
    parent.json(&["sites"])["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site_code"] == code)
        .cloned()
        .unwrap_or_else(|| panic!("{code} is listed"))
}

#[test]
fn a_silent_site_goes_stale_once_and_clears_when_it_reports_again() {
    let dir = tempfile::tempdir().unwrap();
    let parent = NodeProc::start(
        &dir.path().join("pri"),
        &[
            "--install-primary",
            "PRI",
            "--stale-after-intervals",
            "3",
            "--http-listen",
            "127.0.0.1:0",
        ],
    );
    let child = NodeProc::start(&dir.path().join("s01"), &[]);
    let pair = Pair { dir, parent, child };
    pair.create_s01();
    // S01 reports every 500 ms from now on: Stale after 1.5 s of silence.
    pair.parent.json(&[
        "set-site-control",
        "--site",
        "S01",
        "--polling-interval-ms",
        "500",
    ]);
    wait_for(
        "PRI to hear S01's new polling interval",
        Duration::from_secs(30),
        || pair.parent.json(&["site-control", "--site", "S01"])["polling_interval_ms"] == 500,
    );
    let s = site(&pair.parent, "S01");
    assert_eq!(s["status"], "Active");
    assert_eq!(s["stale"], false);
    assert!(s["last_report_unix_ms"].as_u64().is_some(), "{s}");

    signal(&pair.child, "-STOP");
    wait_for("S01 to go Stale at PRI", Duration::from_secs(30), || {
        site(&pair.parent, "S01")["status"] == "Stale"
    });
    let s = site(&pair.parent, "S01");
    assert_eq!(s["stale"], true);
    assert!(s["last_report_age_ms"].as_u64().unwrap() > 1_500, "{s}");
    let table = String::from_utf8_lossy(&pair.parent.ctl(&["sites"]).stdout).to_string();
    assert!(table.contains("Stale"), "{table}");
    let d = pair.parent.json(&["diagnose", "--site", "S01"]);
    assert_eq!(d["status"], "Stale", "{d}");
    assert_eq!(d["stale"], true);
    let m = scrape(&http_url(&pair.parent));
    assert_eq!(value(&m, "sms_sites", "status", "Stale"), Some(1.0));
    let stale_id = id(&sms_types::catalog::HM_SITE_STALE);
    let back_id = id(&sms_types::catalog::HM_SITE_REPORTS_AGAIN);
    let count = |mid: &str| pair.parent.message_ids(&["--id", mid]).len();
    wait_for("the error message", Duration::from_secs(10), || {
        count(&stale_id) == 1
    });

    signal(&pair.child, "-CONT");
    wait_for("S01 to report again", Duration::from_secs(30), || {
        site(&pair.parent, "S01")["status"] == "Active"
    });
    assert_eq!(site(&pair.parent, "S01")["stale"], false);
    wait_for("the clearing message", Duration::from_secs(10), || {
        count(&back_id) == 1
    });
    assert_eq!(count(&stale_id), 1, "the error was reported once");
    let m = scrape(&http_url(&pair.parent));
    assert_eq!(value(&m, "sms_sites", "status", "Stale"), Some(0.0));
}
