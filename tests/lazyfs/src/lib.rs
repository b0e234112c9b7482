//! A FUSE file system for power-loss and disk-fault tests, after LazyFS: what is written lives
//! in memory until it is synced, and a power cut (on command) drops everything that was not.
//!
//! The durability rules are in [`tree`]; a file's pages in [`pages`]; the control commands
//! (cut, torn cut, ENOSPC/EIO on write or fsync by path, slow fsync) in [`control`]. The harness
//! runs the file system as a child process through [`client::LazyFs`].
//!
//! It mirrors a backing directory: that directory's files are loaded as durable content at
//! mount, and `save` (or a clean unmount) writes the durable image back.

pub mod client;
pub mod control;
pub mod faults;
pub mod fs;
pub mod pages;
pub mod tree;

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Mounts the file system on `mount` over `backing` and serves until it is unmounted; commands
/// come on the unix socket `socket`.
pub fn run(backing: &Path, mount: &Path, socket: &Path) -> std::io::Result<()> {
    let state = Arc::new(Mutex::new(tree::State::load(backing)?));
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    let mut config = fuser::Config::default();
    config.mount_options = vec![fuser::MountOption::FSName("wasmraft-lazyfs".into())];
    // Several threads: a slow fsync must not stall reads and writes of other files.
    config.n_threads = Some(4);
    let session = fuser::Session::new(fs::LazyFs { state: state.clone() }, mount, &config)?;
    {
        let (state, backing) = (state.clone(), backing.to_path_buf());
        std::thread::spawn(move || control::serve(listener, state, backing));
    }
    let result = session.run();
    let s = state.lock().unwrap_or_else(|p| p.into_inner());
    s.save(backing)?;
    result
}
