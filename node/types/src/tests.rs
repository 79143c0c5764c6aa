//! Unit tests of the domain types.
