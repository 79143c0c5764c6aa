//! The version and git commit of this build (see `build.rs`).

/// The package version, as in Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binaries were built from (`unknown` outside a git
/// checkout; `-modified` when the tree had uncommitted changes; or what
/// `SMS_GIT_COMMIT` said at build time).
pub const GIT_COMMIT: &str = env!("SMS_GIT_COMMIT");

/// `0.1.0 (commit 1a2b3c4d5e6f)`: what `--version` prints after the name.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SMS_GIT_COMMIT"),
    ")"
);

#[cfg(test)]
mod tests {
    #[test]
    fn the_long_version_names_the_version_and_a_commit() {
        assert!(super::LONG_VERSION.starts_with(super::VERSION));
        assert!(!super::GIT_COMMIT.is_empty());
        assert!(super::LONG_VERSION.contains(super::GIT_COMMIT));
    }
}
