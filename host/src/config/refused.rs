//! The only etcd settings wasmraft refuses: the ones that turn on etcd's v2 API or its v2 proxy.
//! wasmraft serves etcd's v3 API; a member started with one of these would not do what the
//! operator asked, so it stops at once with one line saying so, instead of running without it.
//! The disabled values (`--enable-v2=false`, `--proxy=off`, empty strings) are accepted, as are
//! the flags that only matter together with a refused one (`--discovery-fallback`,
//! `--discovery-proxy`, the `--proxy-*` timeouts).

use anyhow::bail;

use super::{MemberFlags, ProxyMode};

/// What the one-line refusal says after naming the setting.
pub const V3_ONLY: &str = "wasmraft serves the etcd v3 API only (no v2 API, v2 proxy or v2 discovery)";

pub fn check(flags: &MemberFlags) -> anyhow::Result<()> {
    if flags.enable_v2 {
        bail!("--enable-v2=true: {V3_ONLY}; leave it false");
    }
    if !flags.experimental_enable_v2v3.is_empty() {
        bail!("--experimental-enable-v2v3={}: {V3_ONLY}", flags.experimental_enable_v2v3);
    }
    match flags.proxy {
        ProxyMode::Off => {}
        ProxyMode::On => bail!("--proxy=on: {V3_ONLY}; leave it off"),
        ProxyMode::Readonly => bail!("--proxy=readonly: {V3_ONLY}; leave it off"),
    }
    if !flags.discovery.is_empty() {
        bail!("--discovery={}: {V3_ONLY}; bootstrap with --initial-cluster or --discovery-srv", flags.discovery);
    }
    Ok(())
}
