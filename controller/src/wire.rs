//! Typed reads of the values a node sends both as an enum and as a string:
//! the enum when the node set it, the string from older nodes. Commands
//! branch on these, never on display strings.

use sms_proto::convert;
use sms_proto::v1 as pb;
use sms_types::link::{LinkState, NodeRole};
use sms_types::SiteStatus;

/// What the node answering is (None: a value this build does not know).
pub fn role(s: &pb::NodeStatus) -> Option<NodeRole> {
    convert::role_from(s.role_kind, &s.role).ok()
}

/// The state of a link as its sender reports it.
pub fn link_state(l: &pb::LinkState) -> Option<LinkState> {
    convert::link_state_from(l.state_kind, &l.state).ok()
}

/// A site's status in its parent's list.
pub fn site_status(r: &pb::SiteRecord) -> Option<SiteStatus> {
    convert::site_status_from(r.status_kind, r.status_phase, &r.status).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_from_older_nodes_still_read() {
        let s = pb::NodeStatus {
            role: "logon-server".into(),
            ..Default::default()
        };
        assert_eq!(role(&s), Some(NodeRole::LogonServer));
        let l = pb::LinkState {
            state: "severed".into(),
            ..Default::default()
        };
        assert_eq!(link_state(&l), Some(LinkState::Severed));
        let r = pb::SiteRecord {
            status: "Phase 3 Complete".into(),
            ..Default::default()
        };
        assert_eq!(site_status(&r), Some(SiteStatus::Phase(3)));
    }

    #[test]
    fn the_enum_wins_over_the_string() {
        let s = pb::NodeStatus {
            role: "bare".into(),
            role_kind: pb::NodeRole::SiteServer as i32,
            ..Default::default()
        };
        assert_eq!(role(&s), Some(NodeRole::SiteServer));
        let r = pb::SiteRecord {
            status: "nonsense".into(),
            status_kind: pb::SiteStatusKind::Active as i32,
            ..Default::default()
        };
        assert_eq!(site_status(&r), Some(SiteStatus::Active));
    }

    #[test]
    fn unknown_values_read_as_none() {
        let r = pb::SiteRecord {
            status: "Phase 9 Complete".into(),
            ..Default::default()
        };
        assert_eq!(site_status(&r), None);
        let l = pb::LinkState {
            state: "melted".into(),
            ..Default::default()
        };
        assert_eq!(link_state(&l), None);
    }
}
