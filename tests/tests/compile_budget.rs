//! The compile budget (issue 27, part 6) against a real member: "compile bombs" — components
//! whose code would keep Cranelift busy far longer than any guest (150,000 functions, blocks
//! nested 200,000 deep, a function with 40,000 locals, a 3 MiB function) — are refused by
//! `wasmraft guest deploy` within seconds, with a text naming the quantity and its limit,
//! nothing is proposed (the active guest stays), and the member serves reads and writes
//! throughout.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wasmraft_tests::{Cluster, DeployOptions, Flavor};

/// How long a refusal may take: the pre-scan reads at most the 64 MiB deploy limit, and the
/// deploy CLI sends the module first (debug build of the member).
const PROMPT: Duration = Duration::from_secs(20);

/// LEB128 of `n` appended to `out`.
fn leb(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn section(out: &mut Vec<u8>, id: u8, body: &[u8]) {
    out.push(id);
    leb(body.len(), out);
    out.extend_from_slice(body);
}

/// A component holding one core module of `funcs` functions of type [] -> [], each `body`
/// (its locals declaration included). Valid Wasm: only its size makes it a bomb.
fn bomb(funcs: usize, body: &[u8]) -> Vec<u8> {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    section(&mut m, 1, &[0x01, 0x60, 0x00, 0x00]);
    let mut f = Vec::new();
    leb(funcs, &mut f);
    f.extend(std::iter::repeat_n(0u8, funcs));
    section(&mut m, 3, &f);
    let mut code = Vec::new();
    leb(funcs, &mut code);
    for _ in 0..funcs {
        leb(body.len(), &mut code);
        code.extend_from_slice(body);
    }
    section(&mut m, 10, &code);
    // The component: magic, version 0x0d, layer 1, then a core module section (id 1).
    let mut c = b"\0asm\x0d\0\x01\0".to_vec();
    section(&mut c, 1, &m);
    c
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write module");
    p
}

#[test]
fn compile_bombs_are_refused_promptly_and_the_member_keeps_serving() {
    let _one = wasmraft_tests::one_cluster_at_a_time();
    let mut cluster = Cluster::start(Flavor::Wasmraft, 1);
    cluster.wait_leader(Duration::from_secs(30));
    let before = cluster.guest_status().expect("guest status");
    let dir = tempfile::tempdir().expect("temp dir");

    // A body of 32 `i32.const 0; drop` pairs.
    let mut small = vec![0x00];
    for _ in 0..32 {
        small.extend_from_slice(&[0x41, 0x00, 0x1a]);
    }
    small.push(0x0b);
    let mut deep = vec![0x00];
    deep.extend(std::iter::repeat_n([0x02, 0x40], 200_000).flatten());
    deep.extend(std::iter::repeat_n(0x0b, 200_001));
    // One declaration of 40,000 i64 locals: (40000 = 0xc0 0xb8 0x02).
    let locals = vec![0x01, 0xc0, 0xb8, 0x02, 0x7e, 0x0b];
    let mut huge = vec![0x00];
    huge.extend(std::iter::repeat_n([0x41, 0x00, 0x1a], 1 << 20).flatten());
    huge.push(0x0b);
    let cases = [
        ("150,000 functions", bomb(150_000, &small), "the number of functions is 100001; the limit is 100000"),
        (
            "blocks nested 200,000 deep",
            bomb(1, &deep),
            "the block nesting of core module 1, function 0 is 5001; the limit is 5000",
        ),
        (
            "40,000 locals",
            bomb(1, &locals),
            "the number of locals of core module 1, function 0 is 40000; the limit is 10000",
        ),
        (
            "a 3 MiB function",
            bomb(1, &huge),
            "the body of core module 1, function 0 in bytes is 3145730; the limit is 2097152",
        ),
    ];

    // Writes go on while the bombs are deployed; every one must succeed, and none may stall.
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicUsize::new(0));
    let etcdctl = cluster.etcdctl(0);
    let writer = {
        let (stop, writes) = (stop.clone(), writes.clone());
        std::thread::spawn(move || {
            let mut slowest = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let n = writes.load(Ordering::Relaxed);
                let t = Instant::now();
                let out = etcdctl.run(&["put", &format!("k{n}"), "v"]);
                assert!(out.success(), "a put while bombs are deployed: {}", out.render());
                slowest = slowest.max(t.elapsed());
                writes.fetch_add(1, Ordering::Relaxed);
            }
            slowest
        })
    };

    for (what, bytes, text) in &cases {
        let path = write(dir.path(), "bomb.wasm", bytes);
        let t = Instant::now();
        let refused = cluster.deploy_with(&path, &DeployOptions::default());
        let took = t.elapsed();
        let err = match refused {
            Ok(d) => panic!("{what}: deployed: {d:?}"),
            Err(e) => e,
        };
        assert!(err.contains("over the compile budget") && err.contains(text), "{what}: {err}");
        assert!(took < PROMPT, "{what}: refused after {took:?}");
        eprintln!("{what} ({} bytes): refused in {took:?}", bytes.len());
    }
    stop.store(true, Ordering::Relaxed);
    let slowest = writer.join().expect("the writer");
    let n = writes.load(Ordering::Relaxed);
    eprintln!("{n} puts while the bombs were deployed, the slowest {slowest:?}");
    assert!(n > 0, "no put completed while the bombs were deployed");

    // Nothing reached the log: the same guest is active, since the same index.
    let after = cluster.guest_status().expect("guest status");
    assert_eq!(
        after.iter().map(|s| (&s.sha256, s.since_index)).collect::<Vec<_>>(),
        before.iter().map(|s| (&s.sha256, s.since_index)).collect::<Vec<_>>(),
    );
    let got = cluster.etcdctl(0).run(&["get", "k0"]);
    assert!(got.success() && got.render().contains('v'), "{}", got.render());
}
