//! A snapshot real etcd 3.4.23 wrote (`etcdctl snapshot save`, sha256 trailer included),
//! recorded with `etcdctl snapshot status -w json` of it by
//! `host/storage/tests/fixtures/bbolt/make-etcd-3.4.23.sh`. Our reader must see what etcdctl saw:
//! its hash (CRC-32C over every top-level bucket's name, then each of its keys and values, in
//! order), its key count and its size. And the other way: `etcdctl snapshot status` (3.4.23, which
//! opens the file with bbolt) reads files our writer made and reports what our reader computes.

use std::path::Path;

use super::super::{DEFAULT_PAGE_SIZE, Reader, Source, Value};
use super::{Buckets, Rng, pairs, write};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bbolt").join(name)
}

/// CRC-32C (Castagnoli), as Go's `crc32.MakeTable(crc32.Castagnoli)`, updated bytewise.
struct Crc32c(u32);

impl Crc32c {
    fn update(&mut self, bytes: &[u8]) {
        let mut c = !self.0;
        for b in bytes {
            c ^= u32::from(*b);
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ 0x82f6_3b78 } else { c >> 1 };
            }
        }
        self.0 = !c;
    }
}

/// The number after `"field":` in etcdctl's one-line JSON.
fn json_u64(json: &str, field: &str) -> u64 {
    let at = json.find(&format!("\"{field}\":")).unwrap_or_else(|| panic!("{field} in {json}")) + field.len() + 3;
    json[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().expect("a number")
}

/// What `etcdctl snapshot status` computes from a file: (hash, total keys, total size).
fn status_of<S: Source>(r: &Reader<S>) -> (u64, u64, u64) {
    let (mut hash, mut keys) = (Crc32c(0), 0u64);
    for bucket in r.entries(&r.root()) {
        let bucket = bucket.expect("bucket");
        let Value::Bucket(b) = &bucket.value else { panic!("a top-level key that is not a bucket") };
        hash.update(&bucket.key);
        for pair in r.entries(b) {
            let pair = pair.expect("pair");
            hash.update(&pair.key);
            hash.update(pair.value.data().expect("no nested buckets"));
            keys += 1;
        }
    }
    (u64::from(hash.0), keys, r.info().size())
}

#[test]
fn bbolt_etcdctl_snapshot_status_reads_our_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ours.db");
    let mut rng = Rng(31);
    let buckets: Buckets = vec![
        (b"pairs".to_vec(), pairs(&mut rng, 5000, |r| (r.next() % 300) as usize)),
        (b"one".to_vec(), vec![(b"k".to_vec(), 42u64.to_be_bytes().to_vec())]),
        (b"empty".to_vec(), vec![]),
        (b"large".to_vec(), vec![(b"v".to_vec(), rng.bytes(50_000))]),
    ];
    write(&path, DEFAULT_PAGE_SIZE, &buckets);
    let out = std::process::Command::new("etcdctl")
        .args(["snapshot", "status", "-w", "json"])
        .arg(&path)
        .env("ETCDCTL_API", "3")
        .output()
        .expect("etcdctl (Debian's etcd-client 3.4.23; scripts/test installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "etcdctl snapshot status: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    let r = Reader::open(std::fs::File::open(&path).expect("open")).expect("reader");
    let (hash, keys, size) = status_of(&r);
    assert_eq!(json_u64(&stdout, "hash"), hash);
    assert_eq!(json_u64(&stdout, "totalKey"), keys);
    assert_eq!(json_u64(&stdout, "totalSize"), size);
    assert_eq!(keys, 5002);
}

#[test]
fn bbolt_reads_a_real_etcd_snapshot_as_etcdctl_status_does() {
    let status = std::fs::read_to_string(fixture("etcd-3.4.23.status.json")).expect("status");
    let r = Reader::open(std::fs::File::open(fixture("etcd-3.4.23.db")).expect("fixture")).expect("reader");
    let info = r.info();
    assert_eq!(info.size(), json_u64(&status, "totalSize"));
    assert_eq!(info.file_len, info.size() + 32, "etcdctl's sha256 trailer follows the database");
    assert_eq!(info.page_size, 4096);
    r.check().expect("the whole file checks");

    let (hash, keys, _) = status_of(&r);
    assert_eq!(hash, json_u64(&status, "hash"));
    assert_eq!(keys, json_u64(&status, "totalKey"));
    let names: Vec<String> =
        r.entries(&r.root()).map(|b| String::from_utf8_lossy(&b.expect("bucket").key).into_owned()).collect();
    // etcd 3.4's backend buckets, as the file has them (sorted bytewise).
    assert_eq!(
        names,
        ["alarm", "auth", "authRoles", "authUsers", "cluster", "key", "lease", "members", "members_removed", "meta"]
    );
}

#[test]
fn bbolt_crc32c_check_value() {
    let mut c = Crc32c(0);
    c.update(b"123456789");
    assert_eq!(c.0, 0xe306_9283);
}
