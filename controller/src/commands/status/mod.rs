//! What a node reports about itself: `status` (its role, components and
//! links) and `status-messages` (the messages stored at its site).

pub mod messages;
pub mod node;
