//! Compiles every .proto file of this crate with protox (pure Rust, no system `protoc`) and
//! generates Rust with tonic-prost-build: prost messages always, gRPC server and client stubs
//! only with the `grpc` feature (Wasm guests need the messages alone).

use std::env;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Include roots, in resolution order. etcd's files import each other as `mvccpb/kv.proto`,
/// `authpb/auth.proto`, `etcdserverpb/rpc.proto`; wasmraft's as `wasmraft/v1/...`.
const INCLUDE_DIRS: &[&str] = &["etcd", "."];

/// Every file we generate code for, relative to the crate root.
const PROTO_FILES: &[&str] = &[
    "etcd/mvccpb/kv.proto",
    "etcd/authpb/auth.proto",
    "etcd/leasepb/lease.proto",
    "etcd/etcdserverpb/etcdserver.proto",
    "etcd/etcdserverpb/rpc.proto",
    "etcd/etcdserverpb/raft_internal.proto",
    "etcd/v3lockpb/v3lock.proto",
    "etcd/v3electionpb/v3election.proto",
    "wasmraft/v1/entry.proto",
    "wasmraft/v1/generic.proto",
    "wasmraft/v1/admin.proto",
    "wasmraft/v1/kv_query.proto",
];

/// Directories whose contents, when changed, must rerun this script.
const WATCHED_DIRS: &[&str] = &["etcd", "wasmraft"];

fn main() -> Result<()> {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR is not set (not run by cargo?)")?);
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR is not set (not run by cargo?)")?);
    let grpc = env::var_os("CARGO_FEATURE_GRPC").is_some();

    println!("cargo:rerun-if-changed=build.rs");
    for dir in WATCHED_DIRS {
        watch_dir(&manifest_dir.join(dir))?;
    }

    let files: Vec<PathBuf> = PROTO_FILES.iter().map(|f| manifest_dir.join(f)).collect();
    let includes: Vec<PathBuf> = INCLUDE_DIRS.iter().map(|d| manifest_dir.join(d)).collect();
    for file in &files {
        if !file.is_file() {
            bail!("proto file {} does not exist", file.display());
        }
    }

    // protox errors carry source spans; `{:?}` on them is the readable, miette-style rendering.
    let protox_err = |e: protox::Error| {
        anyhow::anyhow!("{e:?}").context(format!(
            "compiling {} with protox (include paths: {})",
            PROTO_FILES.join(", "),
            INCLUDE_DIRS.join(", ")
        ))
    };
    let mut compiler = protox::Compiler::new(&includes).map_err(protox_err)?;
    compiler.include_source_info(true).include_imports(true);
    compiler.open_files(&files).map_err(protox_err)?;

    // Kept for gRPC reflection and for tests that want to inspect the descriptors.
    let fds_path = out_dir.join("wasmraft_proto_descriptor.bin");
    std::fs::write(&fds_path, compiler.encode_file_descriptor_set())
        .with_context(|| format!("writing {}", fds_path.display()))?;
    let fds = compiler.file_descriptor_set();

    tonic_prost_build::configure()
        .build_server(grpc)
        .build_client(grpc)
        .build_transport(grpc)
        .out_dir(&out_dir)
        .compile_fds(fds)
        .context("generating Rust code from the file descriptor set with tonic-prost-build")?;

    Ok(())
}

/// Emits `rerun-if-changed` for a directory and every file below it, so that adding, removing or
/// editing a .proto file reruns this script.
fn watch_dir(dir: &Path) -> Result<()> {
    println!("cargo:rerun-if-changed={}", dir.display());
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading directory {}", dir.display()))?;
    for entry in entries {
        let path = entry.with_context(|| format!("reading directory {}", dir.display()))?.path();
        if path.is_dir() {
            watch_dir(&path)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    Ok(())
}
