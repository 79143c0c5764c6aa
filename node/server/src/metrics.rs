//! `/metrics`: the node's numbers in the Prometheus text format, read at
//! scrape time from what the components already keep (link registry,
//! store, status counts, component states). Nothing below this crate knows
//! the format: the components keep plain atomics (`sms_types::stats`), and
//! a fresh registry with one collector is built per scrape.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use sms_site::Ctx;
use sms_types::stats::HistogramSnapshot;
use sms_types::SiteKind;

/// The Content-Type of what `prometheus-client` writes: the OpenMetrics
/// text format (Prometheus's own text format plus `# EOF` and counters
/// named with `_total`), which Prometheus asks for first.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders every metric of the node.
pub fn render(ctx: &Arc<Ctx>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(NodeMetrics { ctx: ctx.clone() }));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .expect("writing to a String cannot fail");
    out
}

/// One scrape's view of the node.
struct NodeMetrics {
    ctx: Arc<Ctx>,
}

impl std::fmt::Debug for NodeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeMetrics")
    }
}

type Labels = Vec<(&'static str, String)>;

/// Writes one family of samples of `kind` (a counter's name gets `_total`).
fn family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: &[(Labels, f64)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in rows {
        let mut s = m.encode_family(labels)?;
        match kind {
            MetricType::Counter => s.encode_counter::<NoLabelSet, _, u64>(v, None)?,
            _ => s.encode_gauge(v)?,
        }
    }
    Ok(())
}

/// Writes one unlabelled sample.
fn one(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    v: f64,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    match kind {
        MetricType::Counter => m.encode_counter::<NoLabelSet, _, u64>(&v, None),
        _ => m.encode_gauge(&v),
    }
}

fn histogram(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    h: &HistogramSnapshot,
) -> std::fmt::Result {
    enc.encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)
}

impl Collector for NodeMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        use std::sync::atomic::Ordering::Relaxed;
        use MetricType::{Counter, Gauge};
        let ctx = &self.ctx;
        let enc = &mut enc;
        let id = ctx.identity();
        let (site, kind) = match &id {
            Some(i) => (i.site_code.to_string(), i.kind.as_str().to_string()),
            None => (String::new(), "bare".to_string()),
        };
        family(
            enc,
            "sms_node_info",
            "This node: its site code (empty on a bare node), its kind and version.",
            Gauge,
            &[(
                vec![
                    ("site", site),
                    ("kind", kind),
                    ("version", sms_types::SOFTWARE_VERSION.to_string()),
                ],
                1.0,
            )],
        )?;
        let not_ready = crate::health::not_ready(ctx);
        one(
            enc,
            "sms_node_ready",
            "1 while the node serves (its store writes and no component is restarting).",
            Gauge,
            f64::from(u8::from(not_ready.is_empty())),
        )?;

        // The store.
        let store = &ctx.store;
        one(
            enc,
            "sms_store_write_failed",
            "1 while the store cannot write (a full disk); it reopens itself once it can.",
            Gauge,
            f64::from(u8::from(store.write_failure().is_some())),
        )?;
        one(
            enc,
            "sms_store_reopens",
            "Times the store was reopened after a write failure.",
            Counter,
            store.reopen_count() as f64,
        )?;
        one(
            enc,
            "sms_store_commits",
            "Group commits (one flush and fdatasync per batch of callers).",
            Counter,
            store.flush_count() as f64,
        )?;
        histogram(
            enc,
            "sms_store_commit_duration_seconds",
            "How long each group commit took: sled's flush, blob and package file syncs, the log's fdatasync.",
            &store.commit_latency(),
        )?;
        histogram(
            enc,
            "sms_store_commit_batch_callers",
            "Callers released by each group commit.",
            &store.commit_batch_sizes(),
        )?;

        // Links, one series per neighbour.
        let links = ctx.links.links();
        let mut rows: [Vec<(Labels, f64)>; 10] = Default::default();
        let mut states = Vec::new();
        for l in &links {
            let label = || vec![("link", l.to.to_string())];
            let view = sms_site::queries::link_view(ctx, &l.to);
            let values = [
                view.queued_jobs as f64,
                view.failed_jobs as f64,
                l.frames_sent.load(Relaxed) as f64,
                l.frames_acked.load(Relaxed) as f64,
                l.sent.load(Relaxed) as f64,
                l.bytes_sent.load(Relaxed) as f64,
                l.round_trip_us.load(Relaxed) as f64 / 1e6,
                l.refused.load(Relaxed) as f64,
                l.sender_restarts.load(Relaxed) as f64,
                l.chunk_bytes_sent.load(Relaxed) as f64,
            ];
            for (r, v) in rows.iter_mut().zip(values) {
                r.push((label(), v));
            }
            states.push((
                vec![
                    ("link", l.to.to_string()),
                    ("state", view.state.as_str().to_string()),
                ],
                1.0,
            ));
        }
        let [queued, failed, sent, acked, delivered, bytes, rtt, refused, restarts, chunk_bytes] =
            rows;
        family(
            enc,
            "sms_link_queued_jobs",
            "Jobs queued for the link (its outbox).",
            Gauge,
            &queued,
        )?;
        family(
            enc,
            "sms_link_failed_jobs",
            "Jobs that failed on the link for good (retry with `controller retry-jobs`).",
            Gauge,
            &failed,
        )?;
        family(
            enc,
            "sms_link_frames_sent",
            "Frames (jobs or package chunks) handed to the link's stream, resends included.",
            Counter,
            &sent,
        )?;
        family(
            enc,
            "sms_link_frames_acknowledged",
            "Frames the receiver acknowledged (durable there).",
            Counter,
            &acked,
        )?;
        family(
            enc,
            "sms_link_jobs_delivered",
            "Jobs taken out of the outbox once the receiver had all of them.",
            Counter,
            &delivered,
        )?;
        family(
            enc,
            "sms_link_sent_bytes",
            "Payload bytes handed to the link's stream, resends included.",
            Counter,
            &bytes,
        )?;
        family(
            enc,
            "sms_link_package_chunk_bytes",
            "Package chunk bytes handed to the link's stream, resends included.",
            Counter,
            &chunk_bytes,
        )?;
        family(
            enc,
            "sms_link_round_trip_seconds",
            "Smoothed time from a frame going out to its acknowledgement (0: none yet).",
            Gauge,
            &rtt,
        )?;
        family(
            enc,
            "sms_link_refused_frames",
            "Frames this node's despooler refused from the neighbour.",
            Counter,
            &refused,
        )?;
        family(
            enc,
            "sms_link_sender_restarts",
            "Times the link's sender failed and was started again.",
            Counter,
            &restarts,
        )?;
        family(
            enc,
            "sms_link_state",
            "The link's state (1 on the series of the current state).",
            Gauge,
            &states,
        )?;

        // What came in.
        let d = &ctx.links.despooled;
        histogram(
            enc,
            "sms_despool_batch_frames",
            "Frames per batch the despooler stored and acknowledged at once (count: batches; sum: frames).",
            &d.batch_frames.snapshot(),
        )?;
        one(
            enc,
            "sms_despool_frames_stored",
            "Frames the despooler stored (not duplicates or refusals).",
            Counter,
            d.stored.load(Relaxed) as f64,
        )?;
        one(
            enc,
            "sms_despool_duplicates",
            "Resent frames the despooler recognised and did not deliver again.",
            Counter,
            ctx.links.duplicates.load(Relaxed) as f64,
        )?;
        one(
            enc,
            "sms_connections_refused",
            "Connections closed at once: over the node's connection limits.",
            Counter,
            ctx.links.connections_refused.load(Relaxed) as f64,
        )?;
        one(
            enc,
            "sms_calls_refused",
            "Calls answered RESOURCE_EXHAUSTED: their connection was over its call rate.",
            Counter,
            ctx.links.calls_refused.load(Relaxed) as f64,
        )?;

        // Status messages.
        let by_sev: Vec<(Labels, f64)> = ctx
            .status
            .stored_by_severity()
            .iter()
            .map(|(s, n)| (vec![("severity", s.as_str().to_string())], *n as f64))
            .collect();
        family(
            enc,
            "sms_status_messages_stored",
            "Status messages stored at this site (its own and its descendants'), by severity.",
            Counter,
            &by_sev,
        )?;
        let calls = ctx.status.actions.counts();
        let by_result: Vec<(Labels, f64)> = [
            ("done", calls.done),
            ("failed", calls.failed),
            ("dropped", calls.dropped),
        ]
        .iter()
        .map(|(r, n)| (vec![("result", r.to_string())], *n as f64))
        .collect();
        family(
            enc,
            "sms_status_rule_calls",
            "Webhook and program calls made by status filter rules, by result (dropped: the queue was full).",
            Counter,
            &by_result,
        )?;

        // Components.
        let comps = ctx.components.list();
        let up: Vec<(Labels, f64)> = comps
            .iter()
            .map(|c| {
                (
                    vec![("component", c.name.clone())],
                    f64::from(u8::from(c.state == "running")),
                )
            })
            .collect();
        family(
            enc,
            "sms_component_up",
            "1 while the component runs, 0 while it is stopped or restarting.",
            Gauge,
            &up,
        )?;
        let restarts: Vec<(Labels, f64)> = ctx
            .components
            .restarts()
            .into_iter()
            .map(|(n, r)| (vec![("component", n)], r as f64))
            .collect();
        family(
            enc,
            "sms_component_restarts",
            "Times a supervised component failed and was started again.",
            Counter,
            &restarts,
        )?;

        // The Hierarchy Manager's site list (primaries only).
        if id.as_ref().is_some_and(|i| i.kind == SiteKind::Primary) {
            if let Ok(rows) = sms_site::queries::sites(ctx) {
                let mut by_status: std::collections::BTreeMap<String, u64> = [
                    "Pending",
                    "Active",
                    "Failed",
                    "Deleting",
                    "Upgrading",
                    "Stale",
                ]
                .iter()
                .map(|s| (s.to_string(), 0))
                .collect();
                let mut ages = Vec::new();
                for r in &rows {
                    *by_status.entry(r.shown_status()).or_default() += 1;
                    if let Some(age) = r.report_age_ms {
                        ages.push((
                            vec![("site", r.record.site_code.to_string())],
                            age as f64 / 1000.0,
                        ));
                    }
                }
                let by_status: Vec<(Labels, f64)> = by_status
                    .into_iter()
                    .map(|(s, n)| (vec![("status", s)], n as f64))
                    .collect();
                family(
                    enc,
                    "sms_sites",
                    "Sites in this site's list by status (Stale: Active but silent too long).",
                    Gauge,
                    &by_status,
                )?;
                family(
                    enc,
                    "sms_site_last_report_age_seconds",
                    "Seconds since each site below last reported here (a CT2 or a status message).",
                    Gauge,
                    &ages,
                )?;
            }
        }
        Ok(())
    }
}
