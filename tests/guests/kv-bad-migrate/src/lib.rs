//! An `etcd-kv` 0.3.0 whose `migrate` always fails, for the swap tests: deploying it must be
//! refused on every member (the swap entry is rejected the same way everywhere) and leave the
//! active guest running. Apart from `migrate` it is the bundled KV guest ([`KvGuest`]), so it
//! passes every check a deploy makes before the swap entry applies (it loads, `info()` answers,
//! same name, higher version): only `migrate` stops it.

use wasmraft_guest_sdk::{ApplyContext, GuestInfo, ReadStore, StateMachine, Store};
use wasmraft_kv_guest::KvGuest;

/// The text of the refusal, which clients see inside the host's "migrate refused" error.
pub const REFUSAL: &str = "kv-bad-migrate refuses every migration";

pub struct KvBadMigrate;

impl StateMachine for KvBadMigrate {
    fn info() -> GuestInfo {
        GuestInfo { version: env!("CARGO_PKG_VERSION").to_string(), ..KvGuest::info() }
    }

    fn apply(ctx: &ApplyContext, store: &mut dyn Store, command: &[u8]) -> Result<Vec<u8>, String> {
        KvGuest::apply(ctx, store, command)
    }

    fn query(store: &dyn ReadStore, request: &[u8]) -> Result<Vec<u8>, String> {
        KvGuest::query(store, request)
    }

    /// Writes first (the host must roll that back), then refuses.
    fn migrate(from: &GuestInfo, store: &mut dyn Store) -> Result<(), String> {
        store.put(b"kv-bad-migrate/partial", b"must be rolled back");
        Err(format!("{REFUSAL} (from {} {})", from.name, from.version))
    }
}

// Only when building the component: a native build of the whole workspace unifies features, so
// there `wasmraft-kv-guest` has its `export` feature on, and two exported worlds in one native
// cdylib are duplicate symbols.
#[cfg(target_arch = "wasm32")]
wasmraft_guest_sdk::export_guest!(KvBadMigrate);
