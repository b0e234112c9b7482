//! Power-loss and disk-fault trials for real member processes: each member's data dir is on its
//! own lazy file system (tests/lazyfs, a child process), where nothing written survives a power
//! cut unless it was fsynced (and a new name, unless its directory was).
//!
//! A cut is three steps, in this order: the disk drops everything unsynced and answers EIO from
//! then on (the instant of the cut), the member is SIGKILLed, the power comes back. The member is
//! then restarted on what the disk kept.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions};
use wasmraft_lazyfs::client::LazyFs;

use crate::{Cluster, ClusterConfig};

/// A cluster whose members' data dirs are on lazy file systems (`disks[i]` is member i's).
pub struct PowerCluster {
    pub cluster: Cluster,
    pub disks: Vec<LazyFs>,
    // Dropped after the cluster (fields drop in order): members first, then their disks.
    _roots: Vec<tempfile::TempDir>,
}

impl PowerCluster {
    /// Mounts one lazy file system per member and starts the cluster on them.
    pub fn start(config: ClusterConfig) -> PowerCluster {
        let bin = wasmraft_lazyfs::client::binary().unwrap_or_else(|e| panic!("{e}"));
        let mut roots = Vec::new();
        let mut disks = Vec::new();
        let mut data_dirs = Vec::new();
        for i in 0..config.size {
            let root = tempfile::Builder::new().prefix(&format!("wasmraft-lazyfs-{i}-")).tempdir().expect("temp dir");
            let (backing, mount) = (root.path().join("backing"), root.path().join("mnt"));
            std::fs::create_dir_all(&backing).expect("backing dir");
            std::fs::create_dir_all(&mount).expect("mount point");
            let disk = LazyFs::start(&bin, &backing, &mount, &root.path().join("control.sock"))
                .unwrap_or_else(|e| panic!("member {i}'s disk: {e}"));
            // The data dir is reached through a symlink, which a member's create_dir_all does not
            // follow to a missing target: made here, and durable (its parent synced).
            std::fs::create_dir(mount.join("data")).expect("data dir on the lazy file system");
            std::fs::File::open(&mount).and_then(|d| d.sync_all()).expect("sync the mount's root");
            data_dirs.push(mount.join("data"));
            disks.push(disk);
            roots.push(root);
        }
        let cluster = config.data_dirs(data_dirs).start();
        PowerCluster { cluster, disks, _roots: roots }
    }

    /// Cuts member `i`'s power: its disk keeps only what was synced (with `torn`, part of the
    /// last unsynced write too), the process dies. Returns the bytes a torn cut kept.
    pub fn cut(&mut self, i: usize, torn: Option<u64>) -> u64 {
        let kept = self.disks[i].cut(torn).unwrap_or_else(|e| panic!("cutting member {i}'s power: {e}"));
        // A member that stopped by itself (a disk fault) has nothing left to kill.
        if self.cluster.member_mut(i).is_running() {
            self.cluster.kill9(i);
        }
        self.disks[i].power_on().unwrap_or_else(|e| panic!("member {i}'s power back: {e}"));
        kept
    }

    /// Sends a control command to member `i`'s disk (`fault ...`, `slow ...`, `clear`).
    pub fn disk(&mut self, i: usize, command: &str) -> String {
        self.disks[i].command(command).unwrap_or_else(|e| panic!("member {i}'s disk: {e}"))
    }

    /// The path of member `i`'s data dir inside its disk, for fault patterns (`/data/member/wal`).
    pub fn data_path(&self) -> PathBuf {
        PathBuf::from("/data")
    }
}

/// An acknowledged put: key, value, the revision its response carried.
pub type Acked = (String, String, i64);

async fn connect(endpoints: &[String]) -> Option<Client> {
    let opts = ConnectOptions::new().with_timeout(Duration::from_secs(3)).with_connect_timeout(Duration::from_secs(2));
    Client::connect(endpoints, Some(opts)).await.ok()
}

/// Writers putting unique keys, each acknowledgement recorded.
pub struct Writers {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
    count: Arc<AtomicUsize>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    /// `n` writers on `endpoints`, writer w putting `<prefix>w<w>/<i>`.
    pub fn start(rt: &tokio::runtime::Runtime, endpoints: Vec<String>, prefix: &str, n: usize) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
        let count = Arc::new(AtomicUsize::new(0));
        let handles = (0..n)
            .map(|w| {
                let (stop, acked, count, ends) = (stop.clone(), acked.clone(), count.clone(), endpoints.clone());
                rt.spawn(writer(ends, format!("{prefix}w{w}/"), stop, acked, count))
            })
            .collect();
        Writers { stop, acked, count, handles }
    }

    pub fn acknowledged(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until `n` puts were acknowledged (panics after `timeout`).
    pub fn wait_for(&self, n: usize, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while self.acknowledged() < n {
            assert!(std::time::Instant::now() < deadline, "fewer than {n} puts acknowledged in {timeout:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the writers; returns every acknowledged put.
    pub fn stop(self, rt: &tokio::runtime::Runtime) -> Vec<Acked> {
        self.stop.store(true, Ordering::SeqCst);
        rt.block_on(async {
            for h in self.handles {
                if tokio::time::timeout(Duration::from_secs(20), h).await.is_err() {
                    panic!("a writer did not stop");
                }
            }
        });
        std::mem::take(&mut *self.acked.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

async fn writer(
    endpoints: Vec<String>,
    prefix: String,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
    count: Arc<AtomicUsize>,
) {
    let mut client = None;
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        if client.is_none() {
            client = connect(&endpoints).await;
            if client.is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        }
        let Some(c) = client.as_mut() else { continue };
        let key = format!("{prefix}{i:06}");
        let value = format!("{key}={}", "v".repeat((i % 300) as usize));
        i += 1;
        let put = tokio::time::timeout(Duration::from_secs(5), c.put(key.clone(), value.clone(), None)).await;
        match put {
            Ok(Ok(r)) => {
                let rev = r.header().map(|h| h.revision()).unwrap_or(0);
                acked.lock().unwrap_or_else(|p| p.into_inner()).push((key, value, rev));
                count.fetch_add(1, Ordering::SeqCst);
            }
            _ => {
                client = None;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Every key under `prefix` on `endpoint`, as that member has it (a serializable read: its own
/// state, not the leader's), with the header revision.
pub async fn read_local(endpoint: &str, prefix: &str) -> Result<(BTreeMap<String, (String, i64, i64)>, i64), String> {
    // Thousands of keys after a long run, on 2 shared cores: not the writers' 3 s.
    let opts = ConnectOptions::new().with_timeout(Duration::from_secs(30)).with_connect_timeout(Duration::from_secs(5));
    let mut c =
        Client::connect([endpoint], Some(opts)).await.map_err(|e| format!("cannot connect to {endpoint}: {e}"))?;
    let r = c
        .get(prefix, Some(GetOptions::new().with_prefix().with_serializable()))
        .await
        .map_err(|e| format!("get {prefix} from {endpoint}: {e}"))?;
    let rev = r.header().map_or(0, |h| h.revision());
    let kvs = r
        .kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                (String::from_utf8_lossy(kv.value()).into_owned(), kv.mod_revision(), kv.create_revision()),
            )
        })
        .collect();
    Ok((kvs, rev))
}

/// The checks after a restart, on every member: each acknowledged put is there with its value
/// and revision; the keys under `prefix` (every put a new key, nothing else writing) hold each
/// revision from 2 to the member's current one exactly once — a lost or replayed-twice entry
/// leaves a hole or a duplicate.
pub fn check_members(
    cluster: &Cluster,
    rt: &tokio::runtime::Runtime,
    prefix: &str,
    acked: &[Acked],
) -> Result<i64, String> {
    let mut revision = 0;
    for m in 0..cluster.size() {
        let (present, rev) = rt.block_on(read_local(&cluster.endpoint(m), prefix))?;
        let lost: Vec<String> = acked
            .iter()
            .filter(|(k, v, r)| present.get(k).map(|(pv, pr, _)| (pv, *pr)) != Some((v, *r)))
            .map(|(k, v, r)| format!("{k}: acked {} bytes at {r}, now {:?}", v.len(), present.get(k).map(|p| p.1)))
            .collect();
        if !lost.is_empty() {
            return Err(format!(
                "member {m} lost {} of {} acknowledged puts:\n{}",
                lost.len(),
                acked.len(),
                lost.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
            ));
        }
        let mut revs: Vec<i64> = present.values().map(|(_, r, _)| *r).collect();
        revs.sort_unstable();
        let expected: Vec<i64> = (2..=rev).collect();
        if revs != expected {
            let holes: Vec<i64> =
                expected.iter().filter(|r| revs.binary_search(r).is_err()).take(10).copied().collect();
            return Err(format!(
                "member {m}: revisions not continuous: {} keys for revisions 2..={rev}; missing e.g. {holes:?}",
                revs.len()
            ));
        }
        if present.values().any(|(_, m, c)| m != c) {
            return Err(format!("member {m}: a key written once has mod_revision != create_revision"));
        }
        revision = rev;
    }
    Ok(revision)
}
