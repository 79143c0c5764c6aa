//! The web console of a TLS hierarchy, as its administrators meet it: real
//! `sms-node` processes with certificates, a `controller console-url` per
//! administrator certificate, and the console's own HTTP API (the calls the
//! page makes). A session acts with the role of the certificate that asked
//! for it and no other; an action needs the page's CSRF token; a sign-in
//! link works once; a revoked certificate's session is refused and ended;
//! the audit trail names the administrator. (The browser test in
//! `console.rs` drives the page itself.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use sms_types::catalog;

use crate::trust::{
    create_secondary, ctl, issue_admin, json, ok, p01_and_s11, start, token_at, wait_active,
};

/// One HTTP/1.1 request on a fresh connection; the status, the response
/// head's lines and the body.
fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, Vec<String>, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let lines: Vec<String> = head.lines().map(str::to_string).collect();
    let code = lines[0].split(' ').nth(1).unwrap().parse().unwrap();
    (code, lines, body.to_string())
}

/// A console session bought with the sign-in link `controller console-url`
/// prints for the certificate in `tls`.
struct Session {
    addr: String,
    cookie: String,
    csrf: String,
    link: String,
}

impl Session {
    fn sign_in(node: &str, tls: &Path) -> Session {
        let v = json(node, tls, &["console-url"]);
        let link = v["url"].as_str().unwrap().to_string();
        let rest = link
            .strip_prefix("http://")
            .expect("plain HTTP on loopback");
        let (addr, path) = rest.split_at(rest.find('/').unwrap());
        let (code, head, body) = request(addr, "GET", path, &[], None);
        assert_eq!(code, 303, "the link buys a session: {body}");
        let cookie = head
            .iter()
            .find_map(|l| {
                l.strip_prefix("set-cookie: ")
                    .or(l.strip_prefix("Set-Cookie: "))
            })
            .expect("a session cookie")
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let mut s = Session {
            addr: addr.to_string(),
            cookie,
            csrf: String::new(),
            link: path.to_string(),
        };
        let info = s.get("/console/api/session");
        assert_eq!(info["signed_in"], true, "{info}");
        s.csrf = info["csrf"].as_str().unwrap().to_string();
        s
    }

    fn get(&self, path: &str) -> Value {
        let (code, _, body) = request(&self.addr, "GET", path, &[("Cookie", &self.cookie)], None);
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// A console action; the status and the answer's text.
    fn act(&self, action: &str, body: Value, csrf: bool) -> (u16, String) {
        let mut headers = vec![("Cookie", self.cookie.as_str())];
        if csrf {
            headers.push(("x-sms-csrf", self.csrf.as_str()));
        }
        let path = format!("/console/api/actions/{action}");
        let (code, _, text) = request(&self.addr, "POST", &path, &headers, Some(&body));
        (code, text)
    }
}

/// Issues an administrator certificate at `node`; its serial.
fn issue(node: &str, admin: &Path, name: &str, role: &str, out: &Path) -> String {
    issue_admin(node, admin, name, role, out)["serial"]
        .as_str()
        .unwrap()
        .to_string()
}

fn link_state(node: &str, tls: &Path, to: &str) -> String {
    let v = json(node, tls, &["status"]);
    v["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["to"] == to)
        .unwrap_or_else(|| panic!("no link to {to}: {v}"))["state"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_secure_consoles_session_acts_with_its_certificates_role_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pri = start(
        &d.join("pri"),
        &["--install-primary", "PRI", "--http-listen", "127.0.0.1:0"],
    );
    let admin = d.join("pri").join("admin");
    let p = pri.addr();
    let token = token_at(p, &admin, &["--site", "S01"]);
    let s01 = start(&d.join("s01"), &["--join-token", &token]);
    create_secondary(p, &admin, "S01", s01.addr());
    wait_active(p, &admin, "S01");

    let (ro, op) = (d.join("rita"), d.join("otto"));
    issue(p, &admin, "rita", "read-only", &ro);
    let otto_serial = issue(p, &admin, "otto", "operator", &op);

    // A read-only administrator's session reads, and is refused an action
    // with the role it has and the role it needs; nothing changes.
    let rita = Session::sign_in(p, &ro);
    let who = rita.get("/console/api/session");
    assert!(
        who["subject"].as_str().unwrap().starts_with("rita"),
        "{who}"
    );
    assert_eq!(who["role"], "read-only", "{who}");
    let tree = rita.get("/console/api/tree");
    assert!(
        tree["sites"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["code"] == "S01"),
        "{tree}"
    );
    let (code, text) = rita.act("sever-link", json!({"to": "S01"}), true);
    assert_eq!(code, 403, "{text}");
    assert!(
        text.contains("has role read-only; this needs operator"),
        "{text}"
    );
    assert_ne!(link_state(p, &admin, "S01"), "severed");

    // The sign-in link worked once.
    let (code, _, text) = request(&rita.addr, "GET", &rita.link, &[], None);
    assert_eq!(code, 401, "a used link is refused: {text}");

    // An operator's session acts, but only with the page's CSRF token.
    let otto = Session::sign_in(p, &op);
    let (code, text) = otto.act("sever-link", json!({"to": "S01"}), false);
    assert_eq!(code, 403, "no CSRF token: {text}");
    assert_ne!(link_state(p, &admin, "S01"), "severed");
    let (code, text) = otto.act("sever-link", json!({"to": "S01"}), true);
    assert_eq!(code, 200, "{text}");
    assert_eq!(link_state(p, &admin, "S01"), "severed");
    // ... and not beyond its role.
    let (code, text) = otto.act("add-domain", json!({"name": "EAST"}), true);
    assert_eq!(code, 403, "{text}");
    assert!(text.contains("this needs full"), "{text}");

    // The audit trail names the administrator of the session.
    let audit = json(
        p,
        &admin,
        &[
            "status-messages",
            "--id",
            &catalog::AUDIT_ADMIN_ACTION.id.to_string(),
        ],
    );
    let texts: Vec<&str> = audit["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("otto")
            && t.contains("ran sever-link")
            && t.contains("web console")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("rita") && t.contains("ran console-session")),
        "the sign-in link is audited: {texts:?}"
    );
    assert!(
        !texts
            .iter()
            .any(|t| t.contains("rita") && t.contains("ran sever-link")),
        "a refused action is not audited: {texts:?}"
    );

    // Revoking otto's certificate refuses and ends the session it bought.
    ok(
        ctl(
            p,
            Some(&admin),
            &[
                "admin",
                "revoke",
                "--serial",
                &otto_serial,
                "--reason",
                "left",
            ],
        ),
        "admin revoke",
    );
    let (code, text) = otto.act("restore-link", json!({"to": "S01"}), true);
    assert_eq!(code, 403, "{text}");
    assert!(text.contains("was revoked here"), "{text}");
    assert_eq!(link_state(p, &admin, "S01"), "severed");
    let after = otto.get("/console/api/session");
    assert_eq!(after["signed_in"], false, "the session ended: {after}");
}

/// The edge from `parent` to `child` in a console tree.
fn edge(tree: &Value, parent: &str, child: &str) -> Value {
    tree["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["parent"] == parent && e["child"] == child)
        .cloned()
        .unwrap_or_else(|| panic!("no edge {parent} -> {child} in {tree}"))
}

#[test]
fn the_tree_shows_a_grandchilds_link_as_its_parent_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pri = start(
        &d.join("pri"),
        &["--install-primary", "PRI", "--http-listen", "127.0.0.1:0"],
    );
    let admin = d.join("pri").join("admin");
    let p = pri.addr();
    let (p01, _s11) = p01_and_s11(d, p, &admin);
    let m = p01.addr();

    let http = std::fs::read_to_string(d.join("pri").join("http.addr")).unwrap();
    let http = http.trim().strip_prefix("http://").unwrap().to_string();
    let tree = || -> Value {
        let (code, _, body) = request(&http, "GET", "/console/api/tree", &[], None);
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    // PRI's own edge is its own view; the edge below P01 is P01's.
    let t = tree();
    let own = edge(&t, "PRI", "P01");
    assert_eq!(own["seen_from"], "PRI", "{own}");
    assert!(own["link"]["far"].is_null(), "{own}");
    let far = edge(&t, "P01", "S11");
    assert_eq!(far["seen_from"], "P01", "{far}");
    assert_eq!(far["link"]["far"], true, "{far}");
    assert_eq!(far["link"]["to"], "S11", "{far}");
    assert_ne!(far["link"]["state"], "severed", "{far}");

    // Severed at P01: PRI's tree follows within a few polls.
    ok(
        ctl(m, Some(&admin), &["sever-link", "--to", "S11"]),
        "sever at P01",
    );
    let t0 = std::time::Instant::now();
    loop {
        let far = edge(&tree(), "P01", "S11");
        if far["link"]["state"] == "severed" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "PRI's tree never showed the link severed at P01: {far}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
