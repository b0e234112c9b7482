//! The in-process test member (`wasmraft::harness::TestMember`) as a guest author uses it: a
//! compiled component behind the real stack, driven with blocking calls.

use tonic::Code;
use wasmraft::harness::TestMember;

static COUNTER: &[u8] = include_bytes!(env!("WASMRAFT_COUNTER_GUEST"));
static HOSTILE: &[u8] = include_bytes!(env!("WASMRAFT_HOSTILE_GUEST"));

#[test]
fn a_component_runs_behind_the_real_stack_and_keeps_its_state_across_restarts() {
    let member =
        TestMember::builder(COUNTER).fuel(50_000_000).memory_bytes(16 << 20).start().expect("the member starts");
    assert_eq!(member.info().expect("info").guest_name, "counter");
    assert_eq!(member.propose(b"add 2").expect("add"), b"2");
    assert_eq!(member.propose(b"add 40").expect("add"), b"42");
    assert_eq!(member.query(b"get").expect("get"), b"42");
    let refused = member.propose(b"launch rockets").expect_err("the counter refuses what it does not know");
    assert_eq!(refused.code(), Code::Aborted, "{refused:?}");
    assert!(refused.message().contains("counter"), "the guest's own text: {}", refused.message());

    let status = member.guest_status().expect("status");
    let active = status.active.expect("a deployment");
    assert_eq!(
        (active.fuel_per_entry, active.memory_bytes),
        (50_000_000, 16 << 20),
        "the limits asked for are the deployment's"
    );
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

/// A component with a custom section of `size` bytes appended: the same guest, a bigger module.
fn padded(wasm: &[u8], size: usize) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"padding";
    let payload = size;
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name);
    body.resize(body.len() + payload, 0);
    let mut out = wasm.to_vec();
    out.push(0); // custom section
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

#[test]
fn a_module_far_larger_than_the_request_limit_travels_through_the_log_in_pieces() {
    let member = TestMember::builder(COUNTER).flag("--max-request-bytes=65536").start().expect("the member starts");
    let before = member.guest_status().expect("status").applied_index;
    let big = padded(COUNTER, 3 << 20);
    assert!(big.len() > 3 << 20);
    let d = member.deploy(&big, true).expect("a 3 MiB module deploys past a 64 KiB request limit");
    assert_eq!(d.size, big.len() as u64);
    assert_eq!(d.name, "counter");
    // One entry per 512 KiB piece, then the swap.
    let pieces = big.len().div_ceil(512 << 10) as u64;
    assert_eq!(d.since_index, before + pieces + 1, "the swap follows the module's {pieces} pieces");
    assert_eq!(member.propose(b"add 1").expect("the padded guest runs"), b"1");
    let too_big = member.propose(&vec![b'x'; 65537]).expect_err("client commands keep the limit");
    assert!(too_big.message().contains("request is too large"), "{too_big:?}");
}
