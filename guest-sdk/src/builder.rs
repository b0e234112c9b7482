//! Compiles a guest crate to a Wasm component, from a build script.
//!
//! ```no_run
//! // build.rs of a crate that embeds or tests a guest:
//! let wasm = wasmraft_guest_sdk::builder::build_component(
//!     std::path::Path::new("../examples/kv"),
//! ).expect("guest builds");
//! println!("cargo:rustc-env=KV_GUEST={}", wasm.display());
//! ```
//!
//! The guest is built as a `cdylib` for `wasm32-unknown-unknown` with the workspace's `guest`
//! profile (falling back to `release`), in a target directory of its own so the outer build's
//! lock is not contended, then wrapped into a component with `wit-component`. If the Wasm target
//! is missing, it is installed with `rustup`, so a fresh checkout builds with plain `cargo`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

const TARGET: &str = "wasm32-unknown-unknown";

/// Builds the guest crate at `crate_dir` and returns the path of the component file.
/// Emits `cargo:rerun-if-changed` for the guest's sources, the SDK and the WIT world.
pub fn build_component(crate_dir: &Path) -> anyhow::Result<PathBuf> {
    let crate_dir = crate_dir.canonicalize().with_context(|| format!("guest crate {}", crate_dir.display()))?;
    let manifest = crate_dir.join("Cargo.toml");
    let name = package_name(&manifest)?;
    let out_dir =
        PathBuf::from(std::env::var("OUT_DIR").context("build_component runs in a build script (OUT_DIR unset)")?);
    let target_dir = target_dir(&out_dir);

    println!("cargo:rerun-if-changed={}", crate_dir.join("src").display());
    println!("cargo:rerun-if-changed={}", manifest.display());
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed={}", sdk.join("src").display());
    println!("cargo:rerun-if-changed={}", sdk.join("../proto/wit").display());
    println!("cargo:rerun-if-changed={}", sdk.join("../proto/etcd").display());

    let out = out_dir.join(format!("{name}.component.wasm"));
    build_component_to(&crate_dir, &target_dir, &out)?;
    Ok(out)
}

/// Builds the guest crate at `crate_dir` (cargo's artifacts under `target_dir`) and writes the
/// component to `out`. For tools (`wasmraft guest build`); build scripts use
/// [`build_component`].
pub fn build_component_to(crate_dir: &Path, target_dir: &Path, out: &Path) -> anyhow::Result<()> {
    let manifest = crate_dir.join("Cargo.toml");
    let name = package_name(&manifest)?;
    ensure_target()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let profile = if has_guest_profile(crate_dir) { "guest" } else { "release" };
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--lib", "--target", TARGET, "--profile", profile, "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir);
    // The outer build's settings are for the host, not for Wasm.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_LLVM_COV",
        "LLVM_PROFILE_FILE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().context("running cargo for the guest")?;
    if !status.success() {
        bail!("building guest {name} for {TARGET} failed ({status})");
    }
    let core = target_dir.join(TARGET).join(profile).join(format!("{}.wasm", name.replace('-', "_")));
    let module = std::fs::read(&core)
        .with_context(|| format!("reading {} (is the crate's crate-type \"cdylib\"?)", core.display()))?;
    let component = componentize(&module).with_context(|| format!("making a component of {}", core.display()))?;
    std::fs::write(out, component).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// For build scripts: builds each `(VAR, crate dir relative to root)` guest and exports its
/// component's path as `cargo:rustc-env=VAR=...` (for `include_bytes!(env!("VAR"))`). Every
/// guest is attempted, so one run reports every broken guest; if any failed, the build script
/// exits with an error after printing them. `root` is the workspace root: the guests also build
/// against the proto crate and the workspace's profiles and lockfile, so those are watched too.
pub fn export_components(root: &Path, guests: &[(&str, &str)]) {
    for path in ["proto/src", "proto/build.rs", "proto/Cargo.toml", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    let mut failed = false;
    for (var, dir) in guests {
        match build_component(&root.join(dir)) {
            Ok(path) => println!("cargo:rustc-env={var}={}", path.display()),
            Err(e) => {
                eprintln!("error: building the guest in {dir} (for {var}) failed: {e:#}");
                println!("cargo:warning=building the guest in {dir} failed: {e:#}");
                failed = true;
            }
        }
    }
    if failed {
        eprintln!(
            "error: fix the guest build errors above (cargo's output of each guest build is printed just before it)"
        );
        std::process::exit(1);
    }
}

/// Wraps a core module built with the SDK (it carries its WIT world in a custom section) into a
/// component.
pub fn componentize(module: &[u8]) -> anyhow::Result<Vec<u8>> {
    wit_component::ComponentEncoder::default().validate(true).module(module)?.encode()
}

/// The `[package] name` of a Cargo.toml.
pub fn package_name(manifest: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let mut in_package = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some(rest) = line.strip_prefix("name") {
            let value = rest.trim_start().trim_start_matches('=').trim().trim_matches('"');
            return Ok(value.to_string());
        }
    }
    bail!("no [package] name in {}", manifest.display())
}

/// `guests` in the outer build's target directory (cargo marks it with CACHEDIR.TAG), so guest
/// artifacts are cached across builds and removed by `cargo clean` — or
/// `WASMRAFT_GUEST_TARGET_DIR` when set: several checkouts of this workspace sharing one target dir would otherwise
/// build each other's guests (cargo identifies path crates by their path inside the workspace,
/// so one checkout's SDK and protos pass for another's).
fn target_dir(out_dir: &Path) -> PathBuf {
    println!("cargo:rerun-if-env-changed=WASMRAFT_GUEST_TARGET_DIR");
    if let Some(dir) = std::env::var_os("WASMRAFT_GUEST_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    out_dir
        .ancestors()
        .find(|d| d.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out_dir.to_path_buf())
        .join("guests")
}

fn has_guest_profile(crate_dir: &Path) -> bool {
    crate_dir
        .ancestors()
        .any(|d| std::fs::read_to_string(d.join("Cargo.toml")).map(|t| t.contains("[profile.guest]")).unwrap_or(false))
}

fn ensure_target() -> anyhow::Result<()> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc).args(["--print", "sysroot"]).output().context("running rustc --print sysroot")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(TARGET).is_dir() {
        return Ok(());
    }
    let note = format!("installing the {TARGET} target with rustup (needed to build Wasm guests)");
    if std::env::var_os("OUT_DIR").is_some() {
        println!("cargo:warning={note}");
    } else {
        eprintln!("{note}");
    }
    let status =
        Command::new("rustup").args(["target", "add", TARGET]).status().context("running rustup target add")?;
    if !status.success() {
        bail!("`rustup target add {TARGET}` failed; install the target and build again");
    }
    Ok(())
}
