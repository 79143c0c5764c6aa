//! Where the despooler puts a received job: `despooler::delivery_for`.

use sms_store::{Delivery, Inbox};
use sms_types::*;

use super::support::*;
use crate::despooler::delivery_for;

/// PRI (central) with children S01, S02 and P03, and S04 below P03.
fn hierarchy() -> Node {
    let node = central("PRI");
    put_site(&node.ctx, "S01", Some("PRI"), SiteKind::Secondary);
    put_site(&node.ctx, "S02", Some("PRI"), SiteKind::Secondary);
    put_site(&node.ctx, "P03", Some("PRI"), SiteKind::Primary);
    put_site(&node.ctx, "S04", Some("P03"), SiteKind::Secondary);
    node
}

fn deliver(node: &Node, from: &str, job: &Job, chunk: Option<Chunk>) -> Result<Delivery, String> {
    let id = node.ctx.identity().unwrap();
    delivery_for(&node.ctx, &id, &code(from), job, chunk)
}

fn ct2(site: &str, parent: &str) -> Payload {
    Payload::Ct2(Ct2 {
        signature: None,
        site_code: code(site),
        parent_site_code: Some(code(parent)),
        serial: 1,
        control: ct0(site, Some(parent)),
        components: vec![],
        version: SOFTWARE_VERSION.into(),
        reported_unix_ms: 0,
        server: "127.0.0.1:7101".into(),
        kind: SiteKind::Secondary,
    })
}

fn status(site: &str) -> Payload {
    Payload::Status(vec![StatusMessage {
        uid: uuid::Uuid::now_v7(),
        id: 1003,
        severity: Severity::Informational,
        site_code: code(site),
        component: "SMS_SITE_CONFIG_MANAGER".into(),
        machine: "m".into(),
        time_unix_ms: 0,
        insertion_strings: vec![],
        text: "t".into(),
    }])
}

#[tokio::test]
async fn local_jobs_go_to_the_inbox_of_their_component() {
    let node = hierarchy();
    let ct1 = Payload::Ct1(Ct1 {
        signature: None,
        base_serial: 1,
        proposed: ct0("PRI", None),
        origin: "t".into(),
    });
    let at = |p: Payload| deliver(&node, "S01", &job("S01", "PRI", Priority::High, p), None);
    assert!(matches!(at(ct1), Ok(Delivery::Inbox(Inbox::SiteControl))));
    assert!(matches!(
        at(ct2("S01", "PRI")),
        Ok(Delivery::Inbox(Inbox::Hierarchy))
    ));
    assert!(matches!(
        at(status("S01")),
        Ok(Delivery::Inbox(Inbox::Status))
    ));
    assert!(matches!(at(Payload::Probe(vec![7])), Ok(Delivery::Probe)));
    assert!(matches!(
        at(Payload::Deinstall(code("PRI"))),
        Ok(Delivery::Inbox(Inbox::SiteControl))
    ));
}

#[tokio::test]
async fn a_secondary_refuses_a_ct2() {
    let node = secondary("S01", "PRI");
    let err = deliver(
        &node,
        "PRI",
        &job("PRI", "S01", Priority::High, ct2("S01", "PRI")),
        None,
    )
    .unwrap_err();
    assert_eq!(
        err,
        "a secondary site has no Hierarchy Manager to take a CT2"
    );
}

#[tokio::test]
async fn files_without_chunks_and_bootstraps_are_refused_here() {
    let node = hierarchy();
    let file = deliver(
        &node,
        "S01",
        &job("S01", "PRI", Priority::Low, file_payload(2)),
        None,
    );
    assert_eq!(file.unwrap_err(), "a file package must arrive as chunks");
    let boot = deliver(
        &node,
        "S01",
        &job(
            "S01",
            "PRI",
            Priority::High,
            bootstrap_payload("PRI", "S01"),
        ),
        None,
    );
    assert_eq!(
        boot.unwrap_err(),
        "bootstrap packages go to a bare node's bootstrap service"
    );
}

#[tokio::test]
async fn jobs_for_other_sites_are_forwarded_one_hop() {
    let node = hierarchy();
    let to_sibling = deliver(&node, "S01", &probe("S01", "S02", Priority::Medium), None);
    assert!(matches!(to_sibling, Ok(Delivery::Forward(h)) if h == code("S02")));
    let to_grandchild = deliver(&node, "S01", &probe("S01", "S04", Priority::Medium), None);
    assert!(matches!(to_grandchild, Ok(Delivery::Forward(h)) if h == code("P03")));
    // Up from a primary below the central site, for its parent or beyond.
    let below = primary_below("P02", "PRI");
    put_site(&below.ctx, "S03", Some("P02"), SiteKind::Secondary);
    for dest in ["PRI", "S01", "XYZ"] {
        let up = deliver(&below, "S03", &probe("S03", dest, Priority::Low), None);
        assert!(
            matches!(up, Ok(Delivery::Forward(ref h)) if h == &code("PRI")),
            "{dest}: {up:?}"
        );
    }
}

#[tokio::test]
async fn a_job_that_would_go_back_to_its_sender_is_refused() {
    let node = hierarchy();
    let err = deliver(&node, "P03", &probe("P03", "S04", Priority::High), None).unwrap_err();
    assert_eq!(err, "no route to site S04 except back through P03");
    let below = secondary("S01", "PRI");
    let err = deliver(&below, "PRI", &probe("PRI", "XYZ", Priority::High), None).unwrap_err();
    assert_eq!(err, "no route to site XYZ except back through PRI");
}

#[tokio::test]
async fn the_central_site_refuses_a_job_for_a_site_it_does_not_know() {
    let node = hierarchy();
    let err = deliver(&node, "S01", &probe("S01", "XYZ", Priority::High), None).unwrap_err();
    assert!(err.contains("no route from site PRI to site XYZ"), "{err}");
}

#[tokio::test]
async fn chunks_are_stored_here_or_forwarded() {
    let node = hierarchy();
    let here = deliver(
        &node,
        "S01",
        &job("S01", "PRI", Priority::Low, file_payload(2)),
        Some((1, vec![9; 4])),
    );
    assert!(matches!(
        here,
        Ok(Delivery::Chunk { index: 1, ref data, forward: None }) if data == &vec![9; 4]
    ));
    let on = deliver(
        &node,
        "S01",
        &job("S01", "S04", Priority::Low, file_payload(2)),
        Some((0, vec![1])),
    );
    assert!(matches!(
        on,
        Ok(Delivery::Chunk { index: 0, forward: Some(ref h), .. }) if h == &code("P03")
    ));
}

#[tokio::test]
async fn bad_chunk_frames_are_refused() {
    let node = hierarchy();
    let not_a_file = deliver(
        &node,
        "S01",
        &probe("S01", "PRI", Priority::Low),
        Some((0, vec![1])),
    );
    assert_eq!(
        not_a_file.unwrap_err(),
        "a chunk frame must carry a file package"
    );
    let back = deliver(
        &node,
        "P03",
        &job("P03", "S04", Priority::Low, file_payload(1)),
        Some((0, vec![1])),
    );
    assert_eq!(back.unwrap_err(), "site S04 routes back to P03");
}

/// BUG (despooler.rs `delivery_for`, the `Route::Hop(h) => Forward(h)` arm):
/// a file package frame without a chunk is refused only when it is for
/// this site; for a site beyond it is forwarded, queued with no chunks, and
/// every later `Session::fill` of that hop fails with "chunk 0 of package
/// .. is missing", breaking the link and charging the other jobs on it.
#[tokio::test]
async fn a_file_without_chunks_is_refused_on_its_way_too() {
    let node = hierarchy();
    let j = job("S01", "S02", Priority::Low, file_payload(2));
    let err = deliver(&node, "S01", &j, None).unwrap_err();
    assert_eq!(err, "a file package must arrive as chunks");
}

/// What the bug above does to the link it is forwarded on.
#[tokio::test]
async fn a_forwarded_chunkless_file_does_not_break_the_link() {
    let node = hierarchy();
    let s02 = code("S02");
    let j = job("S01", "S02", Priority::Low, file_payload(2));
    if let Ok(d) = deliver(&node, "S01", &j, None) {
        node.ctx.store.despool(&[(j, d)]).unwrap();
    }
    node.ctx
        .store
        .enqueue(&s02, &probe("PRI", "S02", Priority::High))
        .unwrap();
    let link = std::sync::Arc::new(crate::links::Link::new(s02.clone()));
    let mut s = crate::sender::Session::new(&Address::new(s02, "127.0.0.1:7102".into()));
    let mut stream = FakeStream::default();
    let filled = s.fill(&node.ctx, &link, &mut stream).await;
    assert!(filled.is_ok(), "{filled:?}");
}

/// The link proves who the neighbour is; a job's claimed source must lie on
/// that neighbour's side, or a child could speak for the parent or for a
/// sibling's subtree.
#[tokio::test]
async fn a_job_must_come_from_behind_the_link_it_arrived_on() {
    let node = hierarchy();
    let from = |link: &str, source: &str, p: Payload| {
        deliver(&node, link, &job(source, "PRI", Priority::High, p), None)
    };
    // Its own, and from below it (known or not yet reported).
    assert!(from("S01", "S01", status("S01")).is_ok());
    assert!(from("P03", "S04", status("S04")).is_ok());
    assert!(from("P03", "S77", status("S77")).is_ok());
    // A sibling's site, a site below another child, this site itself.
    let e = from("S01", "S02", status("S02")).unwrap_err();
    assert!(e.contains("lies behind site S02, not behind S01"), "{e}");
    let e = from("S01", "S04", status("S04")).unwrap_err();
    assert!(e.contains("lies behind site P03, not behind S01"), "{e}");
    let e = from("S01", "PRI", Payload::Deinstall(code("PRI"))).unwrap_err();
    assert!(e.contains("claims to come from this site (PRI)"), "{e}");
    // An unknown site from a neighbour that is not a child of this site.
    let e = from("X99", "S77", status("S77")).unwrap_err();
    assert!(e.contains("does not know"), "{e}");
}

/// Below the central site: from the parent comes anything outside this
/// site's subtree, never a site of the subtree (a forged Deinstall "from"
/// the parent through a child's link is refused the same way).
#[tokio::test]
async fn a_child_primary_takes_from_its_parent_only_what_lies_above_it() {
    let node = primary_below("P03", "PRI");
    put_site(&node.ctx, "S04", Some("P03"), SiteKind::Secondary);
    let from = |link: &str, source: &str, dest: &str, p: Payload| {
        deliver(&node, link, &job(source, dest, Priority::High, p), None)
    };
    assert!(from("PRI", "PRI", "P03", Payload::Deinstall(code("P03"))).is_ok());
    assert!(from("PRI", "S01", "P03", status("S01")).is_ok());
    let e = from("S04", "PRI", "P03", Payload::Deinstall(code("P03"))).unwrap_err();
    assert!(e.contains("lies behind site PRI, not behind S04"), "{e}");
    let e = from("PRI", "S04", "P03", status("S04")).unwrap_err();
    assert!(e.contains("lies behind site S04, not behind PRI"), "{e}");
}
