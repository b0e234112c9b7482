//! Against the real bbolt: Debian's go.etcd.io/bbolt v1.3.6 (golang-github-coreos-bbolt-dev, the
//! bbolt line etcd 3.4 and 3.5 use) driven by a small Go program,
//! `host/storage/tests/fixtures/bbolt/bbolt_tool.go`. bbolt checks and dumps the files our writer
//! makes, writes to them, and writes files with everything our reader must understand (nested,
//! inline and empty buckets, overflow values, a freelist with pages on it, NoFreelistSync).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::super::{DEFAULT_PAGE_SIZE, Reader, Value};
use super::{Buckets, Rng, dump, dump_of, pairs, write};

const BBOLT_SRC: &str = "/usr/share/gocode/src/go.etcd.io/bbolt";

/// Builds the tool into `dir`. The test needs Go and bbolt's source: it fails (not skips) without
/// them, as the etcd comparisons do without etcd.
fn build_tool(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bbolt/bbolt_tool.go");
    assert!(
        Path::new(BBOLT_SRC).is_dir(),
        "{BBOLT_SRC} is missing: install Debian's golang-go and golang-github-coreos-bbolt-dev (scripts/test does)"
    );
    let out = dir.join("bbolt_tool");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOFLAGS", "")
        .status()
        .unwrap_or_else(|e| panic!("running go ({e}): install Debian's golang-go (scripts/test does)"));
    assert!(status.success(), "go build {} failed", src.display());
    out
}

/// Runs the tool; its stdout, or a panic with its stderr.
fn tool(bin: &Path, args: &[&str], file: &Path) -> String {
    let mut cmd = Command::new(bin);
    cmd.arg(args[0]).arg(file).args(&args[1..]);
    let out = cmd.output().expect("run bbolt_tool");
    assert!(
        out.status.success(),
        "bbolt_tool {args:?} {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn reader(path: &Path) -> Reader {
    Reader::open(std::fs::File::open(path).expect("open")).expect("reader")
}

#[test]
fn bbolt_real_bbolt_reads_checks_and_writes_our_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = build_tool(dir.path());
    let mut rng = Rng(21);
    let mut buckets: Buckets = vec![
        (b"many".to_vec(), pairs(&mut rng, 30_000, |r| (r.next() % 100) as usize)),
        (b"empty".to_vec(), vec![]),
        (b"inline".to_vec(), vec![(b"a".to_vec(), b"b".to_vec())]),
        (
            b"large".to_vec(),
            vec![(b"a".to_vec(), rng.bytes(100_000)), (b"b".to_vec(), rng.bytes(10)), (b"c".to_vec(), rng.bytes(9000))],
        ),
        (b"branch-overflow".to_vec(), (0..40u8).map(|i| (vec![i; 20_000], vec![i])).collect()),
    ];
    buckets.extend((0..200).map(|i| (format!("b{:03}", 199 - i).into_bytes(), pairs(&mut rng, i, |_| 8))));
    for page_size in [DEFAULT_PAGE_SIZE, 1024, 16384] {
        let path = dir.path().join(format!("ours-{page_size}.db"));
        write(&path, page_size, &buckets);
        tool(&bin, &["check"], &path);
        assert_eq!(tool(&bin, &["dump"], &path), dump_of(&buckets), "bbolt reads what we wrote ({page_size})");
        // bbolt writes on top of our file (rebalancing our full pages), with and without a stored
        // freelist, and checks it; we read what it wrote.
        for opts in [&[][..], &["nofreelistsync"][..]] {
            let copy = dir.path().join("copy.db");
            std::fs::copy(&path, &copy).expect("copy");
            let mut args = vec!["modify"];
            args.extend_from_slice(opts);
            tool(&bin, &args, &copy);
            let r = reader(&copy);
            r.check().expect("our check of bbolt's write");
            assert_eq!(dump(&r).expect("dump"), tool(&bin, &["dump"], &copy));
        }
        std::fs::remove_file(&path).expect("rm");
    }
}

#[test]
fn bbolt_real_bbolt_files_read_by_us() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = build_tool(dir.path());
    for (page_size, opts) in [("4096", &[][..]), ("1024", &[][..]), ("4096", &["nofreelistsync"][..])] {
        let path = dir.path().join("theirs.db");
        let mut args = vec!["gen", page_size];
        args.extend_from_slice(opts);
        tool(&bin, &args, &path);
        let r = reader(&path);
        assert_eq!(r.info().page_size.to_string(), page_size);
        assert_eq!(r.info().freelist.is_none(), !opts.is_empty());
        let summary = r.check().expect("check");
        if opts.is_empty() {
            assert!(summary.free_pages > 0, "the second transaction freed pages");
        }
        let ours = dump(&r).expect("dump");
        assert_eq!(ours, tool(&bin, &["dump"], &path), "page size {page_size} {opts:?}");
        assert!(ours.contains("bucket 1 696e6e65722d696e6c696e65 0\n"), "the nested inline bucket");
        assert!(ours.contains("bucket 0 736d616c6c 42\n"), "the small bucket's sequence");
        // Lookups through bbolt's branch pages, nested buckets and an inline one.
        let nested = r.bucket(b"nested").expect("lookup").expect("bucket");
        let inline = r.get(&nested, b"inner-inline").expect("get").and_then(Value::into_bucket).expect("bucket");
        assert_eq!(inline.root_page(), None);
        assert_eq!(r.get(&inline, b"x").expect("get"), Some(Value::Data(b"y".to_vec())));
        let big = r.bucket(b"big").expect("lookup").expect("bucket");
        let mut found = 0;
        for e in r.entries(&big).step_by(101) {
            let e = e.expect("entry");
            assert_eq!(r.get(&big, &e.key).expect("get"), Some(e.value));
            found += 1;
        }
        assert!(found > 100);
        std::fs::remove_file(&path).expect("rm");
    }
}
