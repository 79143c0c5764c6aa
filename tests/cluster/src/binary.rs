//! Finding the `sms-node` executable to run.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Names the `sms-node` binary to run when no explicit path is given. Not
/// `SMS_NODE`: the controller already reads that as a node's address.
pub const NODE_BIN_ENV: &str = "SMS_NODE_BIN";

/// Where a [`NodeBinary`] was found, so callers can word errors to match
/// (e.g. "build it first" only makes sense for the guessed locations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The caller named it (a flag, or `CARGO_BIN_EXE_sms-node`).
    Explicit,
    /// [`NODE_BIN_ENV`].
    Env,
    /// Next to the running executable (or its parent directory when that is
    /// Cargo's `deps/`, where test executables live).
    Sibling,
    /// The workspace's Cargo target directory, same profile as this build.
    WorkspaceTarget,
    /// Nothing found: the bare name, left to the `PATH` search of spawn.
    Path,
}

/// The `sms-node` executable a lookup chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeBinary {
    pub path: PathBuf,
    pub source: Source,
}

/// Everything the lookup consults, gathered up front so that the order
/// itself ([`Lookup::resolve`]) is a pure function that unit tests can pin.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    pub explicit: Option<PathBuf>,
    /// The raw value of [`NODE_BIN_ENV`]; empty counts as unset.
    pub env: Option<OsString>,
    pub current_exe: Option<PathBuf>,
    /// `<target>/<profile>` of the workspace this crate was built in.
    pub profile_dir: Option<PathBuf>,
}

impl Lookup {
    /// The lookup as seen by this process.
    pub fn from_env(explicit: Option<&Path>) -> Lookup {
        Lookup {
            explicit: explicit.map(Path::to_path_buf),
            env: std::env::var_os(NODE_BIN_ENV),
            current_exe: std::env::current_exe().ok(),
            profile_dir: Some(workspace_profile_dir()),
        }
    }

    /// First match of: the explicit path, [`NODE_BIN_ENV`], next to the
    /// running executable, the workspace target directory, the bare name.
    /// Explicit and environment paths are taken as given (a wrong one should
    /// fail loudly at spawn, not be silently replaced by a guess); the
    /// guessed locations must exist.
    pub fn resolve(&self, exists: impl Fn(&Path) -> bool) -> NodeBinary {
        let found = |path: PathBuf, source| NodeBinary { path, source };
        if let Some(p) = &self.explicit {
            return found(p.clone(), Source::Explicit);
        }
        if let Some(p) = self.env.as_ref().filter(|v| !v.is_empty()) {
            return found(PathBuf::from(p), Source::Env);
        }
        let name = exe_name();
        if let Some(dir) = self.current_exe.as_deref().and_then(Path::parent) {
            let mut dirs = vec![dir];
            if dir.file_name().is_some_and(|n| n == "deps") {
                dirs.extend(dir.parent());
            }
            if let Some(p) = dirs.iter().map(|d| d.join(&name)).find(|p| exists(p)) {
                return found(p, Source::Sibling);
            }
        }
        if let Some(p) = self
            .profile_dir
            .as_ref()
            .map(|d| d.join(&name))
            .filter(|p| exists(p))
        {
            return found(p, Source::WorkspaceTarget);
        }
        found(PathBuf::from(name), Source::Path)
    }
}

/// Looks `sms-node` up for this process; see [`Lookup::resolve`] for the order.
pub fn find_node_binary(explicit: Option<&Path>) -> NodeBinary {
    Lookup::from_env(explicit).resolve(Path::is_file)
}

fn exe_name() -> String {
    format!("sms-node{}", std::env::consts::EXE_SUFFIX)
}

/// `target/<profile>` of the workspace, honouring `CARGO_TARGET_DIR`. Only
/// this build's profile: a debug node under a release benchmark would skew
/// its figures without a word.
fn workspace_profile_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| root.join(t))
        .unwrap_or_else(|| root.join("target"));
    target.join(if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exe(p: &str) -> PathBuf {
        PathBuf::from(format!("{p}{}", std::env::consts::EXE_SUFFIX))
    }

    fn all() -> Lookup {
        Lookup {
            explicit: Some("/x/sms-node".into()),
            env: Some("/env/sms-node".into()),
            current_exe: Some("/t/debug/controller".into()),
            profile_dir: Some("/ws/target/debug".into()),
        }
    }

    #[test]
    fn explicit_wins_even_when_missing() {
        let b = all().resolve(|_| false);
        assert_eq!(b.path, PathBuf::from("/x/sms-node"));
        assert_eq!(b.source, Source::Explicit);
    }

    #[test]
    fn env_comes_next_and_empty_counts_as_unset() {
        let l = Lookup {
            explicit: None,
            ..all()
        };
        assert_eq!(l.resolve(|_| true).source, Source::Env);
        let l = Lookup {
            env: Some("".into()),
            ..l
        };
        assert_eq!(l.resolve(|_| true).source, Source::Sibling);
    }

    #[test]
    fn sibling_then_the_dir_above_deps() {
        let l = Lookup {
            explicit: None,
            env: None,
            ..all()
        };
        let b = l.resolve(|p| p == exe("/t/debug/sms-node"));
        assert_eq!(
            (b.path, b.source),
            (exe("/t/debug/sms-node"), Source::Sibling)
        );
        let l = Lookup {
            current_exe: Some("/t/debug/deps/e2e-0123".into()),
            ..l
        };
        let b = l.resolve(|p| p == exe("/t/debug/sms-node"));
        assert_eq!(
            (b.path, b.source),
            (exe("/t/debug/sms-node"), Source::Sibling)
        );
        let b = l.resolve(|p| p == exe("/t/debug/deps/sms-node"));
        assert_eq!(b.path, exe("/t/debug/deps/sms-node"));
    }

    #[test]
    fn workspace_target_then_path() {
        let l = Lookup {
            explicit: None,
            env: None,
            ..all()
        };
        let b = l.resolve(|p| p.starts_with("/ws"));
        assert_eq!(
            (b.path, b.source),
            (exe("/ws/target/debug/sms-node"), Source::WorkspaceTarget)
        );
        let b = l.resolve(|_| false);
        assert_eq!((b.path, b.source), (exe("sms-node"), Source::Path));
        assert_eq!(Lookup::default().resolve(|_| true).source, Source::Path);
    }
}
