//! Faults injected into a node to reproduce SMS failure modes on demand:
//! `inject-fault` and `clear-fault` send the same request and both print
//! the faults in force afterwards.

use sms_proto::v1 as pb;

use crate::client::{admin, node_addr, Reply};
use crate::output::{print_faults, Out};

#[derive(clap::Args, Debug)]
pub struct InjectArgs {
    /// ct2-job-failure or bootstrap-failure.
    pub name: String,
    /// For bootstrap-failure: the phase (1-4) that fails.
    #[arg(long)]
    pub phase: Option<u32>,
}

#[derive(clap::Args, Debug)]
pub struct ClearArgs {
    /// ct2-job-failure or bootstrap-failure.
    pub name: String,
}

/// Whether the fault is switched on or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Inject,
    Clear,
}

impl Verb {
    /// The command, as errors name it.
    pub fn command(self) -> &'static str {
        match self {
            Verb::Inject => "inject-fault",
            Verb::Clear => "clear-fault",
        }
    }
}

/// The request for `verb`. A bootstrap failure is injected at a phase, so
/// one without `--phase` is refused here rather than by the node. Faults
/// are cleared by name alone (phase 0). The fault names are the node's to
/// check: it knows which faults it can inject.
pub fn request(verb: Verb, name: String, phase: Option<u32>) -> anyhow::Result<pb::FaultRequest> {
    if verb == Verb::Inject && name == "bootstrap-failure" && phase.is_none() {
        anyhow::bail!("bootstrap-failure needs --phase N (1-4)");
    }
    Ok(pb::FaultRequest {
        name,
        phase: phase.unwrap_or(0),
    })
}

/// Injects or clears a fault on the node and prints the faults in force.
pub async fn run(
    node: &Option<String>,
    out: &Out,
    verb: Verb,
    name: String,
    phase: Option<u32>,
) -> anyhow::Result<()> {
    let addr = node_addr(node)?;
    let req = request(verb, name, phase)?;
    let mut c = admin(&addr).await?;
    let f = match verb {
        Verb::Inject => c.inject_fault(req).await,
        Verb::Clear => c.clear_fault(req).await,
    }
    .reply(verb.command())?;
    print_faults(out, &f);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bootstrap_failure_needs_a_phase_only_when_injected() {
        let e = request(Verb::Inject, "bootstrap-failure".into(), None).unwrap_err();
        assert_eq!(e.to_string(), "bootstrap-failure needs --phase N (1-4)");
        let r = request(Verb::Inject, "bootstrap-failure".into(), Some(2)).unwrap();
        assert_eq!((r.name.as_str(), r.phase), ("bootstrap-failure", 2));
        let r = request(Verb::Clear, "bootstrap-failure".into(), None).unwrap();
        assert_eq!((r.name.as_str(), r.phase), ("bootstrap-failure", 0));
        let r = request(Verb::Inject, "ct2-job-failure".into(), None).unwrap();
        assert_eq!((r.name.as_str(), r.phase), ("ct2-job-failure", 0));
    }

    #[test]
    fn each_verb_names_its_command() {
        assert_eq!(Verb::Inject.command(), "inject-fault");
        assert_eq!(Verb::Clear.command(), "clear-fault");
    }
}
