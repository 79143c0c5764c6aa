//! `bootstrap::replaceable`: whether a new package may take the slot.

use sms_types::records::{BootstrapRefusal, BootstrapSlot, ReceivedBootstrap};
use sms_types::*;

use super::support::*;
use crate::bootstrap::replaceable;

fn held() -> ReceivedBootstrap {
    let Payload::Bootstrap(pkg) = bootstrap_payload("S01", "PRI") else {
        unreachable!()
    };
    ReceivedBootstrap {
        job_id: uuid::Uuid::now_v7(),
        package: *pkg,
        received_unix_ms: 0,
    }
}

fn slot(installed: bool, existing: bool, state: Option<BootstrapState>) -> BootstrapSlot {
    BootstrapSlot {
        installed,
        existing: existing.then(held),
        state,
    }
}

fn running() -> Option<BootstrapState> {
    Some(BootstrapState::Running { completed_phase: 2 })
}

fn failed() -> Option<BootstrapState> {
    Some(BootstrapState::Failed {
        phase: 3,
        reason: "disk".into(),
    })
}

fn complete() -> Option<BootstrapState> {
    Some(BootstrapState::Complete)
}

const OK: Result<(), BootstrapRefusal> = Ok(());

fn installing() -> Result<(), BootstrapRefusal> {
    Err(BootstrapRefusal::Installing(code("S01")))
}

#[test]
fn an_installed_site_takes_a_package_only_on_a_reinstall() {
    for (existing, state) in [
        (false, None),
        (true, None),
        (true, running()),
        (true, failed()),
        (true, complete()),
    ] {
        assert_eq!(
            replaceable(&slot(true, existing, state.clone()), false),
            Err(BootstrapRefusal::AlreadyInstalled),
            "{existing} {state:?}"
        );
    }
    assert_eq!(replaceable(&slot(true, false, None), true), OK);
}

#[test]
fn an_empty_slot_is_always_free_unless_installed() {
    for state in [None, running(), failed(), complete()] {
        assert_eq!(
            replaceable(&slot(false, false, state.clone()), false),
            OK,
            "{state:?}"
        );
        assert_eq!(
            replaceable(&slot(false, false, state.clone()), true),
            OK,
            "{state:?}"
        );
    }
}

#[test]
fn a_held_package_is_replaced_when_failed_or_finished_on_a_reinstall() {
    // (installed, reinstall, state) → outcome, with a package held.
    let table = [
        (false, false, None, installing()),
        (false, false, running(), installing()),
        (false, false, failed(), OK),
        (false, false, complete(), installing()),
        (false, true, None, OK),
        (false, true, running(), installing()),
        (false, true, failed(), OK),
        (false, true, complete(), OK),
        (true, true, None, OK),
        (true, true, running(), installing()),
        (true, true, failed(), OK),
        (true, true, complete(), OK),
    ];
    for (installed, reinstall, state, want) in table {
        assert_eq!(
            replaceable(&slot(installed, true, state.clone()), reinstall),
            want,
            "installed {installed}, reinstall {reinstall}, {state:?}"
        );
    }
}
