//! `controller completions SHELL` and `controller man [--out DIR]`: the
//! shell completion script and the manual pages, made from the same clap
//! definition as the parser, so they cannot drift from the real flags.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;

#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for. Bash: `source <(controller completions
    /// bash)`; zsh: write it as `_controller` into a directory on $fpath.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Write controller.1 and one page per command (controller-sites.1,
    /// ...) into DIR instead of printing controller(1) to stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// The completion script for `shell`.
pub fn completion_script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = crate::Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "controller", &mut buf);
    buf
}

/// controller(1), the top page (roff).
pub fn man_page() -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    page(crate::Cli::command()).render(&mut buf)?;
    Ok(buf)
}

/// The man page of `cmd` (built, so a subcommand's display name is
/// `controller-sites`), naming this build as its source.
fn page(cmd: clap::Command) -> clap_mangen::Man {
    clap_mangen::Man::new(cmd)
        .source(format!("controller {}", sms_build_info::LONG_VERSION))
        .manual("SMS site hierarchy")
}

/// Writes controller.1 and a page for every command and subcommand
/// (`controller-sites.1`, `controller-mp-check.1`, ...) into `dir`;
/// returns the files written.
pub fn write_man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create --out {}", dir.display()))?;
    let mut cmd = crate::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    write_pages(cmd, dir, &mut written)?;
    Ok(written)
}

fn write_pages(cmd: clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), dir, written)?;
    }
    let man = page(cmd);
    let path = man
        .generate_to(dir)
        .with_context(|| format!("cannot write a man page into {}", dir.display()))?;
    written.push(path);
    Ok(())
}

fn print(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|_| out.flush()) {
        crate::output::stdout_failed(e);
    }
}

pub fn completions(a: CompletionsArgs) -> anyhow::Result<()> {
    print(&completion_script(a.shell));
    Ok(())
}

pub fn man(a: ManArgs) -> anyhow::Result<()> {
    match a.out {
        None => print(&man_page()?),
        Some(dir) => {
            let written = write_man_pages(&dir)?;
            eprintln!("wrote {} man pages to {}", written.len(), dir.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bash_script_completes_the_commands() {
        let s = String::from_utf8(completion_script(clap_complete::Shell::Bash)).unwrap();
        for word in [
            "sites",
            "status-messages",
            "create-secondary",
            "--node",
            "completions",
        ] {
            assert!(s.contains(word), "{word} missing from the bash completions");
        }
        let z = String::from_utf8(completion_script(clap_complete::Shell::Zsh)).unwrap();
        assert!(
            z.starts_with("#compdef controller"),
            "{}",
            &z[..40.min(z.len())]
        );
    }

    #[test]
    fn the_man_pages_are_roff_and_one_per_command() {
        let page = String::from_utf8(man_page().unwrap()).unwrap();
        assert!(page.contains(".TH controller 1"), "{page}");
        assert!(page.contains("status\\-messages"), "commands are listed");
        let dir = tempfile_dir();
        let written = write_man_pages(&dir).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for want in [
            "controller.1",
            "controller-sites.1",
            "controller-mp-check.1",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        let sites = std::fs::read_to_string(dir.join("controller-sites.1")).unwrap();
        assert!(
            sites.starts_with(".ie") && sites.contains(".TH controller-sites 1"),
            "{sites}"
        );
        assert!(
            sites.contains(sms_build_info::GIT_COMMIT),
            "the page names its build"
        );
        assert!(sites.contains("\\-\\-watch"), "{sites}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("controller-man-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }
}
