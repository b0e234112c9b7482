//! The harness's side: the file system as a child process (its crash never takes the test with
//! it), mounted on a directory, driven through its control socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LazyFsError {
    #[error("starting {bin}: {source}")]
    Spawn { bin: PathBuf, source: std::io::Error },
    #[error("the file system on {mount} did not come up within 10 s: {detail}")]
    NotMounted { mount: PathBuf, detail: String },
    #[error("control socket {path}: {source}")]
    Control { path: PathBuf, source: std::io::Error },
    #[error("command {command:?} refused: {answer}")]
    Refused { command: String, answer: String },
    #[error(
        "the wasmraft-lazyfs binary was not found at {0} (build it: cargo build -p wasmraft-lazyfs, or set WASMRAFT_LAZYFS_BIN)"
    )]
    NoBinary(PathBuf),
}

/// A mounted lazy file system.
pub struct LazyFs {
    child: Child,
    mount: PathBuf,
    socket: PathBuf,
    conn: Option<BufReader<UnixStream>>,
}

/// The binary: env `WASMRAFT_LAZYFS_BIN`, else `wasmraft-lazyfs` in the profile directory the
/// running executable is in (`<target>/<profile>/deps/<test>-<hash>`).
pub fn binary() -> Result<PathBuf, LazyFsError> {
    if let Some(p) = std::env::var_os("WASMRAFT_LAZYFS_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| LazyFsError::Spawn { bin: "current_exe".into(), source: e })?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let bin = dir.join("wasmraft-lazyfs");
    if bin.is_file() { Ok(bin) } else { Err(LazyFsError::NoBinary(bin)) }
}

fn is_mounted(mount: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else { return false };
    let m = mount.to_string_lossy();
    mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(&*m))
}

impl LazyFs {
    /// Mounts a file system on `mount` mirroring `backing` (loaded as durable content); the
    /// control socket is `socket`.
    pub fn start(bin: &Path, backing: &Path, mount: &Path, socket: &Path) -> Result<Self, LazyFsError> {
        let _ = std::fs::remove_file(socket);
        let child = Command::new(bin)
            .arg(backing)
            .arg(mount)
            .arg(socket)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|source| LazyFsError::Spawn { bin: bin.to_path_buf(), source })?;
        let mut fs = LazyFs { child, mount: mount.to_path_buf(), socket: socket.to_path_buf(), conn: None };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = fs.child.try_wait() {
                return Err(LazyFsError::NotMounted {
                    mount: mount.to_path_buf(),
                    detail: format!("it exited: {status}"),
                });
            }
            if is_mounted(mount) && socket.exists() {
                return Ok(fs);
            }
            if Instant::now() > deadline {
                return Err(LazyFsError::NotMounted { mount: mount.to_path_buf(), detail: "no mount yet".into() });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn mount(&self) -> &Path {
        &self.mount
    }

    /// Sends one command; returns the text after `ok`.
    pub fn command(&mut self, command: &str) -> Result<String, LazyFsError> {
        let err = |source| LazyFsError::Control { path: self.socket.clone(), source };
        if self.conn.is_none() {
            let s = UnixStream::connect(&self.socket).map_err(err)?;
            self.conn = Some(BufReader::new(s));
        }
        let Some(conn) = self.conn.as_mut() else { unreachable!("connected above") };
        let sent = conn.get_mut().write_all(format!("{command}\n").as_bytes());
        let mut answer = String::new();
        let read = sent.and_then(|()| conn.read_line(&mut answer));
        if let Err(e) = read {
            self.conn = None;
            return Err(LazyFsError::Control { path: self.socket.clone(), source: e });
        }
        match answer.trim_end().strip_prefix("ok") {
            Some(rest) => Ok(rest.trim().to_string()),
            None => Err(LazyFsError::Refused { command: command.to_string(), answer: answer.trim_end().to_string() }),
        }
    }

    /// Power cut; returns the bytes a torn cut kept of the last unsynced write.
    pub fn cut(&mut self, torn: Option<u64>) -> Result<u64, LazyFsError> {
        let cmd = match torn {
            Some(seed) => format!("cut torn {seed}"),
            None => "cut".to_string(),
        };
        let a = self.command(&cmd)?;
        Ok(a.strip_prefix("kept=").and_then(|n| n.parse().ok()).unwrap_or(0))
    }

    pub fn power_on(&mut self) -> Result<(), LazyFsError> {
        self.command("on").map(drop)
    }

    /// A counter from `stats`.
    pub fn stat(&mut self, name: &str) -> Result<u64, LazyFsError> {
        let all = self.command("stats")?;
        Ok(all
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')).and_then(|v| v.parse().ok()))
            .unwrap_or(0))
    }
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3").arg("-u").arg("-z").arg(&self.mount).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
