//! `etcdctl snapshot status` of a bbolt file (etcdctl 3.4's `dbStatus`): the file checked, a
//! CRC-32C over every bucket's name and pairs, the last revision in `key`, the pairs counted,
//! and the size bbolt reports.

use std::path::Path;

use wasmraft_guest_sdk::crc32c::Crc32c;
use wasmraft_kv_guest::etcd_backend as kv;
use wasmraft_storage::bbolt::{Reader, Value};

use crate::BackupError;

/// What etcdctl prints for a snapshot file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStatus {
    pub hash: u32,
    pub revision: i64,
    pub total_key: u64,
    pub total_size: u64,
}

pub fn status(path: &Path) -> Result<FileStatus, BackupError> {
    let reader = Reader::open(std::fs::File::open(path)?)?;
    reader.check()?;
    let mut crc = Crc32c::new();
    let (mut revision, mut total_key) = (0i64, 0u64);
    for bucket in reader.entries(&reader.root()) {
        let bucket = bucket?;
        let Value::Bucket(b) = &bucket.value else {
            return Err(BackupError::Bucket {
                bucket: String::from_utf8_lossy(&bucket.key).into_owned(),
                reason: "cannot get hash of bucket: not a bucket".into(),
            });
        };
        crc.update(&bucket.key);
        let is_key = bucket.key == kv::KEY_BUCKET;
        for pair in reader.entries(b) {
            let pair = pair?;
            crc.update(&pair.key);
            if let Value::Data(v) = &pair.value {
                crc.update(v);
            }
            if is_key && let Some(main) = pair.key.get(..8) {
                // etcd's bytesToRev: the main revision, big-endian.
                revision = i64::from_be_bytes(main.try_into().unwrap_or_default());
            }
            total_key += 1;
        }
    }
    Ok(FileStatus { hash: crc.sum(), revision, total_key, total_size: reader.info().size() })
}
