//! The pure rules of a guest deployment: the limits a deployment record sets, which limits a
//! deployment may ask for, and whether a module may replace the active guest.
//!
//! Each is a function of the record, the module's `info()` and its hash alone, so the member
//! that receives a deploy request and every member applying the deploy entry decide alike. How
//! records, modules and the deployment history are stored, and how a swap goes through the
//! log, are the host's.

use wasmraft_proto::wasmraft::v1 as pb;

use crate::call::GuestInfo;
use crate::limits::{DEFAULT_STACK_BYTES, GuestLimits, LimitError, MAX_MEMORY_BYTES, MIN_MEMORY_BYTES};

/// The limits a deployment record sets. A record from before the stack limit was recorded has
/// none (0): its guest ran with the default, and still does, on every member alike.
pub fn limits_of(r: &pb::GuestDeployment) -> GuestLimits {
    let stack_bytes = if r.stack_bytes == 0 { DEFAULT_STACK_BYTES } else { r.stack_bytes };
    GuestLimits { fuel_per_entry: r.fuel_per_entry, memory_bytes: r.memory_bytes, stack_bytes }
}

/// The limits a deploy asking for `fuel`, `memory` and `stack` gets: 0 keeps the active
/// deployment's value (the default for the first deployment).
pub fn requested_limits(active: Option<&pb::GuestDeployment>, fuel: u64, memory: u64, stack: u64) -> GuestLimits {
    let current = active.map(limits_of).unwrap_or_default();
    let or_current = |asked: u64, current: u64| if asked == 0 { current } else { asked };
    GuestLimits {
        fuel_per_entry: or_current(fuel, current.fuel_per_entry),
        memory_bytes: or_current(memory, current.memory_bytes),
        stack_bytes: or_current(stack, current.stack_bytes),
    }
}

/// Whether a deployment may set `limits`. Checked before a module is loaded with them: each
/// stack limit is an engine of its own, so a forged one must not make one.
pub fn check_limits(limits: GuestLimits) -> Result<(), LimitError> {
    if !(MIN_MEMORY_BYTES..=MAX_MEMORY_BYTES).contains(&limits.memory_bytes) {
        return Err(LimitError::Memory(limits.memory_bytes));
    }
    if limits.fuel_per_entry == 0 {
        return Err(LimitError::Fuel);
    }
    crate::limits::check_stack_bytes(limits.stack_bytes)
}

/// Why a module may not replace the active guest. The text is what the client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SwapRefused {
    #[error(transparent)]
    Limits(#[from] LimitError),
    #[error("wasmraft: guest {name} {version} (sha256 {hash}) is already active with these limits")]
    AlreadyActive { name: String, version: String, hash: String },
    #[error(
        "wasmraft: the module is guest {new:?}, the active guest is {active:?}; replacing one guest by another needs --force"
    )]
    OtherGuest { new: String, active: String },
    #[error("wasmraft: module {hash} was never active; deploy it instead of rolling back to it")]
    NeverActive { hash: String },
    #[error("wasmraft: guest version {0:?} is not a semantic version (MAJOR.MINOR.PATCH); deploy with --force")]
    NotSemver(String),
    #[error(
        "wasmraft: version {new} is not higher than the active version {active}; roll back to a stored module, or deploy with --force"
    )]
    NotHigher { new: String, active: String },
}

/// Whether `new` (a module hashing to `new_hash`) may replace `active` under `mode`.
pub fn check_transition(
    active: Option<&pb::GuestDeployment>,
    new: &GuestInfo,
    new_hash: &[u8; 32],
    new_limits: GuestLimits,
    mode: pb::guest_deploy::Mode,
    force: bool,
    was_active_before: bool,
) -> Result<(), SwapRefused> {
    use pb::guest_deploy::Mode;
    check_limits(new_limits)?;
    let Some(active) = active else { return Ok(()) };
    if mode == Mode::Initial {
        // Applied as a no-op when a guest is active: nothing to check.
        return Ok(());
    }
    if active.sha256 == new_hash && limits_of(active) == new_limits {
        return Err(SwapRefused::AlreadyActive {
            name: active.name.clone(),
            version: active.version.clone(),
            hash: hex::encode(new_hash),
        });
    }
    if new.name != active.name && !force {
        return Err(SwapRefused::OtherGuest { new: new.name.clone(), active: active.name.clone() });
    }
    match mode {
        Mode::Rollback if !was_active_before => Err(SwapRefused::NeverActive { hash: hex::encode(new_hash) }),
        Mode::Upgrade if !force && active.sha256 != new_hash => {
            let parse = |v: &str| semver::Version::parse(v).map_err(|_| SwapRefused::NotSemver(v.to_string()));
            let (old, newer) = (parse(&active.version)?, parse(&new.version)?);
            if newer <= old {
                return Err(SwapRefused::NotHigher { new: new.version.clone(), active: active.version.clone() });
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::guest_deploy::Mode;

    fn rec(name: &str, version: &str, hash: u8) -> pb::GuestDeployment {
        pb::GuestDeployment {
            sha256: vec![hash; 32],
            name: name.into(),
            version: version.into(),
            fuel_per_entry: 1000,
            memory_bytes: 1 << 20,
            ..Default::default()
        }
    }

    fn info(name: &str, version: &str) -> GuestInfo {
        GuestInfo { name: name.into(), version: version.into(), apis: vec![] }
    }

    const L: GuestLimits =
        GuestLimits { fuel_per_entry: 1000, memory_bytes: 1 << 20, stack_bytes: DEFAULT_STACK_BYTES };

    /// The refusal's text, as the client sees it.
    fn refused(r: Result<(), SwapRefused>) -> String {
        r.expect_err("refused").to_string()
    }

    #[test]
    fn upgrades_need_a_higher_version_of_the_same_guest() {
        let a = rec("kv", "1.2.0", 1);
        assert_eq!(check_transition(Some(&a), &info("kv", "1.10.0"), &[2; 32], L, Mode::Upgrade, false, false), Ok(()));
        let e = refused(check_transition(Some(&a), &info("kv", "1.1.9"), &[2; 32], L, Mode::Upgrade, false, false));
        assert!(e.contains("not higher than the active version 1.2.0"), "{e}");
        let e = refused(check_transition(Some(&a), &info("kv", "1.2.0"), &[2; 32], L, Mode::Upgrade, false, false));
        assert!(e.contains("not higher"), "{e}");
        let e =
            refused(check_transition(Some(&a), &info("counter", "9.0.0"), &[2; 32], L, Mode::Upgrade, false, false));
        assert!(e.contains("needs --force"), "{e}");
        let e = refused(check_transition(Some(&a), &info("kv", "next"), &[2; 32], L, Mode::Upgrade, false, false));
        assert!(e.contains("not a semantic version"), "{e}");
        // --force lifts the name and version rules.
        assert_eq!(
            check_transition(Some(&a), &info("counter", "0.0.1"), &[2; 32], L, Mode::Upgrade, true, false),
            Ok(())
        );
    }

    #[test]
    fn rollbacks_go_only_to_modules_that_were_active() {
        let a = rec("kv", "2.0.0", 2);
        assert_eq!(check_transition(Some(&a), &info("kv", "1.0.0"), &[1; 32], L, Mode::Rollback, false, true), Ok(()));
        let e = refused(check_transition(Some(&a), &info("kv", "1.0.0"), &[3; 32], L, Mode::Rollback, false, false));
        assert!(e.contains("was never active"), "{e}");
    }

    #[test]
    fn the_same_module_with_the_same_limits_is_refused_and_limits_are_bounded() {
        let a = rec("kv", "1.0.0", 1);
        let e = refused(check_transition(Some(&a), &info("kv", "1.0.0"), &[1; 32], L, Mode::Upgrade, false, false));
        assert!(e.contains("already active"), "{e}");
        // New limits for the active module are a deploy of their own.
        let more = GuestLimits { fuel_per_entry: 5000, ..L };
        assert_eq!(
            check_transition(Some(&a), &info("kv", "1.0.0"), &[1; 32], more, Mode::Upgrade, false, false),
            Ok(())
        );
        let tiny = GuestLimits { memory_bytes: 100, ..L };
        assert!(check_transition(None, &info("kv", "1.0.0"), &[1; 32], tiny, Mode::Initial, false, false).is_err());
        // A new stack limit alone is a deploy too; one off the list is refused.
        let deeper = GuestLimits { stack_bytes: 2 << 20, ..L };
        assert_eq!(
            check_transition(Some(&a), &info("kv", "1.0.0"), &[1; 32], deeper, Mode::Upgrade, false, false),
            Ok(())
        );
        for stack in [0, 1000, 32 << 10, 16 << 20, u64::MAX] {
            let e = check_limits(GuestLimits { stack_bytes: stack, ..L }).unwrap_err().to_string();
            assert!(e.contains("is not a power of two from 65536 to 8388608"), "{e}");
        }
    }

    #[test]
    fn a_record_without_a_stack_limit_has_the_one_it_ran_with() {
        use prost::Message as _;
        let old = rec("kv", "1.0.0", 1);
        assert_eq!(old.stack_bytes, 0, "records written before the field existed");
        assert_eq!(limits_of(&old).stack_bytes, DEFAULT_STACK_BYTES);
        // Decoding bytes an older member wrote: the field is simply absent.
        let bytes = old.encode_to_vec();
        let decoded = pb::GuestDeployment::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(limits_of(&decoded).stack_bytes, DEFAULT_STACK_BYTES);
        // A deploy that names none keeps it; one that names one sets it.
        assert_eq!(requested_limits(Some(&old), 0, 0, 0), limits_of(&old));
        assert_eq!(requested_limits(Some(&old), 0, 0, 1 << 20).stack_bytes, 1 << 20);
        let newer = pb::GuestDeployment { stack_bytes: 128 << 10, ..old };
        assert_eq!(
            requested_limits(Some(&newer), 7, 0, 0),
            GuestLimits { fuel_per_entry: 7, memory_bytes: 1 << 20, stack_bytes: 128 << 10 }
        );
        assert_eq!(requested_limits(None, 0, 0, 0), GuestLimits::default());
    }
}
