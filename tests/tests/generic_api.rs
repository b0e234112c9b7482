//! The generic client API (`wasmraft.v1.Generic`) through the `wasmraft propose|query|info`
//! subcommands, against a real member running the bundled KV guest: the bytes are etcd's own
//! encodings (an `InternalRaftRequest` put, a `RangeRequest`), hand-encoded here, and the result
//! is cross-checked with etcdctl. Also: the size limit, guest errors, exit codes.

use std::process::{Command, Output};

use wasmraft_tests::etcdctl::Etcdctl;
use wasmraft_tests::member::{Flavor, Member, MemberConfig};
use wasmraft_tests::{free_port, wasmraft_bin};

/// A length-delimited protobuf field (field numbers below 16, lengths below 128).
fn ld(field: u8, payload: &[u8]) -> Vec<u8> {
    assert!(field < 16 && payload.len() < 128);
    let mut out = vec![field << 3 | 2, payload.len() as u8];
    out.extend_from_slice(payload);
    out
}

/// `InternalRaftRequest { put: PutRequest { key, value } }` (put is field 4).
fn internal_put(key: &[u8], value: &[u8]) -> Vec<u8> {
    ld(4, &[ld(1, key), ld(2, value)].concat())
}

/// `RangeRequest { key }`.
fn range(key: &[u8]) -> Vec<u8> {
    ld(1, key)
}

fn cli(args: &[&str]) -> Output {
    Command::new(wasmraft_bin()).args(args).env_clear().output().expect("run wasmraft")
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn start() -> Member {
    Member::start_with(MemberConfig::new(Flavor::Wasmraft).name("g1").arg("--max-request-bytes=2048"))
}

#[test]
fn propose_query_and_info_through_the_cli_with_the_kv_guest() {
    let member = start();
    let ep = member.endpoint();
    let dir = tempfile::tempdir().unwrap();

    // info: the bundled KV guest, with its sha256.
    let out = cli(&["info", "--endpoints", &ep]);
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in {text:?}"))
            .to_string()
    };
    assert!(!field("name").is_empty(), "{text}");
    assert!(field("apis").split(',').any(|a| a == "etcd.v3.kv"), "{text}");
    let hash = field("hash");
    assert_eq!(hash.len(), 64, "{text}");
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{text}");

    // propose, DATA as hex: the guest's answer is an encoded PutResponse (header = field 1).
    let put = hex(&internal_put(b"gk", b"gv1"));
    let out = cli(&["propose", "--endpoints", &ep, "--hex", &put, "--output", "hex"]);
    assert!(out.status.success(), "{}", show(&out));
    let answer = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(answer.ends_with('\n') && answer.starts_with("0a"), "{}", show(&out));

    // What the generic API wrote, the etcd API reads.
    let got = Etcdctl::new(ep.clone()).run(&["get", "gk", "--print-value-only"]);
    assert!(got.success(), "{}", got.render());
    assert_eq!(got.stdout.trim(), "gv1");

    // propose from a file.
    let cmd_file = dir.path().join("put.bin");
    std::fs::write(&cmd_file, internal_put(b"gk", b"gv2")).unwrap();
    let out = cli(&["propose", "--endpoints", &ep, "--file", cmd_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", show(&out));

    // query, linearizable, answer written unchanged to a file: a RangeResponse with gk=gv2.
    let q = hex(&range(b"gk"));
    let answer_file = dir.path().join("answer.bin");
    let out = cli(&[
        "query",
        "--endpoints",
        &ep,
        "--consistency",
        "l",
        "--hex",
        &q,
        "--output-file",
        answer_file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(out.stdout.is_empty(), "{}", show(&out));
    let bytes = std::fs::read(&answer_file).unwrap();
    assert!(contains(&bytes, &ld(1, b"gk")) && contains(&bytes, b"gv2"), "{bytes:?}");
    assert!(!contains(&bytes, b"gv1"), "{bytes:?}");

    // query, serializable, printed as (lossy) text.
    let range_file = dir.path().join("range.bin");
    std::fs::write(&range_file, range(b"gk")).unwrap();
    let out = cli(&["query", "--endpoints", &ep, "--consistency", "s", "--file", range_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(contains(&out.stdout, b"gv2"), "{}", show(&out));

    // A key that does not exist: an answer without gk.
    let out = cli(&["query", "--endpoints", &ep, "--hex", &hex(&range(b"nokey")), "--output", "hex"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&hex(b"nokey")), "{}", show(&out));
}

#[test]
fn errors_have_clear_messages_and_exit_codes() {
    let member = start();
    let ep = member.endpoint();
    let dir = tempfile::tempdir().unwrap();

    // Larger than --max-request-bytes (2048): refused before the log, exit 1.
    let big = dir.path().join("big.bin");
    std::fs::write(&big, internal_put(b"big", &[b'x'; 100]).repeat(30)).unwrap();
    assert!(std::fs::metadata(&big).unwrap().len() > 2048);
    let out = cli(&["propose", "--endpoints", &ep, "--file", big.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("InvalidArgument") && err.contains("request is too large"), "{}", show(&out));

    // Bytes the guest cannot make sense of: the guest's refusal, as Aborted with its text.
    let out = cli(&["query", "--endpoints", &ep, "--hex", "ffffffff"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("wasmraft query: Aborted: "), "{}", show(&out));
    assert!(err.trim().len() > "wasmraft query: Aborted: ".len(), "the guest's text: {}", show(&out));
    // The member keeps serving.
    let out = cli(&["query", "--endpoints", &ep, "--hex", &hex(&range(b"x"))]);
    assert!(out.status.success(), "{}", show(&out));

    // Invalid input: exit 3, nothing sent.
    let out = cli(&["propose", "--endpoints", &ep, "--hex", "zz"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid hex"), "{}", show(&out));
    let missing = dir.path().join("missing");
    let out = cli(&["propose", "--endpoints", &ep, "--file", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));

    // Usage errors are clap's (exit 2): no DATA, or DATA and --file together.
    assert_eq!(cli(&["propose", "--endpoints", &ep]).status.code(), Some(2));
    let out = cli(&["propose", "--endpoints", &ep, "--file", missing.to_str().unwrap(), "d"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));

    // Nobody listening: exit 4, naming the endpoint.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let out = cli(&["info", "--endpoints", &dead, "--dial-timeout", "1"]);
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&dead), "{}", show(&out));
    // ...but a later endpoint that answers is used.
    let out = cli(&["info", "--endpoints", &format!("{dead},{ep}")]);
    assert!(out.status.success(), "{}", show(&out));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
