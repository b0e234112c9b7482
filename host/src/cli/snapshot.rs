//! `wasmraft snapshot restore`: etcdctl 3.4's `snapshot restore` for wasmraft — a new data dir
//! from a file `etcdctl snapshot save` (Maintenance.Snapshot) wrote.
//!
//! As etcd's restore, the result is the first member of a *new* cluster: the snapshot's state
//! (the guest keyspace, the stored guest modules and the deployment that was active, so the
//! member starts with the snapshot's guest) with a fresh membership and identity from the flags,
//! and a raft log that starts empty. Each member of the new cluster is restored from the same
//! file with its own `--name`; started, they elect a leader and serve the snapshot's keys.
//! What referred to the old cluster goes: its members and its alarms (alarms name old member
//! ids), and the applied index (the new log starts at 0).
//!
//! The file's sha256 is checked before anything is written (etcd's "expected sha256 ..., got
//! ..."), and its structure while it is installed; a data dir that already exists is refused
//! (etcd's `data-dir "..." exists`), so a restore never overwrites a member.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use redb::Durability;
use sha2::{Digest, Sha256};

use super::{CliError, EXIT_INVALID_INPUT};

/// etcdctl's ExitError: how `snapshot restore` ends when the file or the data dir is refused.
const EXIT_ERROR: u8 = 1;
use crate::config::{parse_initial_cluster, parse_urls, trim_url};
use wasmraft_node::membership::Membership;
use wasmraft_storage::tables::{ALARMS, MEMBERS, META, META_APPLIED_INDEX, META_APPLIED_TERM};
use wasmraft_storage::{Identity, RaftLog, snapshot};

#[derive(Subcommand, Debug, Clone)]
pub enum SnapshotCommand {
    /// Restore a member's data dir from a snapshot file (`etcdctl snapshot save`), as the first
    /// member of a new cluster.
    Restore(RestoreFlags),
}

/// etcdctl 3.4's `snapshot restore` flags and defaults.
#[derive(Args, Debug, Clone)]
pub struct RestoreFlags {
    /// The snapshot file.
    pub file: PathBuf,
    /// Path to the data directory (default: <name>.etcd).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Initial cluster configuration for restore bootstrap.
    #[arg(long, default_value = "default=http://localhost:2380")]
    pub initial_cluster: String,
    /// Initial cluster token for the etcd cluster during restore bootstrap.
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// List of this member's peer URLs to advertise to the rest of the cluster.
    #[arg(long, default_value = "http://localhost:2380")]
    pub initial_advertise_peer_urls: String,
    /// Human-readable name for this member.
    #[arg(long, default_value = "default")]
    pub name: String,
}

pub fn run(cmd: SnapshotCommand) -> Result<(), CliError> {
    match cmd {
        SnapshotCommand::Restore(flags) => restore(&flags),
    }
}

fn restore(f: &RestoreFlags) -> Result<(), CliError> {
    let bad = |e: anyhow::Error| CliError::new(EXIT_INVALID_INPUT, format!("{e:#}"));
    let cluster = parse_initial_cluster(&f.initial_cluster).map_err(bad)?;
    let mut advertised: Vec<String> = parse_urls("--initial-advertise-peer-urls", &f.initial_advertise_peer_urls)
        .map_err(bad)?
        .iter()
        .map(trim_url)
        .collect();
    advertised.sort();
    let Some(mine) = cluster.get(&f.name) else {
        return Err(CliError::new(
            EXIT_INVALID_INPUT,
            format!("couldn't find local name {:?} in the initial cluster configuration", f.name),
        ));
    };
    let mut mine: Vec<String> = mine.iter().map(trim_url).collect();
    mine.sort();
    if mine != advertised {
        return Err(CliError::new(
            EXIT_INVALID_INPUT,
            format!(
                "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={}",
                f.name,
                mine.join(","),
                advertised.join(",")
            ),
        ));
    }
    let data_dir = f.data_dir.clone().unwrap_or_else(|| PathBuf::from(format!("{}.etcd", f.name)));
    if data_dir.exists() {
        return Err(CliError::new(EXIT_ERROR, format!("data-dir {:?} exists", data_dir.display().to_string())));
    }
    check_digest(&f.file)?;

    let members: Vec<(u64, Vec<String>)> = cluster
        .values()
        .map(|urls| {
            let urls: Vec<String> = urls.iter().map(trim_url).collect();
            (wasmraft_node::ids::member_id(&urls, &f.initial_cluster_token), urls)
        })
        .collect();
    let voters: Vec<u64> = members.iter().map(|(id, _)| *id).collect();
    let identity = Identity {
        member_id: wasmraft_node::ids::member_id(&mine, &f.initial_cluster_token),
        cluster_id: wasmraft_node::ids::cluster_id(&voters),
    };
    eprintln!(
        "restoring snapshot {} into data-dir {} (member {:x}, cluster {:x})",
        f.file.display(),
        data_dir.display(),
        identity.member_id,
        identity.cluster_id
    );
    let written = build(&f.file, &data_dir, identity, &members, voters);
    if let Err(e) = written {
        // Leave nothing half-made behind: a partial data dir would start as a broken member.
        let _ = std::fs::remove_dir_all(&data_dir);
        return Err(CliError::new(EXIT_ERROR, format!("restoring {}: {e:#}", f.file.display())));
    }
    eprintln!("restored snapshot {} into data-dir {}", f.file.display(), data_dir.display());
    Ok(())
}

/// etcd's restore check: the last 32 bytes are the sha256 of everything before them.
fn check_digest(path: &Path) -> Result<(), CliError> {
    let io = |e: std::io::Error| CliError::new(EXIT_ERROR, format!("reading {}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len < 32 {
        return Err(CliError::new(EXIT_ERROR, "snapshot missing hash but --skip-hash-check=false".to_string()));
    }
    let mut body = (&mut file).take(len - 32);
    let mut h = Sha256::new();
    std::io::copy(&mut body, &mut h).map_err(io)?;
    let mut sha = [0u8; 32];
    file.read_exact(&mut sha).map_err(io)?;
    let got = h.finalize();
    if got[..] != sha[..] {
        return Err(CliError::new(EXIT_ERROR, format!("expected sha256 {}, got {}", go_bytes(&sha), go_bytes(&got))));
    }
    Ok(())
}

/// A byte slice as Go's `%v` prints it (`[1 2 3]`), as etcd's message has it.
fn go_bytes(b: &[u8]) -> String {
    format!("[{}]", b.iter().map(u8::to_string).collect::<Vec<_>>().join(" "))
}

fn build(
    file: &Path,
    data_dir: &Path,
    identity: Identity,
    members: &[(u64, Vec<String>)],
    voters: Vec<u64>,
) -> anyhow::Result<()> {
    let member_dir = data_dir.join("member");
    wasmraft_storage::durable::create_dir_all(&member_dir.join("snap"))?;
    let db = redb::Database::create(member_dir.join("state.redb"))?;
    // The tables a member creates at start, so the snapshot's install finds them all.
    wasmraft_node::load_applied(&db)?;
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    snapshot::install(&txn, file).context("snapshot file integrity check failed")?;
    txn.open_table(MEMBERS)?.retain(|_, _| false)?;
    txn.open_table(ALARMS)?.retain(|_, _| false)?;
    // A new cluster: the old one's removed ids mean nothing to it.
    txn.open_table(wasmraft_storage::tables::REMOVED_MEMBERS)?.retain(|_, _| false)?;
    {
        let mut meta = txn.open_table(META)?;
        meta.insert(META_APPLIED_INDEX, 0u64.to_be_bytes().as_slice())?;
        meta.insert(META_APPLIED_TERM, 0u64.to_be_bytes().as_slice())?;
    }
    txn.commit()?;
    let records: Vec<wasmraft_node::membership::Member> = members
        .iter()
        .map(|(id, peer_urls)| wasmraft_node::membership::Member {
            id: *id,
            peer_urls: peer_urls.clone(),
            ..Default::default()
        })
        .collect();
    Membership::load(&db)?.bootstrap(&db, &records)?;
    drop(db);
    wasmraft_storage::durable::sync_dir(&member_dir)?;
    let mut log = RaftLog::open(&member_dir.join("wal"))?;
    log.bootstrap(identity, voters, Vec::new())?;
    Ok(())
}
