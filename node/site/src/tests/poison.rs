//! A job that can never go on a link fails alone; after a stream died with
//! frames out and nothing acknowledged, the next session sends one frame at
//! a time so a job that kills streams is alone in flight when it does.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use uuid::Uuid;

use sms_types::link::{LinkError, LinkEvent};
use sms_types::*;

use super::support::*;
use crate::links::Link;
use crate::ports::LinkStream;
use crate::sender::Session;

/// A stream that refuses one job as too large and takes the rest.
struct Picky {
    poison: Uuid,
    sent: Mutex<Vec<Uuid>>,
}

#[async_trait]
impl LinkStream for Picky {
    async fn send(&self, job: &Job, _chunk: Option<Chunk>) -> Result<(), LinkError> {
        if job.id == self.poison {
            return Err(LinkError::TooLarge("its frame is 5000000 bytes".into()));
        }
        self.sent.lock().unwrap().push(job.id);
        Ok(())
    }
    async fn next(&mut self) -> Result<LinkEvent, LinkError> {
        std::future::pending().await
    }
}

fn setup() -> (Node, Arc<Link>, Address) {
    let node = central("PRI");
    put_site(&node.ctx, "S01", Some("PRI"), SiteKind::Secondary);
    let addr = Address::new(code("S01"), "127.0.0.1:7101".into());
    (node, Arc::new(Link::new(code("S01"))), addr)
}

#[tokio::test]
async fn a_job_too_large_for_the_link_fails_alone_and_the_rest_go() {
    let (node, link, addr) = setup();
    let jobs: Vec<Job> = (0..5)
        .map(|_| {
            let j = probe("PRI", "S01", Priority::Medium);
            node.ctx.store.enqueue(&code("S01"), &j).unwrap();
            j
        })
        .collect();
    let mut stream = Picky {
        poison: jobs[2].id,
        sent: Mutex::new(vec![]),
    };
    let mut s = Session::new(&addr);
    s.fill(&node.ctx, &link, &mut stream).await.unwrap();
    let sent = stream.sent.lock().unwrap().clone();
    assert_eq!(
        sent,
        vec![jobs[0].id, jobs[1].id, jobs[3].id, jobs[4].id],
        "the others went on the same stream"
    );
    let failed = node.ctx.store.failed_jobs(&code("S01")).unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].job.id, jobs[2].id);
    assert!(
        failed[0].reason.contains("cannot be sent") && failed[0].reason.contains("5000000"),
        "{}",
        failed[0].reason
    );
}

#[tokio::test]
async fn a_cautious_session_has_one_frame_out_until_something_is_acknowledged() {
    let (node, link, addr) = setup();
    for _ in 0..10 {
        let j = probe("PRI", "S01", Priority::Medium);
        node.ctx.store.enqueue(&code("S01"), &j).unwrap();
    }
    let mut s = Session::new(&addr);
    s.cautious = true;
    let mut stream = FakeStream::default();
    s.fill(&node.ctx, &link, &mut stream).await.unwrap();
    assert_eq!(stream.sent_ids().len(), 1, "one frame while cautious");

    // An ordinary session fills its window.
    let mut s = Session::new(&addr);
    let mut stream = FakeStream::default();
    s.fill(&node.ctx, &link, &mut stream).await.unwrap();
    assert_eq!(stream.sent_ids().len(), 10);
}
