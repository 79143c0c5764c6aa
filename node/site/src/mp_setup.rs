//! The management point server's side of an install (seed 001's MPSetup):
//! what the server offers (its allowed data volumes), the install directory
//! and files, the prerequisite checks, the agent's start and stop, and the
//! faults that reproduce a later version left on the server. Everything here
//! logs to `mpsetup.log` on this node.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sms_types::mp::*;
use sms_types::{Fault, SiteCode};

use crate::core::Ctx;

/// Filesystems that do not keep what they are told to fsync (or are not
/// disks): an install there would not survive a reboot.
const UNSUPPORTED_FS: &[(i64, &str)] = &[
    (0x0102_1994, "tmpfs"),
    (0x8584_58f6, "ramfs"),
    (0x7371_7368, "squashfs"),
    (0x9fa0, "proc"),
    (0x6265_6572, "sysfs"),
    (0x2fc1_2fc1, "zfs"),
];

fn fs_name(magic: i64) -> String {
    match magic {
        0xEF53 => "ext4".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x794c_7630 => "overlayfs".into(),
        0x6573_5546 => "fuse".into(),
        0x0102_1994 => "tmpfs".into(),
        0x8584_58f6 => "ramfs".into(),
        0x7371_7368 => "squashfs".into(),
        0x4d44 => "vfat".into(),
        0x0102_1997 => "9p".into(),
        0x2fc1_2fc1 => "zfs".into(),
        other => format!("filesystem type {other:#x}"),
    }
}

/// One allowed volume as this node sees it now.
pub fn volume(path: &Path) -> MpVolume {
    let shown = path.display().to_string();
    let c = match std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) {
        Ok(c) => c,
        Err(_) => {
            return MpVolume {
                path: shown,
                fs_type: String::new(),
                free_bytes: 0,
                supported: false,
                why: "the path contains a NUL byte".into(),
            }
        }
    };
    // SAFETY: `c` is a valid NUL-terminated path and `st`/`vf` are plain
    // C structs the kernel fills in.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let mut vf: libc::statvfs = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0
        && unsafe { libc::statvfs(c.as_ptr(), &mut vf) } == 0;
    if !ok {
        return MpVolume {
            path: shown,
            fs_type: String::new(),
            free_bytes: 0,
            supported: false,
            why: format!("cannot read it: {}", std::io::Error::last_os_error()),
        };
    }
    #[allow(clippy::unnecessary_cast)]
    let magic = st.f_type as i64;
    let free = vf.f_bavail as u64 * vf.f_frsize as u64;
    let fs_type = fs_name(magic);
    let why = if let Some((_, n)) = UNSUPPORTED_FS.iter().find(|(m, _)| *m == magic) {
        format!("{n} does not keep data across a reboot (it does not honour fsync)")
    } else if vf.f_flag & libc::ST_RDONLY != 0 {
        "it is mounted read-only".into()
    } else {
        String::new()
    };
    MpVolume {
        path: shown,
        fs_type,
        free_bytes: free,
        supported: why.is_empty(),
        why,
    }
}

/// The host the node listens on: the management point binds there too.
fn listen_host(ctx: &Ctx) -> String {
    ctx.advertise
        .rsplit_once(':')
        .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
        .unwrap_or_else(|| "127.0.0.1".into())
}

/// A management point of a later version on an allowed volume.
fn later_version(ctx: &Ctx, than: &str) -> Option<(String, String)> {
    for v in ctx.mp.volumes() {
        let f = v.join(MP_INSTALL_DIR).join(MP_VERSION_FILE);
        if let Ok(s) = std::fs::read_to_string(&f) {
            let s = s.trim().to_string();
            if version_later(&s, than) {
                return Some((f.display().to_string(), s));
            }
        }
    }
    None
}

/// What this node offers a management point install.
pub fn describe(ctx: &Ctx) -> MpTarget {
    let install = ctx.store.mp_install().ok().flatten();
    let role = if ctx.identity().is_some() {
        "site-server"
    } else if ctx.store.logon_install().ok().flatten().is_some() {
        "logon-server"
    } else {
        "bare"
    };
    let serving = ctx.mp.host().and_then(|h| h.serving());
    MpTarget {
        node_id: ctx.node_id.to_string(),
        role: role.into(),
        site_code: ctx.site_code().map(|c| c.to_string()).unwrap_or_default(),
        mp_site: install
            .as_ref()
            .map(|i| i.site_code.clone())
            .unwrap_or_default(),
        mp_port: serving.unwrap_or(0),
        mp_version: install
            .as_ref()
            .map(|i| i.version.clone())
            .unwrap_or_default(),
        agent_running: serving.is_some() && !agent_stopped(ctx),
        install_dir: install
            .as_ref()
            .map(|i| i.install_dir.clone())
            .unwrap_or_default(),
        policy_version: install
            .as_ref()
            .and_then(|i| i.policies.iter().map(|p| p.version).max())
            .unwrap_or(0),
        volumes: ctx.mp.volumes().iter().map(|v| volume(v)).collect(),
        later_version: later_version(ctx, MP_VERSION),
        host: listen_host(ctx),
        database: None,
        cert_label: crate::trust::node_credentials(&ctx.store)
            .ok()
            .flatten()
            .and_then(|c| c.identity().ok())
            .map(|i| i.name.label)
            .unwrap_or_default(),
    }
}

/// [`describe`], and with a management point installed, whether its site
/// database accepts it now (the troubleshooter's database check).
pub async fn describe_checked(ctx: &Arc<Ctx>) -> MpTarget {
    let mut t = describe(ctx);
    if let Ok(Some(i)) = ctx.store.mp_install() {
        t.database = Some(
            ctx.peers
                .mp_database_access(&i.site_address, &ctx.node_id.to_string())
                .await
                .map(|site| format!("the site database of site {site} accepts this server")),
        );
    }
    t
}

/// Whether the agent is stopped on demand (fault `mp-agent-stopped`).
pub fn agent_stopped(ctx: &Ctx) -> bool {
    ctx.mp.agent_stopped()
}

fn refuse_other_site(ctx: &Ctx, site: &str) -> Result<(), String> {
    if let Some(me) = ctx.site_code() {
        if me.as_str() != site {
            return Err(format!(
                "this node is the site server of site {me}; only its own site may make it a management point"
            ));
        }
    }
    if let Some(i) = ctx.store.mp_install().map_err(|e| e.to_string())? {
        if i.site_code != site {
            return Err(format!(
                "this server is already a management point of site {}; remove it there first",
                i.site_code
            ));
        }
    }
    Ok(())
}

/// The allowed volume `path` names exactly, or a refusal that lists them.
fn allowed_volume(ctx: &Ctx, path: &str) -> Result<PathBuf, String> {
    let vols = ctx.mp.volumes();
    vols.iter()
        .find(|v| v.as_os_str() == path)
        .cloned()
        .ok_or_else(|| {
            format!(
                "{} is not one of this server's allowed data volumes ({})",
                sms_types::limits::clip(path),
                vols.iter()
                    .map(|v| v.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

/// A component file name: one plain name (no directories, nothing hidden).
fn check_file_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a component file name",
            sms_types::limits::clip(name)
        ))
    }
}

/// Most bytes of component files one install may copy.
const MAX_COMPONENT_BYTES: usize = 16 << 20;

/// Install step 1: the install directory on the chosen volume, the
/// identification, and the component's files, each synced.
pub async fn prepare(ctx: &Arc<Ctx>, req: MpPrepare) -> Result<(String, Vec<String>), String> {
    let _lock = ctx.mp.lock.lock().await;
    refuse_other_site(ctx, &req.site_code)?;
    let volume = allowed_volume(ctx, &req.volume)?;
    let total: usize = req.files.iter().map(|f| f.bytes.len()).sum();
    if total > MAX_COMPONENT_BYTES {
        return Err(format!(
            "the component's files are {total} bytes; at most {MAX_COMPONENT_BYTES}"
        ));
    }
    for f in &req.files {
        check_file_name(&f.name)?;
    }
    let dir = volume.join(MP_INSTALL_DIR);
    let bin = dir.join("bin");
    let mut lines = vec![];
    let mut log = |l: String| {
        tracing::info!("{l}");
        lines.push(l);
    };
    let io = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    std::fs::create_dir_all(&bin).map_err(|e| io("cannot create", &bin, e))?;
    sync_dir(&volume).map_err(|e| io("cannot sync", &volume, e))?;
    sync_dir(&dir).map_err(|e| io("cannot sync", &dir, e))?;
    log(format!(
        "Created the installation directory {}.",
        dir.display()
    ));
    let ident = serde_json::json!({
        "site_code": req.site_code,
        "site_server": req.site_address,
        "node_id": ctx.node_id.to_string(),
        "written_unix_ms": sms_types::now_ms(),
    });
    let ident_path = dir.join("identification.json");
    write_synced(&ident_path, ident.to_string().as_bytes())
        .map_err(|e| io("cannot write", &ident_path, e))?;
    log(format!(
        "Wrote the identification of site {} to {}.",
        req.site_code,
        ident_path.display()
    ));
    for f in &req.files {
        let p = bin.join(&f.name);
        write_synced(&p, &f.bytes).map_err(|e| io("cannot write", &p, e))?;
        log(format!(
            "Installed file {} ({} bytes).",
            p.display(),
            f.bytes.len()
        ));
    }
    sync_dir(&bin).map_err(|e| io("cannot sync", &bin, e))?;
    sync_dir(&dir).map_err(|e| io("cannot sync", &dir, e))?;
    Ok((dir.display().to_string(), lines))
}

/// Which process listens on TCP `port`, read from /proc as `netstat -anop`
/// would show it: "pid 1234 (nginx)". None when no listener is found or
/// its owner cannot be read.
pub fn port_holder(port: u16) -> Option<String> {
    let mut inodes = vec![];
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(s) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in s.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue; // 0A: LISTEN
            }
            let p = f[1]
                .rsplit(':')
                .next()
                .and_then(|h| u16::from_str_radix(h, 16).ok());
            if p == Some(port) {
                inodes.push(format!("socket:[{}]", f[9]));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for proc_dir in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = proc_dir.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc_dir.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(t) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| t.as_os_str() == i.as_str()) {
                    let comm =
                        std::fs::read_to_string(proc_dir.path().join("comm")).unwrap_or_default();
                    return Some(format!("pid {pid} ({})", comm.trim()));
                }
            }
        }
    }
    Some("a process this node cannot see".into())
}

/// Whether `host:port` can be bound now; if not, who holds it.
fn port_free(host: &str, port: u16) -> Result<(), String> {
    if port == 0 {
        return Ok(());
    }
    match std::net::TcpListener::bind((host, port)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(format!(
            "port {port} on {host} is already in use by {}",
            port_holder(port).unwrap_or_else(|| "another process".into())
        )),
        Err(e) => Err(format!("cannot bind port {port} on {host}: {e}")),
    }
}

/// Install step 2, MPSetup: the prerequisite checks in the seed's order,
/// then the install record and the agent. A refusal names the check.
pub async fn setup(ctx: &Arc<Ctx>, req: MpSetup) -> MpSetupResult {
    let _lock = ctx.mp.lock.lock().await;
    let mut lines = vec![];
    let outcome = run_setup(ctx, &req, &mut lines).await;
    match &outcome {
        Ok(_) => {}
        Err((check, why)) => {
            let l = format!(
                "Error ({} check): {why}. Management point setup cannot continue.",
                check.as_str()
            );
            tracing::error!("{l}");
            lines.push(l);
        }
    }
    MpSetupResult { lines, outcome }
}

async fn run_setup(
    ctx: &Arc<Ctx>,
    req: &MpSetup,
    lines: &mut Vec<String>,
) -> Result<u16, (MpCheck, String)> {
    let mut log = |l: String| {
        tracing::info!("{l}");
        lines.push(l);
    };
    let other = |e: String| (MpCheck::Other, e);
    log("==================== Management point setup started ====================".into());
    log(format!(
        "Parameters: site {}, site server {}, port {}, version {}, install directory {}",
        req.site_code, req.site_address, req.port, req.version, req.install_dir
    ));
    req.site_code
        .parse::<SiteCode>()
        .map_err(|e| other(e.to_string()))?;
    refuse_other_site(ctx, &req.site_code).map_err(other)?;
    let host = listen_host(ctx);
    let serving = ctx.mp.host().and_then(|h| h.serving());
    let current = ctx.store.mp_install().map_err(|e| other(e.to_string()))?;
    // Installed already for this site: a refresh of its policies and
    // certificate, on the port it serves.
    if let (Some(cur), Some(port)) = (&current, serving) {
        if req.port == 0 || req.port == port {
            let mut next = cur.clone();
            next.policies = keep_recent(&cur.policies, &req.policies);
            next.site_certificate = req.site_certificate.clone();
            next.site_address = req.site_address.clone();
            ctx.store
                .set_mp_install(Some(&next))
                .map_err(|e| other(e.to_string()))?;
            ctx.store
                .durable()
                .await
                .map_err(|e| other(e.to_string()))?;
            ctx.mp.set_installed(Some(next));
            log(format!(
                "The management point of site {} is installed and serving on port {port}; its policies are now version {}.",
                req.site_code,
                req.policies.iter().map(|p| p.version).max().unwrap_or(0)
            ));
            return Ok(port);
        }
    }
    if let Some((path, v)) = later_version(ctx, &req.version) {
        return Err((
            MpCheck::Version,
            format!("management point version {v} is already installed ({path}); this setup is version {}", req.version),
        ));
    }
    log("No later version of the management point is installed.".into());
    let dir = PathBuf::from(&req.install_dir);
    let volume = ctx
        .mp
        .volumes()
        .into_iter()
        .find(|v| dir.parent() == Some(v.as_path()))
        .ok_or_else(|| {
            other(format!(
                "{} is not on one of this server's allowed data volumes",
                req.install_dir
            ))
        })?;
    if !dir.join("identification.json").exists() {
        return Err(other(format!(
            "{} holds no identification: the Site Component Manager copies the files first",
            req.install_dir
        )));
    }
    let v = self::volume(&volume);
    if !v.supported {
        return Err((
            MpCheck::Filesystem,
            format!("{} is on {}: {}", v.path, v.fs_type, v.why),
        ));
    }
    log(format!(
        "The install volume {} is on {}, which is supported.",
        v.path, v.fs_type
    ));
    if v.free_bytes < MP_MIN_FREE_BYTES {
        return Err((
            MpCheck::Space,
            format!(
                "{} has {} MB free; a management point needs at least {} MB",
                v.path,
                v.free_bytes / 1_000_000,
                MP_MIN_FREE_BYTES / 1_000_000
            ),
        ));
    }
    log(format!(
        "{} MB free on {} (at least {} MB needed).",
        v.free_bytes / 1_000_000,
        v.path,
        MP_MIN_FREE_BYTES / 1_000_000
    ));
    port_free(&host, req.port).map_err(|e| (MpCheck::Port, e))?;
    log(format!("Port {} on {host} is free.", req.port));
    let site = ctx
        .peers
        .mp_database_access(&req.site_address, &ctx.node_id.to_string())
        .await
        .map_err(|e| (MpCheck::Database, e))?;
    log(format!(
        "The site database of site {site} accepts this server."
    ));
    let version_file = dir.join(MP_VERSION_FILE);
    write_synced(&version_file, req.version.as_bytes())
        .map_err(|e| other(format!("cannot write {}: {e}", version_file.display())))?;
    let host_handle = ctx
        .mp
        .host()
        .ok_or_else(|| other("this node cannot serve HTTP (no listener is wired)".into()))?;
    let port = host_handle.start(&host, req.port).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            (
                MpCheck::Port,
                format!(
                    "port {} on {host} was taken meanwhile by {}",
                    req.port,
                    port_holder(req.port).unwrap_or_else(|| "another process".into())
                ),
            )
        } else {
            other(format!("cannot serve on {host}:{}: {e}", req.port))
        }
    })?;
    let install = MpInstall {
        site_code: req.site_code.clone(),
        site_address: req.site_address.clone(),
        port,
        version: req.version.clone(),
        install_dir: req.install_dir.clone(),
        site_certificate: req.site_certificate.clone(),
        policies: req.policies.clone(),
    };
    let stored = async {
        ctx.store.set_mp_install(Some(&install))?;
        ctx.store.durable().await
    }
    .await;
    if let Err(e) = stored {
        host_handle.stop().await;
        return Err(other(format!("cannot record the install: {e}")));
    }
    ctx.mp.set_installed(Some(install));
    log(format!(
        "Default policies initialised: {}.",
        req.policies
            .iter()
            .map(|p| format!("{}.{}", p.id, p.version))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    log(format!(
        "The agent (policy service) started; clients are served on http://{host}:{port}/sms_mp/."
    ));
    log("Installation was successful.".into());
    Ok(port)
}

/// Versions of one policy a management point keeps: a client that read
/// the assignments just before a refresh still gets the version it was
/// told about.
pub const POLICY_VERSIONS_KEPT: usize = 4;

/// The new policies, plus the most recent older versions of each.
fn keep_recent(old: &[Policy], new: &[Policy]) -> Vec<Policy> {
    let mut out: Vec<Policy> = new.to_vec();
    for n in new {
        let mut older: Vec<&Policy> = old
            .iter()
            .filter(|o| o.id == n.id && o.version < n.version)
            .collect();
        older.sort_by_key(|o| std::cmp::Reverse(o.version));
        out.extend(older.into_iter().take(POLICY_VERSIONS_KEPT - 1).cloned());
    }
    out
}

/// Removes the management point of `site` from this node: the agent stops,
/// the port is freed, the install directory goes.
pub async fn uninstall(ctx: &Arc<Ctx>, site: &str) -> Result<(), String> {
    let _lock = ctx.mp.lock.lock().await;
    let Some(cur) = ctx.store.mp_install().map_err(|e| e.to_string())? else {
        tracing::info!("removal asked by site {site}: no management point is installed here");
        return Ok(());
    };
    if cur.site_code != site {
        return Err(format!(
            "this server is the management point of site {}, not {site}",
            cur.site_code
        ));
    }
    if let Some(h) = ctx.mp.host() {
        h.stop().await;
    }
    ctx.store.set_mp_install(None).map_err(|e| e.to_string())?;
    ctx.store.durable().await.map_err(|e| e.to_string())?;
    ctx.mp.set_installed(None);
    let dir = PathBuf::from(&cur.install_dir);
    if ctx
        .mp
        .volumes()
        .iter()
        .any(|v| dir.parent() == Some(v.as_path()))
    {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!("could not remove {}: {e}", dir.display());
        }
    }
    tracing::info!(site = %site, port = cur.port, "management point removed: the agent stopped and port {} is free", cur.port);
    Ok(())
}

/// At start: an installed management point's agent starts again (with
/// the fault that stopped it, if one is injected).
pub async fn start_installed(ctx: &Arc<Ctx>) {
    let faults = ctx.store.faults().unwrap_or_default();
    ctx.mp
        .set_agent_stopped(faults.contains(&Fault::MpAgentStopped));
    let Ok(Some(install)) = ctx.store.mp_install() else {
        return;
    };
    ctx.mp.set_installed(Some(install.clone()));
    let Some(h) = ctx.mp.host() else { return };
    let host = listen_host(ctx);
    match h.start(&host, install.port).await {
        Ok(p) => {
            tracing::info!(site = %install.site_code, "the agent (policy service) started on {host}:{p}")
        }
        Err(e) => tracing::error!(
            site = %install.site_code,
            "the agent cannot serve on {host}:{}: {e}{}",
            install.port,
            port_holder(install.port).map(|h| format!(" (held by {h})")).unwrap_or_default()
        ),
    }
}

/// Applies a fault that leaves something real on this server, or stops
/// the agent.
pub fn fault_injected(ctx: &Ctx, fault: &Fault) -> std::io::Result<()> {
    if *fault == Fault::MpAgentStopped {
        ctx.mp.set_agent_stopped(true);
    }
    if *fault == Fault::MpLaterVersion {
        let Some(v) = ctx.mp.volumes().into_iter().next() else {
            return Ok(());
        };
        let dir = v.join(MP_INSTALL_DIR);
        std::fs::create_dir_all(&dir)?;
        let major: u64 = MP_VERSION
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        write_synced(
            &dir.join(MP_VERSION_FILE),
            format!("{}.0.0", major + 1).as_bytes(),
        )?;
        tracing::warn!(
            "a management point of version {}.0.0 was left in {} (fault mp-later-version)",
            major + 1,
            dir.display()
        );
    }
    Ok(())
}

/// Undoes [`fault_injected`]: the version file goes (or is this install's
/// own version again).
pub fn fault_cleared(ctx: &Ctx, name: &str) -> std::io::Result<()> {
    if name == Fault::MpAgentStopped.name() {
        ctx.mp.set_agent_stopped(false);
    }
    if name == Fault::MpLaterVersion.name() {
        let Some(v) = ctx.mp.volumes().into_iter().next() else {
            return Ok(());
        };
        let f = v.join(MP_INSTALL_DIR).join(MP_VERSION_FILE);
        match ctx.store.mp_install().ok().flatten() {
            Some(i) if Path::new(&i.install_dir).join(MP_VERSION_FILE) == f => {
                write_synced(&f, i.version.as_bytes())?
            }
            _ => match std::fs::remove_file(&f) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            },
        }
        tracing::info!(
            "the later management point version file {} was removed",
            f.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_keeps_a_few_older_versions_of_each_policy() {
        let p = |v| Policy {
            id: "S01-MACHINE".into(),
            version: v,
            body: format!("v{v}"),
        };
        let mut held = vec![p(1)];
        for v in 2..=6 {
            held = keep_recent(&held, &[p(v)]);
        }
        let mut versions: Vec<u64> = held.iter().map(|x| x.version).collect();
        versions.sort();
        assert_eq!(versions, [3, 4, 5, 6]);
    }

    #[test]
    fn file_names_are_plain() {
        assert!(check_file_name("mp.conf").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "x\0"] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_listener_is_named_with_its_process() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let e = port_free("127.0.0.1", port).unwrap_err();
        assert!(e.contains(&format!("port {port}")), "{e}");
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        drop(l);
        assert!(port_free("127.0.0.1", port).is_ok());
    }

    #[test]
    fn a_tmpfs_volume_is_unsupported_and_a_disk_is_not() {
        let shm = Path::new("/dev/shm");
        if shm.exists() {
            let v = volume(shm);
            assert_eq!(v.fs_type, "tmpfs");
            assert!(!v.supported && v.why.contains("fsync"), "{v:?}");
        }
        let v = volume(Path::new("/definitely/not/here"));
        assert!(!v.supported && v.why.contains("cannot read"), "{v:?}");
    }
}
