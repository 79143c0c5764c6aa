//! Unit tests of the site components' logic (in-crate, so they reach
//! `pub(crate)` items), with a temp store and fake ports.
