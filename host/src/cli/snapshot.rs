//! `wasmraft snapshot restore`: etcdctl 3.4's `snapshot restore` for wasmraft — a new data dir
//! from a file `etcdctl snapshot save` (Maintenance.Snapshot) wrote: etcd's bbolt backend, from
//! a wasmraft member running the bundled KV guest or from a real etcd 3.4/3.5 (the keyspace with
//! its history, compaction point, leases, users and roles; `wasmraft-backup`), or wasmraft's own
//! format (`wasmraft snapshot save`: any guest, with its modules and deployment).
//! `wasmraft snapshot status` prints what etcdctl's does for either, and `wasmraft snapshot save`
//! asks a member for wasmraft's format.
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

/// The state database's cache while a restore writes it.
const RESTORE_CACHE_BYTES: usize = 64 << 20;

/// etcdctl's ExitError: how `snapshot restore` ends when the file or the data dir is refused.
const EXIT_ERROR: u8 = 1;
use crate::config::{parse_initial_cluster, parse_urls, trim_url};
use wasmraft_node::membership::Membership;
use wasmraft_storage::tables::{ALARMS, MEMBERS, META, META_APPLIED_INDEX, META_APPLIED_TERM};
use wasmraft_storage::{Identity, RaftLog, snapshot};

#[derive(Subcommand, Debug, Clone)]
pub enum SnapshotCommand {
    /// Restore a member's data dir from a snapshot file (`etcdctl snapshot save` of a wasmraft
    /// member or of a real etcd, or `wasmraft snapshot save`), as the first member of a new
    /// cluster.
    Restore(RestoreFlags),
    /// Print a snapshot file's hash, revision, total keys and size, as `etcdctl snapshot status`.
    Status(StatusFlags),
    /// Save a member's state in wasmraft's snapshot format (any guest, with its modules and
    /// deployment); `etcdctl snapshot save` gets etcd's file while the bundled KV guest runs.
    Save {
        /// Where to write the snapshot.
        file: PathBuf,
        #[command(flatten)]
        conn: wasmraft_client::ConnFlags,
    },
}

/// etcdctl 3.4's `snapshot status` flags.
#[derive(Args, Debug, Clone)]
pub struct StatusFlags {
    /// The snapshot file.
    pub file: PathBuf,
    /// Output format: simple, table or json.
    #[arg(short = 'w', long = "write-out", default_value = "simple")]
    pub write_out: String,
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
    /// Ignore the snapshot's integrity hash (a file copied from a data dir has none).
    #[arg(long)]
    pub skip_hash_check: bool,
}

pub fn run(cmd: SnapshotCommand) -> Result<(), CliError> {
    match cmd {
        SnapshotCommand::Restore(flags) => restore(&flags),
        SnapshotCommand::Status(flags) => status(&flags),
        SnapshotCommand::Save { file, conn } => save(&file, &conn),
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
    let etcd_file = !snapshot::is_snapshot_file(&f.file)
        .map_err(|e| CliError::new(EXIT_ERROR, format!("reading {}: {:#}", f.file.display(), anyhow::Error::new(e))))?;
    if etcd_file {
        check_etcd_digest(&f.file, f.skip_hash_check)?;
    } else if !f.skip_hash_check {
        check_digest(&f.file)?;
    }

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
    let written = build(&f.file, etcd_file, &data_dir, identity, &members, voters);
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

/// etcdctl's restore check of a bbolt file: a file whose size is whole 512-byte pages plus 32
/// bytes ends with its sha256 (what `snapshot save` appends); one without it is refused unless
/// `--skip-hash-check` (a db file copied from a data dir).
fn check_etcd_digest(path: &Path, skip: bool) -> Result<(), CliError> {
    let io = |e: std::io::Error| CliError::new(EXIT_ERROR, format!("reading {}: {e}", path.display()));
    let len = std::fs::metadata(path).map_err(io)?.len();
    let has_hash = len % 512 == 32;
    if skip {
        return Ok(());
    }
    if !has_hash {
        return Err(CliError::new(EXIT_ERROR, "snapshot missing hash but --skip-hash-check=false".to_string()));
    }
    check_digest(path)
}

/// `snapshot status`: etcdctl's columns for etcd's file; wasmraft's file has no KV revision to
/// show (its guest's keyspace is opaque to the host), so its own facts instead.
fn status(f: &StatusFlags) -> Result<(), CliError> {
    let fail = |text: String| CliError::new(EXIT_ERROR, text);
    let wasmraft_file =
        snapshot::is_snapshot_file(&f.file).map_err(|e| fail(format!("{:#}", anyhow::Error::new(e))))?;
    if wasmraft_file {
        let mut crc = wasmraft_guest_sdk::crc32c::Crc32c::new();
        let mut records = 0u64;
        snapshot::read_records(&f.file, |table, key, value| {
            crc.update(&[table]);
            crc.update(key);
            crc.update(value);
            records += 1;
            Ok(())
        })
        .map_err(|e| fail(format!("{:#}", anyhow::Error::new(e))))?;
        let applied = snapshot::applied_index_of(&f.file).map_err(|e| fail(format!("{:#}", anyhow::Error::new(e))))?;
        let size = std::fs::metadata(&f.file).map_err(|e| fail(e.to_string()))?.len();
        let (hash, size_text) = (format!("{:x}", crc.sum()), humanize_bytes(size));
        let out = match f.write_out.as_str() {
            "json" => format!(
                "{{\"format\":\"wasmraft\",\"hash\":{},\"appliedIndex\":{applied},\"totalRecords\":{records},\"totalSize\":{size}}}\n",
                crc.sum()
            ),
            "table" => table(
                &["HASH", "APPLIED INDEX", "TOTAL RECORDS", "TOTAL SIZE"],
                &[&hash, &applied.to_string(), &records.to_string(), &size_text],
            ),
            "simple" => format!("{hash}, {applied}, {records}, {size_text}\n"),
            other => return Err(CliError::new(EXIT_INVALID_INPUT, format!("unknown output format {other:?}"))),
        };
        print!("{out}");
        return Ok(());
    }
    let st =
        wasmraft_backup::status(&f.file).map_err(|e| fail(format!("invalid database: {:#}", anyhow::Error::new(e))))?;
    let hash = format!("{:x}", st.hash);
    let out = match f.write_out.as_str() {
        "json" => format!(
            "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}\n",
            st.hash, st.revision, st.total_key, st.total_size
        ),
        "table" => table(
            &["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"],
            &[&hash, &st.revision.to_string(), &st.total_key.to_string(), &humanize_bytes(st.total_size)],
        ),
        "simple" => format!("{hash}, {}, {}, {}\n", st.revision, st.total_key, humanize_bytes(st.total_size)),
        other => return Err(CliError::new(EXIT_INVALID_INPUT, format!("unknown output format {other:?}"))),
    };
    print!("{out}");
    Ok(())
}

/// go-humanize's `Bytes`, which etcdctl prints sizes with: SI units, one decimal below 10.
fn humanize_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let e = e.min(UNITS.len() - 1);
    let val = ((n as f64) / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 { format!("{val:.1} {}", UNITS[e]) } else { format!("{val:.0} {}", UNITS[e]) }
}

/// One row under a header, as etcdctl's tablewriter draws it (`SetAlignment(ALIGN_RIGHT)`):
/// headers centred, cells right-aligned, one space of padding.
fn table(header: &[&str], row: &[&str]) -> String {
    let widths: Vec<usize> = header.iter().zip(row).map(|(h, c)| h.len().max(c.len())).collect();
    let line = widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("+");
    let line = format!("+{line}+\n");
    let head: Vec<String> = header
        .iter()
        .zip(&widths)
        .map(|(h, w)| {
            let left = (w + 2 - h.len()) / 2;
            format!("{}{h}{}", " ".repeat(left), " ".repeat(w + 2 - h.len() - left))
        })
        .collect();
    let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!(" {c:>w$} ")).collect();
    format!("{line}|{}|\n{line}|{}|\n{line}", head.join("|"), cells.join("|"))
}

/// `wasmraft snapshot save`: Maintenance.Snapshot in wasmraft's format, written as etcdctl
/// writes its file (to `FILE.part`, renamed once the digest arrived).
fn save(file: &Path, conn: &wasmraft_client::ConnFlags) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(wasmraft_client::EXIT_IO, format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(save_async(file, conn))
}

async fn save_async(file: &Path, conn: &wasmraft_client::ConnFlags) -> Result<(), CliError> {
    use tokio::io::AsyncWriteExt as _;
    use wasmraft_proto::etcdserverpb::{SnapshotRequest, maintenance_client::MaintenanceClient};
    let io = |e: std::io::Error| CliError::new(wasmraft_client::EXIT_IO, format!("writing {}: {e}", file.display()));
    // No deadline: a large state takes as long as it takes, as etcdctl's snapshot save.
    let (channel, _) = wasmraft_client::channel(conn, std::time::Duration::from_secs(365 * 24 * 3600)).await?;
    let mut client = MaintenanceClient::new(wasmraft_client::authed(conn, channel).await?);
    let mut request = tonic::Request::new(SnapshotRequest {});
    request
        .metadata_mut()
        .insert(wasmraft_api::SNAPSHOT_FORMAT_HEADER, tonic::metadata::MetadataValue::from_static("wasmraft"));
    let mut stream = client.snapshot(request).await.map_err(wasmraft_client::status_error)?.into_inner();
    let part = PathBuf::from(format!("{}.part", file.display()));
    let mut out = tokio::fs::File::create(&part).await.map_err(io)?;
    let mut total = 0u64;
    while let Some(msg) = stream.message().await.map_err(wasmraft_client::status_error)? {
        out.write_all(&msg.blob).await.map_err(io)?;
        total += msg.blob.len() as u64;
    }
    out.sync_all().await.map_err(io)?;
    drop(out);
    tokio::fs::rename(&part, file).await.map_err(io)?;
    check_digest(file)?;
    println!("Snapshot saved at {} ({total} bytes)", file.display());
    Ok(())
}

/// A byte slice as Go's `%v` prints it (`[1 2 3]`), as etcd's message has it.
fn go_bytes(b: &[u8]) -> String {
    format!("[{}]", b.iter().map(u8::to_string).collect::<Vec<_>>().join(" "))
}

fn build(
    file: &Path,
    etcd_file: bool,
    data_dir: &Path,
    identity: Identity,
    members: &[(u64, Vec<String>)],
    voters: Vec<u64>,
) -> anyhow::Result<()> {
    let member_dir = data_dir.join("member");
    wasmraft_storage::durable::create_dir_all(&member_dir.join("snap"))?;
    // A small cache: a restore writes each page once, and redb's default cache (a GiB) would
    // only hold a large keyspace in memory for nothing.
    let db = redb::Builder::new().set_cache_size(RESTORE_CACHE_BYTES).create(member_dir.join("state.redb"))?;
    // The tables a member creates at start, so the snapshot's install finds them all.
    wasmraft_node::load_applied(&db)?;
    if etcd_file {
        let r = wasmraft_backup::restore(file, &db).map_err(anyhow::Error::new)?;
        eprintln!(
            "restored etcd's keyspace at revision {} (compacted at {}): {} keys, {} leases; auth {}, {} users, {} roles",
            r.kv.revision,
            r.kv.compact_revision,
            r.kv.keys,
            r.kv.leases,
            if r.auth_enabled { "enabled" } else { "disabled" },
            r.users,
            r.roles
        );
        if r.kv.unattached_keys > 0 {
            eprintln!(
                "{} keys name a lease the file does not have: they keep it but no lease expiry removes them",
                r.kv.unattached_keys
            );
        }
    }
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    if !etcd_file {
        snapshot::install(&txn, file).context("snapshot file integrity check failed")?;
    }
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
