//! The one mapping from the site's refusals to gRPC statuses.

use sms_site::error::Refused;
use tonic::Status;

/// A site refusal as a gRPC status (the message is the operator's).
pub fn status(e: Refused) -> Status {
    match e {
        Refused::Invalid(m) => Status::invalid_argument(m),
        Refused::NotFound(m) => Status::not_found(m),
        Refused::Exists(m) => Status::already_exists(m),
        Refused::Precondition(m) => Status::failed_precondition(m),
        Refused::Unreachable(m) => Status::unavailable(m),
        Refused::Denied(m) => Status::permission_denied(m),
        Refused::Internal(m) => Status::internal(m),
    }
}

/// For calls about a child site by name: a name that is not a child here is
/// "not found" rather than "invalid" (`delete-site`, `upgrade-site`).
pub fn status_for_child(e: Refused) -> Status {
    match e {
        Refused::Invalid(m) => Status::not_found(m),
        other => status(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn every_refusal_has_its_code_and_keeps_its_message() {
        let cases = [
            (Refused::Invalid("a".into()), Code::InvalidArgument),
            (Refused::NotFound("b".into()), Code::NotFound),
            (Refused::Exists("c".into()), Code::AlreadyExists),
            (Refused::Precondition("d".into()), Code::FailedPrecondition),
            (Refused::Unreachable("e".into()), Code::Unavailable),
            (Refused::Denied("f".into()), Code::PermissionDenied),
            (Refused::Internal("g".into()), Code::Internal),
        ];
        for (r, code) in cases {
            let msg = r.to_string();
            let s = status(r);
            assert_eq!(s.code(), code);
            assert_eq!(s.message(), msg);
        }
    }

    #[test]
    fn a_child_named_wrongly_is_not_found() {
        assert_eq!(
            status_for_child(Refused::Invalid("x".into())).code(),
            Code::NotFound
        );
        assert_eq!(
            status_for_child(Refused::Exists("x".into())).code(),
            Code::AlreadyExists
        );
    }
}
