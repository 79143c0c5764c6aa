//! `sms-node --config FILE`: a real node started from a TOML file, with a
//! flag and an environment variable overriding it; the systemd notify
//! protocol (READY=1, WATCHDOG=1, STOPPING=1) read from a socket of our
//! own; and the Kubernetes manifests' ConfigMaps, disruption budgets,
//! retention and network policy checked against what they configure.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{wait_for, SMS_NODE};

/// A node process started by hand (not through the cluster runner, which
/// passes --data and --listen itself); killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(SMS_NODE);
    cmd.args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for k in [
        "SMS_DATA",
        "SMS_LISTEN",
        "SMS_INSECURE",
        "SMS_CONFIG",
        "SMS_HTTP_LISTEN",
    ] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc(cmd.spawn().expect("spawn sms-node"))
}

/// The address the node wrote to `data/node.addr`, within 30 s.
fn addr_in(data: &Path, p: &mut Proc) -> String {
    let mut addr = None;
    wait_for(
        &format!("{}/node.addr", data.display()),
        Duration::from_secs(30),
        || {
            if let Ok(Some(status)) = p.0.try_wait() {
                let mut err = String::new();
                use std::io::Read;
                p.0.stderr.take().map(|mut e| e.read_to_string(&mut err));
                panic!("sms-node exited with {status}: {err}");
            }
            addr = std::fs::read_to_string(data.join("node.addr"))
                .ok()
                .and_then(|s| sms_cluster::parse_addr_file(&s));
            addr.is_some()
        },
    );
    addr.unwrap().to_string()
}

fn healthy(addr: &str) -> bool {
    Command::new(SMS_NODE)
        .args(["health", "--insecure", "--addr", addr])
        .env_remove("SMS_CONFIG")
        .output()
        .expect("run sms-node health")
        .status
        .success()
}

fn write_config(dir: &Path, data: &Path) -> PathBuf {
    let file = dir.join("node.toml");
    std::fs::write(
        &file,
        format!(
            "# a test node\ndata = \"{}\"\nlisten = \"127.0.0.1:0\"\ninsecure = true\ninstall-primary = \"PRI\"\nlog-keep = 2\n",
            data.display()
        ),
    )
    .unwrap();
    file
}

#[test]
fn a_node_starts_from_its_config_file_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let from_file = dir.path().join("from-file");
    let file = write_config(dir.path(), &from_file);
    let file_s = file.to_str().unwrap();

    // Everything from the file: data dir, address, --insecure, the install.
    let mut p = spawn(&["--config", file_s], &[]);
    let addr = addr_in(&from_file, &mut p);
    wait_for(
        "the node from the file to serve",
        Duration::from_secs(30),
        || healthy(&addr),
    );
    let status = crate::support::controller(&addr, &["status", "--json"]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(String::from_utf8_lossy(&status.stdout).contains("PRI"));
    drop(p);

    // SMS_CONFIG names the file too; a flag on the command line wins over
    // the file's `data`.
    let from_flag = dir.path().join("from-flag");
    let mut p = spawn(
        &["--data", from_flag.to_str().unwrap()],
        &[("SMS_CONFIG", file_s)],
    );
    let addr = addr_in(&from_flag, &mut p);
    wait_for(
        "the node with --data to serve",
        Duration::from_secs(30),
        || healthy(&addr),
    );
    drop(p);

    // An environment variable wins over the file; a flag wins over both.
    let from_env = dir.path().join("from-env");
    let mut p = spawn(
        &["--config", file_s],
        &[("SMS_DATA", from_env.to_str().unwrap())],
    );
    let addr = addr_in(&from_env, &mut p);
    assert!(healthy_within(&addr));
    drop(p);
    let both = dir.path().join("both");
    let mut p = spawn(
        &["--config", file_s, "--data", both.to_str().unwrap()],
        &[("SMS_DATA", from_env.join("unused").to_str().unwrap())],
    );
    addr_in(&both, &mut p);
    assert!(!from_env.join("unused").exists());
}

fn healthy_within(addr: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if healthy(addr) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn a_bad_config_file_stops_the_node_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    std::fs::write(&file, "data = \"/tmp/x\"\nhttp-listn = \"127.0.0.1:0\"\n").unwrap();
    let out = Command::new(SMS_NODE)
        .args(["--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(file.to_str().unwrap()), "{err}");
    assert!(
        err.contains("unknown key `http-listn`: did you mean `http-listen`?"),
        "{err}"
    );
}

/// Datagrams from the node on our NOTIFY_SOCKET, until `want` has been seen
/// or 30 s pass; returns every line read.
fn read_until(sock: &UnixDatagram, seen: &mut Vec<String>, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    while !seen.iter().any(|l| l == want) {
        assert!(
            Instant::now() < deadline,
            "no {want} within 30 s; got {seen:?}"
        );
        match sock.recv(&mut buf) {
            Ok(n) => seen.extend(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_string),
            ),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("notify socket: {e}"),
        }
    }
}

#[test]
fn systemd_hears_ready_then_watchdog_pings_then_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let file = write_config(dir.path(), &data);
    // 400 ms: a ping every 200 ms.
    let mut p = spawn(
        &["--config", file.to_str().unwrap()],
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut seen = Vec::new();
    read_until(&sock, &mut seen, "READY=1");
    // READY only once the node serves: its address is written and it
    // answers health.
    let addr = std::fs::read_to_string(data.join("node.addr")).unwrap();
    assert!(healthy_within(addr.trim()));
    let ready = seen.iter().position(|l| l == "READY=1").unwrap();
    assert!(!seen[..ready].iter().any(|l| l == "WATCHDOG=1"), "{seen:?}");
    let mut after = Vec::new();
    for _ in 0..2 {
        after.clear();
        read_until(&sock, &mut after, "WATCHDOG=1");
    }
    // SIGTERM: STOPPING=1, then a clean exit.
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(p.0.id() as i32, libc::SIGTERM) }, 0);
    let mut rest = Vec::new();
    read_until(&sock, &mut rest, "STOPPING=1");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = p.0.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "no exit within 20 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The systemd example file is read by the same loader as --config.
#[test]
fn the_systemd_example_config_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd");
    let file = root.join("sms-node.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let run = sms_server::cli::check_file(&file, &text).unwrap();
    assert_eq!(run.listen, "0.0.0.0:8500");
    assert!(run.advertise.is_some());
    let unit = std::fs::read_to_string(root.join("sms-node@.service")).unwrap();
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=30s",
        "--config /etc/sms/%i.toml",
    ] {
        assert!(unit.contains(line), "sms-node@.service lacks {line}");
    }
}

/// Every manifest under deploy/k8s agrees with what it configures: each
/// ConfigMap's TOML is a valid sms-node configuration whose keys no
/// container or image variable shadows; each StatefulSet mounts its
/// ConfigMap and passes --config, keeps its volumes, and has a disruption
/// budget selecting its pods; the NetworkPolicy selects every node pod and
/// admits exactly the ports the containers expose.
#[test]
fn the_kubernetes_manifests_configure_what_they_claim() {
    use yaml_rust2::{Yaml, YamlLoader};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let mut docs: Vec<(String, Yaml)> = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(root.join("k8s"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        for d in YamlLoader::load_from_str(&std::fs::read_to_string(f).unwrap()).unwrap() {
            if !d.is_null() {
                docs.push((name.clone(), d));
            }
        }
    }
    let kind = |k: &'static str| {
        docs.iter()
            .filter(move |(_, d)| d["kind"].as_str() == Some(k))
            .collect::<Vec<_>>()
    };
    let labels = |y: &Yaml| -> Vec<(String, String)> {
        y.as_hash()
            .map(|h| {
                h.iter()
                    .map(|(k, v)| (k.as_str().unwrap().into(), v.as_str().unwrap().into()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let selects = |selector: &Yaml, pod_labels: &[(String, String)]| {
        let want = labels(&selector["matchLabels"]);
        !want.is_empty() && want.iter().all(|l| pod_labels.contains(l))
    };
    // What the image sets (deploy/docker/Dockerfile's ENV).
    let dockerfile = std::fs::read_to_string(root.join("docker/Dockerfile")).unwrap();
    let image_env: Vec<String> = dockerfile
        .split(|c: char| c.is_whitespace())
        .filter_map(|w| w.split_once('='))
        .filter(|(k, _)| k.starts_with("SMS_"))
        .map(|(k, _)| k.to_string())
        .collect();
    assert!(image_env.contains(&"SMS_DATA".to_string()), "{image_env:?}");

    // Every ConfigMap's TOML, through the loader --config uses.
    let mut configs = std::collections::BTreeMap::new();
    for (file, cm) in kind("ConfigMap") {
        let name = cm["metadata"]["name"].as_str().unwrap().to_string();
        let text = cm["data"]["node.toml"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: ConfigMap {name} has no node.toml"));
        let path = PathBuf::from(format!("{file}:{name}/node.toml"));
        sms_server::cli::check_file(&path, text).unwrap_or_else(|e| panic!("{e}"));
        let keys: Vec<String> = text
            .parse::<toml::Table>()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        configs.insert(name, keys);
    }
    let cmd = <sms_server::cli::Cli as clap::CommandFactory>::command();
    let env_of = |key: &str| {
        cmd.get_arguments()
            .find(|a| a.get_long() == Some(key))
            .and_then(|a| a.get_env())
            .map(|e| e.to_string_lossy().to_string())
    };

    let statefulsets = kind("StatefulSet");
    assert!(
        statefulsets.len() >= 4,
        "pri, secondary, smsdom-member, p01"
    );
    let pdbs = kind("PodDisruptionBudget");
    let policies = kind("NetworkPolicy");
    assert_eq!(policies.len(), 1);
    let policy = &policies[0].1["spec"];
    let mut exposed = std::collections::BTreeSet::new();
    for (file, sts) in &statefulsets {
        let name = sts["metadata"]["name"].as_str().unwrap();
        let spec = &sts["spec"];
        let retention = &spec["persistentVolumeClaimRetentionPolicy"];
        assert_eq!(
            retention["whenDeleted"].as_str(),
            Some("Retain"),
            "{file}: {name}"
        );
        assert_eq!(
            retention["whenScaled"].as_str(),
            Some("Retain"),
            "{file}: {name}"
        );
        let pod_labels = labels(&spec["template"]["metadata"]["labels"]);
        let budgets: Vec<_> = pdbs
            .iter()
            .filter(|(_, p)| selects(&p["spec"]["selector"], &pod_labels))
            .collect();
        assert_eq!(
            budgets.len(),
            1,
            "{file}: {name} needs one PodDisruptionBudget"
        );
        assert_eq!(
            budgets[0].1["spec"]["maxUnavailable"].as_i64(),
            Some(1),
            "{name}"
        );
        assert!(
            selects(&policy["podSelector"], &pod_labels),
            "the NetworkPolicy does not select {name}'s pods"
        );
        let pod = &spec["template"]["spec"];
        let node = pod["containers"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|c| c["name"].as_str() == Some("sms-node"))
            .unwrap();
        // --config names the mounted ConfigMap's file.
        let args: Vec<&str> = node["args"]
            .as_vec()
            .unwrap_or_else(|| panic!("{name}: no args"))
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(args, ["--config", "/etc/sms/node.toml"], "{name}");
        let mount = node["volumeMounts"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"].as_str() == Some("/etc/sms"))
            .unwrap_or_else(|| panic!("{name}: nothing mounted at /etc/sms"));
        let volume = pod["volumes"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        let cm = volume["configMap"]["name"].as_str().unwrap();
        let keys = configs
            .get(cm)
            .unwrap_or_else(|| panic!("{name} mounts ConfigMap {cm}, which no manifest has"));
        // No key is shadowed by a variable of the container or the image
        // (it would silently not apply).
        let env: Vec<&str> = node["env"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        for key in keys {
            if let Some(var) = env_of(key) {
                assert!(
                    !env.contains(&var.as_str()) && !image_env.contains(&var),
                    "{cm}: key {key} is overridden by {var} in {name}'s environment"
                );
            }
        }
        for p in node["ports"].as_vec().unwrap() {
            exposed.insert(p["name"].as_str().unwrap().to_string());
        }
        // The http port serves what the file's http-listen says.
        if keys.iter().any(|k| k == "http-listen") {
            assert!(exposed.contains("http"), "{name}");
        }
    }
    // The policy admits the ports the containers expose, and no other.
    let admitted: std::collections::BTreeSet<String> = policy["ingress"]
        .as_vec()
        .unwrap()
        .iter()
        .flat_map(|r| r["ports"].as_vec().unwrap().iter())
        .map(|p| p["port"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(admitted, exposed);
    // gRPC only from the hierarchy's own pods.
    let grpc = policy["ingress"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|r| r["ports"][0]["port"].as_str() == Some("grpc"))
        .unwrap();
    assert_eq!(
        labels(&grpc["from"][0]["podSelector"]["matchLabels"]),
        [(
            "app.kubernetes.io/part-of".to_string(),
            "sms-hierarchy".to_string()
        )]
    );
    // The child primary attaches below PRI, at the address PRI advertises.
    let p01 = kind("ConfigMap")
        .into_iter()
        .find(|(_, c)| c["metadata"]["name"].as_str() == Some("p01-config"))
        .unwrap();
    let run = sms_server::cli::check_file(
        Path::new("p01-config"),
        p01.1["data"]["node.toml"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(run.parent.as_deref(), Some("pri-0.pri.sms.svc:8500"));
    assert_eq!(
        run.parent_site.map(|s| s.to_string()).as_deref(),
        Some("PRI")
    );
    let kustomization = std::fs::read_to_string(root.join("k8s/kustomization.yaml")).unwrap();
    assert!(kustomization.contains("- network-policy.yaml"));
}
