//! The controller's commands, one module per noun (a site, a link, a
//! fault, ...) and one function or file per verb. Commands that did the
//! same thing to the same noun share one implementation with the verb as a
//! parameter; how things look is in [`crate::output`].

pub mod console;
pub mod docs;
pub mod domain;
pub mod fault;
pub mod ids;
pub mod jobs;
pub mod link;
pub mod logs;
pub mod mp;
pub mod package;
pub mod probe;
pub mod site;
pub mod site_control;
pub mod status;
pub mod status_rules;
pub mod trust;
pub mod up;
pub mod version;

/// `up` follows the install through this, its path from before the
/// commands were grouped by noun.
pub use site::create as create_secondary;
