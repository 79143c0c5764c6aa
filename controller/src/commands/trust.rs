//! `controller token create`, `controller admin issue`, `controller certs`:
//! join tokens for new nodes, administrator certificates (the key is made
//! here; only a signing request travels), and what a node holds.

use std::path::PathBuf;

use serde_json::json;
use sms_proto::v1 as pb;

use crate::client::{connect, Reply};
use crate::output::{or_dash, table, Out};

#[derive(clap::Subcommand, Debug)]
pub enum TokenCmd {
    /// Make a single-use join token at this primary: for a secondary site
    /// (`--site S02`), a child primary (`--site P02 --role primary`) or a
    /// member server (`--member NAME`). Start the new node with
    /// `sms-node --join-token TOKEN`.
    Create {
        /// The new site's code (repeat with --out-dir for several).
        #[arg(long, required_unless_present = "member")]
        site: Vec<String>,
        /// A member server's name, for logon servers (repeatable with --out-dir).
        #[arg(long)]
        member: Vec<String>,
        /// secondary or primary (with --site).
        #[arg(long, default_value = "secondary", value_parser = ["secondary", "primary"])]
        role: String,
        /// How long the token works (60s to 7d).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
        /// Write each token to DIR/LABEL.token (mode 0600) instead of printing
        /// it; a label whose file exists is skipped, so a job that runs again
        /// makes no second token (containers: a one-shot job fills a volume).
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// In a Kubernetes pod beside the primary: give each bare-node pod a join
    /// token in the Secret its StatefulSet mounts (`<statefulset>-join-tokens`,
    /// key `POD.token`), making one at this primary only for a pod whose key
    /// is missing; then again every --every (or once with --once).
    K8sSync {
        /// `POD=SITE` for a secondary site's pod, `POD=SITE:primary` for a
        /// child primary's, `POD` for a member server named after its pod
        /// (repeatable).
        #[arg(long = "pod", required = true, value_name = "POD[=SITE[:primary]]")]
        pods: Vec<String>,
        /// The namespace of the Secrets [default: the pod's own].
        #[arg(long)]
        namespace: Option<String>,
        /// The API server [default: in-cluster, from KUBERNETES_SERVICE_HOST];
        /// `http://` only on loopback (tests).
        #[arg(long, value_name = "URL")]
        api: Option<String>,
        /// The service account directory (token, ca.crt, namespace).
        #[arg(long, value_name = "DIR", default_value = crate::k8s::SERVICE_ACCOUNT)]
        service_account: PathBuf,
        /// How long each token works (60s to 7d).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
        /// Time between passes.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        every: std::time::Duration,
        /// One pass, then exit (non-zero if any pod could not be given its token).
        #[arg(long)]
        once: bool,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum AdminCmd {
    /// Issue an administrator certificate at this primary, valid for its
    /// subtree, and write it with its new key to --out.
    Issue {
        /// The administrator's name (lowercase letters, digits, hyphens).
        #[arg(long)]
        name: String,
        /// full, operator or read-only.
        #[arg(long, value_parser = ["full", "operator", "read-only"])]
        role: String,
        /// Directory to write ca.pem, admin.pem and admin.key to (must not
        /// hold a certificate already).
        #[arg(long)]
        out: PathBuf,
    },
    /// Revoke a certificate this node issued (serial as `controller certs`
    /// or `admin issue` shows it): calls presenting it are refused here.
    Revoke {
        #[arg(long)]
        serial: String,
        /// Why (kept with the revocation and in the audit trail).
        #[arg(long, default_value = "")]
        reason: String,
    },
}

pub async fn token(node: &Option<String>, out: &Out, cmd: TokenCmd) -> anyhow::Result<()> {
    let (site, member, role, ttl, out_dir) = match cmd {
        TokenCmd::Create {
            site,
            member,
            role,
            ttl,
            out_dir,
        } => (site, member, role, ttl, out_dir),
        TokenCmd::K8sSync {
            pods,
            namespace,
            api,
            service_account,
            ttl,
            every,
            once,
        } => {
            let pods = pods
                .iter()
                .map(|p| crate::k8s::PodToken::parse(p))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let api = match &api {
                Some(url) if url.starts_with("https://") => {
                    crate::k8s::Api::new(url, Some(&service_account))?
                }
                Some(url) => crate::k8s::Api::new(url, None)?,
                None => crate::k8s::Api::in_cluster(&service_account)?,
            };
            let ns = namespace
                .or_else(|| crate::k8s::Api::own_namespace(&service_account))
                .ok_or_else(|| {
                    anyhow::anyhow!("give --namespace (no service account namespace file)")
                })?;
            loop {
                let pass = k8s_pass(node, out, &api, &ns, &pods, ttl).await;
                match (pass, once) {
                    (Ok(()), true) => return Ok(()),
                    (Err(e), true) => return Err(e),
                    (Err(e), false) => eprintln!(
                        "controller: token k8s-sync: {e:#} (again in {})",
                        humantime::format_duration(every)
                    ),
                    (Ok(()), false) => {}
                }
                tokio::time::sleep(every).await;
            }
        }
    };
    let wanted: Vec<(String, String)> = site
        .into_iter()
        .map(|s| (s, role.clone()))
        .chain(member.into_iter().map(|m| (m, "member".to_string())))
        .collect();
    if let Some(dir) = out_dir {
        return tokens_to_dir(node, out, &wanted, ttl, &dir).await;
    }
    let [(label, role)] = wanted.as_slice() else {
        anyhow::bail!("give one --site CODE or --member NAME (several only with --out-dir)");
    };
    let (label, role) = (label.clone(), role.clone());
    let (_, mut c) = connect(node).await?;
    let r = create_token(&mut c, &label, &role, ttl).await?;
    out.print(
        &json!({"token": r.token, "token_id": r.token_id, "expires_unix": r.expires_unix, "label": label, "role": role}),
        || println!("{}", r.token),
    );
    Ok(())
}

pub async fn admin(node: &Option<String>, out: &Out, cmd: AdminCmd) -> anyhow::Result<()> {
    let (name, role, dir) = match cmd {
        AdminCmd::Issue { name, role, out } => (name, role, out),
        AdminCmd::Revoke { serial, reason } => {
            let (_, mut c) = connect(node).await?;
            let r = c
                .revoke_certificate(pb::RevokeCertificateRequest { serial, reason })
                .await
                .reply("admin revoke")?;
            out.print(&json!({"revoked": r.serial}), || {
                println!("revoked certificate {}", r.serial)
            });
            return Ok(());
        }
    };
    if dir.join("admin.key").exists() {
        anyhow::bail!(
            "{} already holds admin.key; choose another --out directory (nothing was issued)",
            dir.display()
        );
    }
    let key = sms_trust::ca::new_key()?;
    let csr = sms_trust::ca::signing_request(&key)?;
    let (_, mut c) = connect(node).await?;
    let r = c
        .issue_admin(pb::IssueAdminRequest {
            name: name.clone(),
            role: role.clone(),
            csr,
        })
        .await
        .reply("admin issue")?;
    let creds = sms_trust::Credentials::new(&key, r.certs);
    let id = creds.identity()?;
    std::fs::create_dir_all(&dir)?;
    write(
        &dir.join("ca.pem"),
        &sms_trust::ca::pem("CERTIFICATE", creds.root()),
        0o644,
    )?;
    write(&dir.join("admin.pem"), &creds.chain_pem(), 0o644)?;
    write(&dir.join("admin.key"), &creds.key_pem(), 0o600)?;
    out.print(
        &json!({"name": name, "role": role, "serial": id.serial, "not_after": id.not_after, "dir": dir}),
        || {
            println!(
                "issued {role} administrator certificate for {name} (serial {}), written to {}; \
                 use it with --tls-dir {}",
                id.serial,
                dir.display(),
                dir.display()
            )
        },
    );
    Ok(())
}

fn write(path: &std::path::Path, text: &str, mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = o
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// A time in seconds for a table, with its age (`... (in 89 days)`).
fn when(unix: i64) -> String {
    if unix <= 0 {
        return "-".into();
    }
    let t = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix as u64),
    );
    let age = crate::units::relative(unix as u64 * 1000, crate::units::now_ms());
    format!("{t} ({age})")
}

pub async fn certs(node: &Option<String>, out: &Out) -> anyhow::Result<()> {
    let (addr, mut c) = connect(node).await?;
    let r = c
        .list_certificates(pb::ListCertificatesRequest {})
        .await
        .reply("certs")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let certs: Vec<_> = r
        .certificates
        .iter()
        .map(|c| {
            json!({"use": c.r#use, "subject": c.subject, "role": c.role, "serial": c.serial,
                   "not_before": c.not_before, "not_after": c.not_after,
                   "days_left": (c.not_after - now) / 86400})
        })
        .collect();
    let tokens: Vec<_> = r
        .tokens
        .iter()
        .map(|t| {
            json!({"token_id": t.token_id, "label": t.label, "role": t.role,
                   "created_unix": t.created_unix, "expires_unix": t.expires_unix,
                   "used_unix": (t.used_unix != 0).then_some(t.used_unix)})
        })
        .collect();
    out.print(
        &json!({"node": addr, "tls": r.tls, "certificates": certs, "tokens": tokens}),
        || {
            if !r.tls {
                println!("{addr} runs with --insecure: no TLS, no certificates checked");
            }
            let mut t = table(&["use", "subject", "role", "serial", "expires", "days left"]);
            for c in &r.certificates {
                t.add_row(vec![
                    c.r#use.clone(),
                    c.subject.clone(),
                    or_dash(&c.role),
                    c.serial.chars().take(16).collect(),
                    when(c.not_after),
                    ((c.not_after - now) / 86400).to_string(),
                ]);
            }
            println!("{t}");
            if !r.tokens.is_empty() {
                let mut t = table(&["token", "for", "role", "expires", "used"]);
                for k in &r.tokens {
                    let state = if k.used_unix != 0 {
                        when(k.used_unix)
                    } else if k.expires_unix <= now {
                        "expired".into()
                    } else {
                        "unused".into()
                    };
                    t.add_row(vec![
                        k.token_id.chars().take(12).collect(),
                        k.label.clone(),
                        k.role.clone(),
                        when(k.expires_unix),
                        state,
                    ]);
                }
                println!("{t}");
            }
        },
    );
    Ok(())
}

/// `token create --out-dir`: one file per label, made only once.
/// One join token for `label` in `role`, made at the connected node.
/// One pass of `token k8s-sync`: a token for each pod whose key is missing.
async fn k8s_pass(
    node: &Option<String>,
    out: &Out,
    api: &crate::k8s::Api,
    ns: &str,
    pods: &[crate::k8s::PodToken],
    ttl: std::time::Duration,
) -> anyhow::Result<()> {
    let mut c = None;
    let mut joined: Option<Vec<String>> = None;
    for p in pods {
        let (secret, key) = (p.secret(), p.key());
        let held = api.secret(ns, &secret).await?;
        if held.as_ref().is_some_and(|d| d.contains_key(&key)) {
            continue;
        }
        if c.is_none() {
            c = Some(connect(node).await?.1);
        }
        let client = c.as_mut().expect("connected above");
        // A pod whose label already used a token here has joined: its key
        // was removed on purpose (the Secret deleted once all joined).
        if joined.is_none() {
            let r = client
                .list_certificates(pb::ListCertificatesRequest {})
                .await
                .reply("token k8s-sync")?;
            joined = Some(
                r.tokens
                    .into_iter()
                    .filter(|t| t.used_unix != 0)
                    .map(|t| t.label)
                    .collect(),
            );
        }
        let (label, role) = p.label_role();
        if joined.as_ref().is_some_and(|j| j.contains(&label)) {
            continue;
        }
        let t = create_token(c.as_mut().expect("connected above"), &label, &role, ttl).await?;
        api.put_secret_key(ns, &secret, &key, t.token.as_bytes())
            .await?;
        out.print(
            &json!({"pod": p.pod, "secret": secret, "key": key, "label": label, "role": role, "token_id": t.token_id, "expires_unix": t.expires_unix}),
            || println!("gave {} a join token for {role} {label} (secret {ns}/{secret}, key {key})", p.pod),
        );
    }
    Ok(())
}

async fn create_token(
    c: &mut crate::client::Admin,
    label: &str,
    role: &str,
    ttl: std::time::Duration,
) -> anyhow::Result<pb::CreateTokenReply> {
    c.create_token(pb::CreateTokenRequest {
        label: label.to_string(),
        role: role.to_string(),
        ttl_secs: ttl.as_secs(),
    })
    .await
    .reply("token create")
}

async fn tokens_to_dir(
    node: &Option<String>,
    out: &Out,
    wanted: &[(String, String)],
    ttl: std::time::Duration,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let (_, mut c) = connect(node).await?;
    let mut made = vec![];
    for (label, role) in wanted {
        let path = dir.join(format!("{label}.token"));
        if path.exists() {
            made.push(json!({"label": label, "file": path, "made": false}));
            continue;
        }
        let r = create_token(&mut c, label, role, ttl).await?;
        // Written whole under a temporary name, then renamed: a node waiting
        // for the file never reads half a token.
        let tmp = dir.join(format!(".{label}.token.tmp"));
        let _ = std::fs::remove_file(&tmp);
        write(&tmp, &format!("{}\n", r.token), 0o600)?;
        std::fs::rename(&tmp, &path)?;
        made.push(
            json!({"label": label, "file": path, "made": true, "expires_unix": r.expires_unix}),
        );
    }
    std::fs::File::open(dir).and_then(|d| d.sync_all())?;
    out.print(&json!({"tokens": made}), || {
        for m in &made {
            let verb = if m["made"] == true { "wrote" } else { "kept" };
            println!("{verb} {}", m["file"].as_str().unwrap_or_default());
        }
    });
    Ok(())
}
