//! A snapshot real etcd 3.4.23 wrote (`etcdctl snapshot save`, sha256 trailer included),
//! recorded with `etcdctl snapshot status -w json` of it by
//! `host/storage/tests/fixtures/bbolt/make-etcd-3.4.23.sh`. Our reader must see what etcdctl saw:
//! its hash (CRC-32C over every top-level bucket's name, then each of its keys and values, in
//! order), its key count and its size.

use std::path::Path;

use super::super::{Reader, Value};

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

#[test]
fn bbolt_reads_a_real_etcd_snapshot_as_etcdctl_status_does() {
    let status = std::fs::read_to_string(fixture("etcd-3.4.23.status.json")).expect("status");
    let r = Reader::open(std::fs::File::open(fixture("etcd-3.4.23.db")).expect("fixture")).expect("reader");
    let info = r.info();
    assert_eq!(info.size(), json_u64(&status, "totalSize"));
    assert_eq!(info.file_len, info.size() + 32, "etcdctl's sha256 trailer follows the database");
    assert_eq!(info.page_size, 4096);
    r.check().expect("the whole file checks");

    let (mut hash, mut keys, mut names) = (Crc32c(0), 0u64, Vec::new());
    for bucket in r.entries(&r.root()) {
        let bucket = bucket.expect("bucket");
        let Value::Bucket(b) = &bucket.value else { panic!("a top-level key that is not a bucket") };
        hash.update(&bucket.key);
        names.push(String::from_utf8_lossy(&bucket.key).into_owned());
        for pair in r.entries(b) {
            let pair = pair.expect("pair");
            hash.update(&pair.key);
            hash.update(pair.value.data().expect("etcd nests no buckets"));
            keys += 1;
        }
    }
    assert_eq!(u64::from(hash.0), json_u64(&status, "hash"));
    assert_eq!(keys, json_u64(&status, "totalKey"));
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
