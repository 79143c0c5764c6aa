//! The web console in a real browser: PRI and secondary S01 as real
//! processes with `--http-listen 127.0.0.1:0`, Debian's chromium headless,
//! driven over the DevTools protocol (a small client on a WebSocket). The
//! page signs in with the link `controller console-url` prints, shows both
//! sites in the tree, sees the edge go `severed` live when `controller
//! sever-link` cuts it, restores it with its own button (audited as a
//! console action), filters and tails status messages, and leaves a
//! screenshot in `target/console-screenshot.png`.
//!
//! Without chromium on the machine the test prints one `SKIPPED: ...` line
//! (`.ci/run` installs it).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::metrics::{http_get, http_url};
use crate::support::*;

/// The browser binary: `$CHROMIUM`, else `chromium` on the PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
            .find(|p| p.is_file())
    })
}

/// A headless chromium, killed when dropped.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    /// `http://127.0.0.1:PORT` of its DevTools endpoint.
    devtools: String,
}

impl Browser {
    fn start(bin: &PathBuf) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1280,1000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        // Chromium writes the port it chose into the profile.
        let port_file = profile.path().join("DevToolsActivePort");
        let mut port = String::new();
        wait_for("chromium's DevTools port", Duration::from_secs(60), || {
            port = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.lines().next().map(str::to_string))
                .unwrap_or_default();
            !port.is_empty()
        });
        Browser {
            child,
            _profile: profile,
            devtools: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The WebSocket URL of the page chromium opened.
    fn page(&self) -> String {
        let mut url = String::new();
        wait_for("chromium's page target", Duration::from_secs(30), || {
            let Some(body) = devtools_get(&self.devtools, "/json/list") else {
                return false;
            };
            let targets: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            url = targets
                .as_array()
                .and_then(|t| t.iter().find(|t| t["type"] == "page"))
                .and_then(|t| t["webSocketDebuggerUrl"].as_str())
                .unwrap_or_default()
                .to_string();
            !url.is_empty()
        });
        url
    }
}

/// A GET to chromium's DevTools HTTP endpoint, which keeps the connection
/// open: the body is read by its Content-Length.
fn devtools_get(base: &str, path: &str) -> Option<String> {
    use std::io::{BufRead, BufReader, Read, Write};
    let addr = base.strip_prefix("http://")?;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut r = BufReader::new(s);
    let mut length = None;
    let mut status = String::new();
    r.read_line(&mut status).ok()?;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        let line = line.trim();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            }
        }
    }
    if !status.contains(" 200 ") {
        return None;
    }
    let mut body = vec![0u8; length?];
    r.read_exact(&mut body).ok()?;
    String::from_utf8(body).ok()
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The DevTools protocol on one page: commands and their answers (events
/// are skipped).
struct Cdp {
    rt: tokio::runtime::Runtime,
    ws: Ws,
    next: u64,
}

impl Cdp {
    fn connect(url: &str) -> Cdp {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (ws, _) = rt
            .block_on(tokio_tungstenite::connect_async(url))
            .expect("connect to chromium's page");
        Cdp { rt, ws, next: 0 }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        let ws = &mut self.ws;
        self.rt.block_on(async {
            ws.send(Message::text(msg)).await.expect("send to chromium");
            loop {
                let m = tokio::time::timeout(Duration::from_secs(60), ws.next())
                    .await
                    .unwrap_or_else(|_| panic!("chromium did not answer {method}"))
                    .expect("chromium closed the DevTools connection")
                    .expect("read from chromium");
                let Message::Text(t) = m else { continue };
                let v: Value = serde_json::from_str(t.as_str()).expect("DevTools JSON");
                if v["id"] == id {
                    if let Some(e) = v.get("error") {
                        panic!("{method} failed: {e}");
                    }
                    return v["result"].clone();
                }
            }
        })
    }

    /// Evaluates `js` in the page; its value (JSON-able).
    fn eval(&mut self, js: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{js} threw: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Waits until `js` evaluates to `true` in the page.
    fn wait_true(&mut self, what: &str, js: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if self.eval(js) == Value::Bool(true) {
                return;
            }
            if std::time::Instant::now() > deadline {
                let body = self.eval("document.body.innerText");
                panic!("timed out after 30 s waiting for {what}; the page shows:\n{body}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&mut self, path: &PathBuf) {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("screenshot data"))
            .expect("screenshot is base64");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

/// Where the screenshot goes: the build's target directory.
fn screenshot_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("console-screenshot.png")
}

const EDGE_STATE: &str =
    r#"(document.querySelector('[data-edge="PRI-S01"]') || {dataset: {}}).dataset.state"#;

#[test]
fn the_console_shows_the_tree_live_acts_and_filters_status_messages() {
    let Some(bin) = chromium() else {
        println!("SKIPPED: chromium is not installed (apt-get install chromium)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let listen = ["--http-listen", "127.0.0.1:0"];
    let pri = NodeProc::start(
        &dir.path().join("pri"),
        &[&["--install-primary", "PRI"][..], &listen].concat(),
    );
    let s01 = NodeProc::start(&dir.path().join("s01"), &listen);
    pri.json(&[
        "create-secondary",
        "--site-code",
        "S01",
        "--server",
        &s01.addr,
        "--wait",
    ]);
    // A secondary serves its own console too.
    let (code, html) = http_get(&http_url(&s01), "/console/").unwrap();
    assert_eq!(code, 200);
    assert!(html.contains("SMS console"));

    let link = pri.json(&["console-url"]);
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/console/login?ticket=", http_url(&pri))));

    let browser = Browser::start(&bin);
    let mut page = Cdp::connect(&browser.page());
    page.call("Page.enable", json!({}));
    page.call("Page.navigate", json!({"url": url}));

    // Signed in (the ticket bought a session), and the tree has both sites.
    page.wait_true(
        "the sign-in",
        "(document.getElementById('who') || {}).textContent?.includes('signed in as') === true",
    );
    page.wait_true(
        "both sites in the tree",
        r#"!!document.querySelector('[data-site="PRI"]') && !!document.querySelector('[data-site="S01"]')"#,
    );
    assert_eq!(
        page.eval(r#"document.querySelector('[data-site="S01"]').dataset.status"#),
        "Active"
    );
    page.wait_true(
        "the PRI -> S01 edge with its link state",
        &format!("['up', 'idle'].includes({EDGE_STATE})"),
    );
    // The page is not reloaded from here on: this mark would be lost.
    page.eval("window.__noReload = true");

    // Cut the link from the command line: the edge changes live.
    pri.json(&["sever-link", "--to", "S01"]);
    page.wait_true(
        "the edge to go severed",
        &format!("{EDGE_STATE} === 'severed'"),
    );
    assert_eq!(page.eval("window.__noReload === true"), true);

    // Restore it from the console: an audited console action.
    page.eval(
        r#"document.querySelector('[data-edge="PRI-S01"] button[data-action="restore-link"]').click(); true"#,
    );
    page.wait_true(
        "the edge to come back",
        &format!("{EDGE_STATE} !== 'severed' && {EDGE_STATE} !== undefined"),
    );
    let audit = pri.json(&["status-messages", "--id", &id(&catalog::AUDIT_ADMIN_ACTION)]);
    let texts: Vec<String> = audit["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("ran restore-link") && t.contains("web console")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("ran sever-link")),
        "{texts:?}"
    );

    // The status message viewer: all, then only the audit messages.
    page.eval("location.hash = '#/status'; true");
    page.wait_true(
        "the unfiltered status messages",
        "Number(document.getElementById('status-summary').dataset.count) > 0",
    );
    let all = page.eval("document.querySelectorAll('#status-table tr.msg').length");
    let ids = page.eval("[...new Set([...document.querySelectorAll('#status-table tr.msg')].map(r => r.dataset.id))].length");
    assert!(
        ids.as_u64().unwrap() > 1,
        "several kinds of message to filter"
    );
    page.eval(
        r#"{ const f = document.getElementById('status-filters');
           f.querySelector('[name=site]').value = 'PRI';
           f.querySelector('[name=id]').value = '4800';
           f.querySelector('[name=text]').value = 'restore-link';
           document.getElementById('status-summary').dataset.count = '';
           document.getElementById('status-search').click(); } true"#,
    );
    page.wait_true(
        "the filtered status messages",
        "document.getElementById('status-summary').dataset.count === '1'",
    );
    assert_eq!(
        page.eval("[...document.querySelectorAll('#status-table tr.msg')].every(r => r.dataset.id === '4800' && r.textContent.includes('restore-link'))"),
        true
    );
    assert!(all.as_u64().unwrap() > 1);

    // The live tail with the same kind of filter: a new audit message
    // appears without a search.
    page.eval(
        r#"{ const f = document.getElementById('status-filters');
           f.querySelector('[name=text]').value = 'sever-link';
           const t = document.getElementById('status-tail');
           t.checked = true; t.dispatchEvent(new Event('change')); } true"#,
    );
    // The tail is open once the node counts a watcher; wait for the
    // stream to be up by sending until a row shows.
    let rows = "document.querySelectorAll('#status-table tr.msg').length";
    let before = page.eval(rows).as_u64().unwrap();
    wait_for("the tailed audit message", Duration::from_secs(30), || {
        pri.json(&["sever-link", "--to", "S01"]);
        pri.json(&["restore-link", "--to", "S01"]);
        page.eval(rows).as_u64().unwrap() > before
    });
    assert_eq!(
        page.eval(
            "document.querySelector('#status-table tbody tr').textContent.includes('sever-link')"
        ),
        true
    );

    // Back to the tree for the artefact: both sites, the link up again.
    page.eval("location.hash = '#/tree'; true");
    page.wait_true(
        "the tree again",
        &format!("!!document.querySelector('[data-site=\"S01\"]') && {EDGE_STATE} !== 'severed'"),
    );
    page.screenshot(&screenshot_path());
    println!("console screenshot: {}", screenshot_path().display());
}
