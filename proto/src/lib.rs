//! The gRPC wire contract of the SMS site hierarchy.
//!
//! Generated from `proto/protos/sms/v1/*.proto`, plus [`convert`]: wire <->
//! domain conversions beside the contract they convert. Only the gRPC edge
//! of the node and the controller use these types; components work on the
//! domain types of `sms-types`.

/// wire <-> domain conversions.
pub mod convert;
/// wire <-> domain conversions of the management point service.
pub mod convert_mp;
/// wire <-> domain conversions of status filter rules.
pub mod convert_rules;

/// Version 1 of the contract.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("sms.v1");
}

/// Encoded `FileDescriptorSet` of every service, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/sms_descriptor.bin"));

#[cfg(test)]
mod convert_tests;
