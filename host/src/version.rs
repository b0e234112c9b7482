//! `wasmraft --version`: etcd's four lines first, because tools and scripts parse them (etcd's
//! `etcd Version: 3.4.31`, which is also the API version wasmraft reproduces and reports by default in
//! Maintenance.Status and /version), then wasmraft's own version on a line of its own.

use wasmraft_proto::contract::ETCD_VERSION;

/// What `wasmraft --version` prints.
pub fn text() -> String {
    format!(
        "etcd Version: {ETCD_VERSION}\nGit SHA: {}\nGo Version: {}\nGo OS/Arch: {}/{}\nwasmraft Version: {}\n",
        option_env!("WASMRAFT_GIT_SHA").unwrap_or("Not provided"),
        // etcd prints the Go toolchain it was built with; wasmraft has none.
        "not applicable (wasmraft is built with Rust)",
        go_os(std::env::consts::OS),
        go_arch(std::env::consts::ARCH),
        env!("CARGO_PKG_VERSION"),
    )
}

/// Go's GOOS for Rust's target OS name.
fn go_os(os: &str) -> &str {
    match os {
        "macos" => "darwin",
        other => other,
    }
}

/// Go's GOARCH for Rust's target architecture name.
fn go_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn etcd_lines_then_wasmraft() {
        let text = super::text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(lines[0], "etcd Version: 3.4.31");
        assert!(lines[1].starts_with("Git SHA: "));
        assert!(lines[2].starts_with("Go Version: "));
        assert!(lines[3].starts_with("Go OS/Arch: linux/") || !cfg!(target_os = "linux"), "{}", lines[3]);
        assert_eq!(lines[4], format!("wasmraft Version: {}", env!("CARGO_PKG_VERSION")));
    }
}
