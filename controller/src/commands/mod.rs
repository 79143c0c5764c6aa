//! One module per controller command.

pub mod add_domain;
pub mod allocate_id;
pub mod bad_box;
pub mod bootstrap_log;
mod change;
pub mod clear_fault;
pub mod create_secondary;
pub mod delete_site;
pub mod diagnose;
pub mod failed_jobs;
pub mod force_ct2;
pub mod inject_fault;
pub mod log;
pub mod package;
pub mod probe;
pub mod remove_domain;
pub mod restore_link;
pub mod retry_jobs;
pub mod set_address;
pub mod set_site_control;
pub mod sever_link;
pub mod site_control;
pub mod sites;
pub mod status;
pub mod status_messages;
pub mod submit_ct1;
pub mod up;
pub mod upgrade_site;

use serde_json::{json, Value};
use sms_proto::v1 as pb;

/// JSON of a link as `status`, `sever-link` and `restore-link` print it.
pub(crate) fn link_json(l: &pb::LinkState) -> Value {
    json!({
        "to": l.to,
        "state": l.state,
        "queued_jobs": l.queued_jobs,
        "failed_jobs": l.failed_jobs,
        "server": l.server,
        "detail": l.detail,
        "refused_frames": l.refused_frames,
    })
}

/// JSON of a fault list.
pub(crate) fn faults_json(f: &pb::FaultList) -> Value {
    json!({
        "faults": f.faults.iter().map(|f| {
            if f.phase > 0 { json!({"name": f.name, "phase": f.phase}) } else { json!({"name": f.name}) }
        }).collect::<Vec<_>>()
    })
}

pub(crate) fn print_faults(out: &crate::output::Out, f: &pb::FaultList) {
    out.print(&faults_json(f), || {
        if f.faults.is_empty() {
            println!("no faults injected");
        }
        for x in &f.faults {
            if x.phase > 0 {
                println!("{} (phase {})", x.name, x.phase);
            } else {
                println!("{}", x.name);
            }
        }
    });
}

pub(crate) fn print_link(out: &crate::output::Out, l: &pb::LinkState) {
    out.print(&link_json(l), || {
        println!(
            "link to {}: {} ({} queued, {} failed){}",
            l.to,
            l.state,
            l.queued_jobs,
            l.failed_jobs,
            if l.detail.is_empty() {
                String::new()
            } else {
                format!(" - {}", l.detail)
            }
        )
    });
}
