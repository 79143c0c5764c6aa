//! The accounting, kept apart from the processes so that what counts as
//! lost, duplicated or misdelivered, and which failed jobs are explained,
//! is pinned by unit tests rather than discovered in a chaos run.

use std::collections::{BTreeMap, HashMap};

/// What one kind of traffic came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally<K> {
    /// Items whose send the API acknowledged.
    pub acknowledged: usize,
    /// Acknowledged items stored at their destination (once or more).
    pub delivered: usize,
    /// Acknowledged items not stored at their destination.
    pub missing: Vec<K>,
    /// Items stored more than once, in all, with the number of copies. Sends
    /// that were never acknowledged count too: a timed-out call may still
    /// have queued its jobs, and they must not arrive twice either.
    pub duplicated: Vec<(K, usize)>,
    /// Acknowledged items stored at a node that is not their destination.
    pub misdelivered: Vec<(K, String)>,
}

impl<K> Tally<K> {
    pub fn clean(&self) -> bool {
        self.missing.is_empty() && self.duplicated.is_empty() && self.misdelivered.is_empty()
    }
}

/// Compares `sent` (item -> destination node, every acknowledged item) with
/// `seen` (node, item) for every stored copy found anywhere.
pub fn tally<K: Ord + Clone>(sent: &BTreeMap<K, String>, seen: &[(String, K)]) -> Tally<K> {
    let mut copies: BTreeMap<&K, Vec<&str>> = BTreeMap::new();
    for (node, k) in seen {
        copies.entry(k).or_default().push(node);
    }
    let mut t = Tally {
        acknowledged: sent.len(),
        delivered: 0,
        missing: vec![],
        duplicated: vec![],
        misdelivered: vec![],
    };
    for (k, nodes) in &copies {
        if nodes.len() > 1 {
            t.duplicated.push(((*k).clone(), nodes.len()));
        }
        if let Some(dest) = sent.get(*k) {
            for n in nodes.iter().filter(|n| **n != dest) {
                t.misdelivered.push(((*k).clone(), n.to_string()));
            }
        }
    }
    for (k, dest) in sent {
        let at_dest = copies
            .get(k)
            .is_some_and(|nodes| nodes.iter().any(|n| n == dest));
        if at_dest {
            t.delivered += 1;
        } else {
            t.missing.push(k.clone());
        }
    }
    t
}

/// Why a job may be in a failed box after an outage, or None when nothing
/// the chaos did explains it (then it is a finding).
///
/// A sender charges an attempt to its jobs when it cannot connect or the
/// stream breaks; a long enough outage used to exhaust a job's retries that
/// way. That is a known bug being fixed, so such failures are reported
/// under that label rather than hidden or counted as unexplained.
pub fn explain_failure(reason: &str) -> Option<&'static str> {
    const OUTAGE: &[&str] = &[
        "cannot reach",
        "did not answer",
        "did not welcome",
        "stream closed",
        "closed the stream",
        "transport error",
        "connection",
        "broken pipe",
        "keepalive",
        "h2 protocol error",
        "Unavailable",
        "Cancelled",
        "DeadlineExceeded",
        "Unknown:",
    ];
    if OUTAGE.iter().any(|m| reason.contains(m)) {
        Some("KNOWN BUG: connection failure during an outage charged to the job (fix in progress)")
    } else if reason.contains("injected fault") {
        Some("an injected fault")
    } else {
        None
    }
}

/// An acknowledged site control change, as the API answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub target: String,
    /// The site where it was made.
    pub origin: String,
    pub base_serial: u64,
    pub serial: u64,
    /// A site name unique to this change, to find it in the target's history.
    pub name: String,
}

/// What became of an acknowledged change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// The target's CT0 at the change's serial carries it.
    Applied,
    /// The target refused it (stale or invalid); it is in its bad box.
    Refused(String),
    /// Neither: an acknowledged change vanished.
    Lost,
}

/// A bad box entry as the target lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEntry {
    pub base_serial: u64,
    pub origin: String,
    pub reason: String,
}

/// Decides a change's fate from the target's history (serial -> site name)
/// and bad box. A CT1 applies only on top of exactly its base serial, so an
/// applied change is at `serial` and nowhere else; a refused one is the bad
/// box entry from the same origin against the same base serial.
pub fn fate(c: &Change, history: &HashMap<u64, String>, bad: &[BadEntry]) -> Fate {
    if history.get(&c.serial) == Some(&c.name) {
        return Fate::Applied;
    }
    let origin = format!("site {}", c.origin);
    match bad
        .iter()
        .find(|b| b.base_serial == c.base_serial && b.origin.ends_with(&origin))
    {
        Some(b) => Fate::Refused(b.reason.clone()),
        None => Fate::Lost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(items: &[(u32, &str)]) -> BTreeMap<u32, String> {
        items.iter().map(|(k, d)| (*k, d.to_string())).collect()
    }

    fn seen(items: &[(&str, u32)]) -> Vec<(String, u32)> {
        items.iter().map(|(n, k)| (n.to_string(), *k)).collect()
    }

    #[test]
    fn exactly_once_at_the_destination_is_clean() {
        let t = tally(
            &sent(&[(1, "PRI"), (2, "S11")]),
            &seen(&[("PRI", 1), ("S11", 2)]),
        );
        assert!(t.clean(), "{t:?}");
        assert_eq!((t.acknowledged, t.delivered), (2, 2));
    }

    #[test]
    fn missing_duplicated_and_misdelivered_are_told_apart() {
        let t = tally(
            &sent(&[(1, "PRI"), (2, "S11"), (3, "S12")]),
            &seen(&[("PRI", 1), ("PRI", 1), ("S12", 2), ("S01", 9), ("S01", 9)]),
        );
        assert_eq!(t.missing, vec![2, 3]);
        assert_eq!(t.duplicated, vec![(1, 2), (9, 2)], "unacknowledged 9 too");
        assert_eq!(t.misdelivered, vec![(2, "S12".to_string())]);
        assert_eq!(t.delivered, 1);
    }

    #[test]
    fn an_unacknowledged_item_that_arrived_once_is_fine() {
        let t = tally(&sent(&[(1, "PRI")]), &seen(&[("PRI", 1), ("S01", 7)]));
        assert!(t.clean(), "{t:?}");
    }

    #[test]
    fn outage_failures_are_explained_and_refusals_are_not() {
        assert!(explain_failure("cannot reach 127.0.0.1:4: transport error").is_some());
        assert!(explain_failure("stream closed while sending").is_some());
        assert!(explain_failure("Unavailable: connection refused").is_some());
        assert!(explain_failure("refused by the receiver: not a neighbour").is_none());
        assert!(explain_failure("it cannot be sent: frame too large").is_none());
    }

    fn change(origin: &str, base: u64) -> Change {
        Change {
            target: "S11".into(),
            origin: origin.into(),
            base_serial: base,
            serial: base + 1,
            name: format!("chaos {origin} {base}"),
        }
    }

    #[test]
    fn a_change_is_applied_refused_or_lost() {
        let c = change("PRI", 3);
        let mut history = HashMap::from([(4, c.name.clone())]);
        assert_eq!(fate(&c, &history, &[]), Fate::Applied);
        history.insert(4, "someone else's".into());
        let bad = [BadEntry {
            base_serial: 3,
            origin: "an administrator at site PRI".into(),
            reason: "stale".into(),
        }];
        assert_eq!(fate(&c, &history, &bad), Fate::Refused("stale".into()));
        assert_eq!(fate(&change("P01", 3), &history, &bad), Fate::Lost);
        assert_eq!(fate(&change("PRI", 2), &history, &bad), Fate::Lost);
    }
}
