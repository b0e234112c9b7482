//! The in-process test member (`wasmraft::harness::TestMember`) as a guest author uses it: a
//! compiled component behind the real stack, driven with blocking calls.

use tonic::Code;
use wasmraft::harness::TestMember;

static COUNTER: &[u8] = include_bytes!(env!("WASMRAFT_COUNTER_GUEST"));
static HOSTILE: &[u8] = include_bytes!(env!("WASMRAFT_HOSTILE_GUEST"));

#[test]
fn a_component_runs_behind_the_real_stack_and_keeps_its_state_across_restarts() {
    let member = TestMember::builder(COUNTER).fuel(50_000_000).memory_bytes(16 << 20).start().expect("the member starts");
    assert_eq!(member.info().expect("info").guest_name, "counter");
    assert_eq!(member.propose(b"add 2").expect("add"), b"2");
    assert_eq!(member.propose(b"add 40").expect("add"), b"42");
    assert_eq!(member.query(b"get").expect("get"), b"42");
    let refused = member.propose(b"launch rockets").expect_err("the counter refuses what it does not know");
    assert_eq!(refused.code(), Code::Aborted, "{refused:?}");
    assert!(refused.message().contains("counter"), "the guest's own text: {}", refused.message());

    let status = member.guest_status().expect("status");
    let active = status.active.expect("a deployment");
    assert_eq!((active.fuel_per_entry, active.memory_bytes), (50_000_000, 16 << 20), "the limits asked for are the deployment's");
    assert_eq!(status.state_sha256.len(), 64);

    let member = member.restart().expect("the member restarts");
    assert_eq!(member.query(b"get").expect("get"), b"42", "the state survived the restart");

    // A swap through the log, then a restart: the member runs what its state records.
    member.deploy(HOSTILE, false).expect_err("another guest's name needs force");
    let d = member.deploy(HOSTILE, true).expect("forced swap");
    assert_eq!(d.name, "hostile");
    assert_eq!(member.propose(b"ok:a=1").expect("hostile apply"), b"ok");
    let member = member.restart().expect("the member restarts");
    assert_eq!(member.info().expect("info").guest_name, "hostile");
    let back = member.rollback(&hex(&active.sha256)[..12], true).expect("rollback");
    assert_eq!(back.name, "counter");
    assert_eq!(member.query(b"get").expect("get"), b"42");
}

#[test]
fn a_module_that_is_not_a_guest_is_refused_at_start() {
    let err = TestMember::start(b"\0asm\x01\0\0\0".to_vec()).err().expect("a core module is not a component");
    assert!(format!("{err:#}").contains("loading"), "{err:#}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
