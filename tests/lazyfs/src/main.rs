//! `wasmraft-lazyfs BACKING MOUNT SOCKET`: mounts the lazy file system (see the library's docs).

fn main() -> anyhow::Result<()> {
    let args: Vec<std::path::PathBuf> = std::env::args_os().skip(1).map(Into::into).collect();
    let [backing, mount, socket] = args.as_slice() else {
        anyhow::bail!("usage: wasmraft-lazyfs BACKING_DIR MOUNT_POINT CONTROL_SOCKET");
    };
    wasmraft_lazyfs::run(backing, mount, socket)
        .map_err(|e| anyhow::anyhow!("wasmraft-lazyfs on {} (backing {}): {e}", mount.display(), backing.display()))
}
