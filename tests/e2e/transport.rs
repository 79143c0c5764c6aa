//! Store-and-forward transport across real processes: exactly-once effect
//! through receiver crashes, priorities, chunked packages that resume, and
//! refusal of anyone who is not a neighbour.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::*;
use serde_json::Value;
use sms_proto::v1 as pb;

fn received(n: &NodeProc) -> u64 {
    n.json(&["probe", "received", "--summary"])["count"]
        .as_u64()
        .unwrap()
}

fn parent_link(child: &NodeProc) -> Value {
    let st = child.json(&["status"]);
    st["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["to"] == "PRI")
        .cloned()
        .expect("link to PRI")
}

#[test]
fn twenty_thousand_jobs_survive_two_receiver_crashes_exactly_once() {
    let mut p = Pair::start();
    p.create_s01();
    let low = p.child.send_probes("PRI", 15_000, "low");
    let high = p.child.send_probes("PRI", 5_000, "high");
    let sent: HashSet<String> = low.into_iter().chain(high).collect();
    assert_eq!(sent.len(), 20_000);

    // Kill the receiver twice while jobs are flowing.
    for round in 0..2 {
        let before = received(&p.parent);
        wait_for("more jobs to arrive", Duration::from_secs(60), || {
            received(&p.parent) > before
        });
        p.parent.kill9();
        p.parent.restart();
        eprintln!(
            "round {round}: killed the receiver after {} jobs had arrived",
            received(&p.parent)
        );
    }

    wait_for("all 20000 jobs", Duration::from_secs(180), || {
        received(&p.parent) >= 20_000
    });
    wait_for(
        "the child's outbox to drain",
        Duration::from_secs(60),
        || parent_link(&p.child)["queued_jobs"] == 0,
    );
    let got = p.parent.json(&["probe", "received"]);
    let probes = got["probes"].as_array().unwrap();
    assert_eq!(probes.len(), 20_000, "a job was delivered twice or lost");
    let got_ids: HashSet<String> = probes
        .iter()
        .map(|p| p["job_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got_ids, sent, "delivered set differs from the sent set");
    assert_eq!(parent_link(&p.child)["failed_jobs"], 0);
}

#[test]
fn high_priority_overtakes_queued_low_priority() {
    let p = Pair::start();
    p.create_s01();
    // Hold the jobs back so all of them are queued before any leaves.
    p.child.json(&["sever-link", "--to", "PRI"]);
    assert_eq!(parent_link(&p.child)["state"], "severed");
    p.child.send_probes("PRI", 600, "low");
    p.child.send_probes("PRI", 300, "medium");
    p.child.send_probes("PRI", 600, "high");
    // The probes, plus the child's own status report about the severed link.
    assert!(parent_link(&p.child)["queued_jobs"].as_u64().unwrap() >= 1500);
    assert_eq!(received(&p.parent), 0, "a severed link let jobs through");
    p.child.json(&["restore-link", "--to", "PRI"]);
    wait_for("1500 jobs", Duration::from_secs(60), || {
        received(&p.parent) == 1500
    });
    let got = p.parent.json(&["probe", "received"]);
    let arrivals = |prio: &str| -> Vec<u64> {
        got["probes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["priority"] == prio)
            .map(|x| x["arrival"].as_u64().unwrap())
            .collect()
    };
    let (h, m, l) = (arrivals("high"), arrivals("medium"), arrivals("low"));
    assert_eq!((h.len(), m.len(), l.len()), (600, 300, 600));
    assert!(
        h.iter().max() < m.iter().min(),
        "a medium job arrived before a high one"
    );
    assert!(
        m.iter().max() < l.iter().min(),
        "a low job arrived before a medium one"
    );
}

async fn package_progress(addr: &str) -> Option<pb::ReceivedPackage> {
    let mut c = pb::admin_client::AdminClient::connect(format!("http://{addr}"))
        .await
        .ok()?;
    c.list_packages(pb::ListPackagesRequest {})
        .await
        .ok()?
        .into_inner()
        .packages
        .into_iter()
        .next()
}

#[tokio::test(flavor = "multi_thread")]
async fn file_package_resumes_from_last_acknowledged_chunk_after_receiver_crash() {
    let mut p = Pair::start();
    p.create_s01();
    const CHUNK: u64 = 256 * 1024;
    let size = 96 * 1024 * 1024u64;
    let sent = p.child.json(&[
        "package",
        "send",
        "--to",
        "PRI",
        "--size",
        &size.to_string(),
        "--chunk-bytes",
        &CHUNK.to_string(),
    ]);
    let chunks = sent["chunk_count"].as_u64().unwrap();
    assert_eq!(chunks, size / CHUNK);
    // Kill the receiver part-way through.
    let at_kill = loop {
        if let Some(pk) = package_progress(&p.parent.addr).await {
            if pk.chunks_received >= 8 {
                break pk;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    p.parent.kill9();
    assert!(
        !at_kill.complete,
        "the transfer finished before the crash; nothing to resume"
    );
    p.parent.restart();
    wait_for("the package to complete", Duration::from_secs(120), || {
        let v = p.parent.json(&["package", "list"]);
        v["packages"][0]["complete"] == true
    });
    let v = p.parent.json(&["package", "list"]);
    assert_eq!(
        v["packages"][0]["sha256"], sent["sha256"],
        "the package arrived corrupted"
    );
    assert_eq!(v["packages"][0]["size_bytes"], size);
    // Resent chunks the receiver already had: at most one window (8 MiB).
    let dup = p.parent.json(&["status"])["duplicates_dropped"]
        .as_u64()
        .unwrap();
    assert!(
        dup * CHUNK <= 8 * 1024 * 1024,
        "{dup} chunks were sent twice"
    );
    wait_for(
        "the sender to free the package",
        Duration::from_secs(30),
        || parent_link(&p.child)["queued_jobs"] == 0,
    );
}

fn hello(source: &str, dest: &str, secret: &str) -> pb::LinkFrame {
    pb::LinkFrame {
        kind: Some(pb::link_frame::Kind::Hello(pb::Hello {
            source_site: source.into(),
            dest_site: dest.into(),
            source_address: String::new(),
            link_secret: secret.into(),
            // As an older node sends it: no clock.
            sent_unix_ms: 0,
        })),
    }
}

/// Opens a link with `frames` and returns the refusal.
async fn refused(addr: &str, frames: Vec<pb::LinkFrame>) -> tonic::Status {
    let mut c = pb::transfer_client::TransferClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    match c.link(futures::stream::iter(frames)).await {
        Err(s) => s,
        Ok(resp) => {
            let mut rx = resp.into_inner();
            loop {
                match rx.message().await {
                    Err(s) => return s,
                    Ok(None) => panic!("stream ended without a refusal"),
                    Ok(Some(r)) => assert!(
                        !matches!(r.kind, Some(pb::link_reply::Kind::Acks(_))),
                        "a refused link acknowledged a job"
                    ),
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn links_from_strangers_wrong_secrets_and_oversized_frames_are_refused() {
    let p = Pair::start();
    p.create_s01();
    let before = received(&p.parent);

    let s = refused(&p.parent.addr, vec![hello("X99", "PRI", "")]).await;
    assert_eq!(s.code(), tonic::Code::PermissionDenied);
    assert!(s.message().contains("not a neighbour"), "{}", s.message());

    let s = refused(&p.parent.addr, vec![hello("S01", "PRI", "guessed-secret")]).await;
    assert_eq!(s.code(), tonic::Code::PermissionDenied);
    assert!(s.message().contains("wrong link secret"), "{}", s.message());

    let s = refused(&p.parent.addr, vec![hello("S01", "S01", "")]).await;
    assert!(s.message().contains("not site S01"), "{}", s.message());

    let s = refused(
        &p.parent.addr,
        vec![hello("S01", "PRI", &"x".repeat(5 * 1024 * 1024))],
    )
    .await;
    assert!(
        matches!(
            s.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        ),
        "oversized frame: {s:?}"
    );

    let job = pb::LinkFrame {
        kind: Some(pb::link_frame::Kind::Job(pb::Job::default())),
    };
    let s = refused(&p.parent.addr, vec![job]).await;
    assert_eq!(s.code(), tonic::Code::InvalidArgument);

    // A bare node takes no jobs at all.
    let spare = NodeProc::start(&p.dir.path().join("spare"), &[]);
    let s = refused(&spare.addr, vec![hello("PRI", "S05", "")]).await;
    assert_eq!(s.code(), tonic::Code::Unavailable);
    assert!(s.message().contains("bare"), "{}", s.message());

    // Nothing was delivered; the refusal is reported and counted.
    assert_eq!(received(&p.parent), before);
    let msgs = p
        .parent
        .json(&["status-messages", "--id", &id(&catalog::DESPOOL_REFUSED)]);
    assert!(
        !msgs["messages"].as_array().unwrap().is_empty(),
        "refusal not reported"
    );
    assert_eq!(p.parent.site_status("S01").as_deref(), Some("Active"));
}
