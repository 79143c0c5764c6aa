//! The chaos runs; see the `sms_chaos` crate doc for what they do and how to
//! run them. Both print the seed first and in every failure.

use std::time::Duration;

use sms_chaos::{run, Config};

fn chaos(rounds: u32, budget: Duration, test_args: &str) {
    let cfg = Config::from_env(rounds, budget, test_args).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "chaos: seed {} ({} rounds); replay: {}",
        cfg.seed,
        cfg.rounds,
        cfg.reproduce()
    );
    let report = run(&cfg).unwrap_or_else(|e| {
        panic!(
            "chaos seed {}: setup failed: {e}\nreplay: {}",
            cfg.seed,
            cfg.reproduce()
        )
    });
    println!("{}", report.summary());
    if !report.problems.is_empty() {
        eprintln!("{}", report.evidence);
        panic!(
            "chaos seed {} found {} problems:\n- {}\n{}\nnode data kept in {}\nreplay: {}",
            cfg.seed,
            report.problems.len(),
            report.problems.join("\n- "),
            report.summary(),
            report
                .kept_dir
                .as_deref()
                .map_or("(not kept)".into(), |d| d.display().to_string()),
            cfg.reproduce()
        );
    }
}

/// The default run: 40 rounds, about 2 minutes on two cores (debug
/// nodes); no new round after 150 s.
#[test]
fn chaos_default() {
    chaos(40, Duration::from_secs(150), "chaos_default -- --nocapture");
}

/// The soak: 200 rounds, up to 20 minutes of rounds.
#[test]
#[ignore = "a 20-minute soak; run with -- --ignored chaos_soak"]
fn chaos_soak() {
    chaos(
        200,
        Duration::from_secs(1_200),
        "chaos_soak -- --ignored --nocapture",
    );
}
