//! Records the git commit the binaries are built from. Outside a git
//! checkout (a source tarball) or without git it says `unknown`; a tree
//! with uncommitted changes gets a `-modified` suffix.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=SMS_GIT_COMMIT");
    // The reflog of HEAD changes on every commit and checkout, so the
    // recorded commit follows them without rebuilding on every file edit.
    if let Some(p) = git(&["rev-parse", "--git-path", "logs/HEAD"]) {
        println!("cargo:rerun-if-changed={p}");
    }
    let commit = std::env::var("SMS_GIT_COMMIT").ok().or_else(|| {
        let c = git(&["rev-parse", "--short=12", "HEAD"])?;
        let dirty =
            git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        Some(if dirty { format!("{c}-modified") } else { c })
    });
    println!(
        "cargo:rustc-env=SMS_GIT_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
}
