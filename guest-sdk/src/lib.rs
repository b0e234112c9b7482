//! # wasmraft-guest-sdk
//!
//! A wasmraft cluster replicates a log; a *guest* gives the log its meaning. This crate is all a
//! guest author needs: implement [`StateMachine`], export it with [`export_guest!`], test it
//! natively with [`testing`], and build it to a component with `wasmraft guest build` (the
//! `builder` module, feature `build`, does the same from a build script).
//!
//! Beyond native tests: `wasmraft::harness::TestMember` (in the host crate, as a dev-dependency)
//! runs the compiled component behind a whole in-process member (raft log, apply thread,
//! wasmtime with the deployment's limits, gRPC); the `wasmraft-tests` crate starts real
//! multi-member clusters as processes (see `docs/testing.md`). A new version reaches a running
//! cluster through the log with `wasmraft guest deploy`; its [`StateMachine::migrate`] runs in
//! the entry that switches every member to it.
//!
//! A guest has no `self`: every entry runs in a fresh Wasm instance, so anything not written to
//! the [`Store`] is gone when the entry ends. That is what keeps members identical even though
//! they batch entries differently, and it is why the trait's functions are associated functions.
//! One entry may carry several clients' commands; they run one after another in the entry's
//! instance (see [`API_SHARED_ENTRY_INSTANCE`]), each with its own fuel, writes and result.
//! Queries are cheaper: a query may run in an instance that answered earlier queries on the same
//! member, so a `static` can carry over from one query to the next (never into an entry). Keep
//! nothing there that was read from the store; the next query may see a newer state.
//!
//! ```
//! use wasmraft_guest_sdk::{ApplyContext, GuestInfo, ReadStore, StateMachine, Store};
//!
//! /// Adds the command (a decimal number) to a counter and returns the new value.
//! pub struct Counter;
//!
//! impl StateMachine for Counter {
//!     fn info() -> GuestInfo {
//!         GuestInfo::new("counter", "1.0.0")
//!     }
//!     fn apply(_ctx: &ApplyContext, store: &mut dyn Store, command: &[u8]) -> Result<Vec<u8>, String> {
//!         let delta: i64 = std::str::from_utf8(command)
//!             .ok()
//!             .and_then(|s| s.trim().parse().ok())
//!             .ok_or_else(|| "command must be a decimal integer".to_string())?;
//!         let now = read(store) + delta;
//!         store.put(b"count", now.to_string().as_bytes());
//!         store.emit(format!("count={now}").as_bytes());
//!         Ok(now.to_string().into_bytes())
//!     }
//!     fn query(store: &dyn ReadStore, _request: &[u8]) -> Result<Vec<u8>, String> {
//!         Ok(read(store).to_string().into_bytes())
//!     }
//! }
//!
//! fn read(store: &(impl ReadStore + ?Sized)) -> i64 {
//!     store.get(b"count").and_then(|v| String::from_utf8(v).ok()?.parse().ok()).unwrap_or(0)
//! }
//!
//! // In the guest crate (crate-type = ["cdylib", "rlib"]):
//! // wasmraft_guest_sdk::export_guest!(Counter);
//!
//! // And natively, under plain `cargo test`:
//! let mut h = wasmraft_guest_sdk::testing::Harness::<Counter>::new();
//! assert_eq!(h.apply(b"5").unwrap(), b"5");
//! assert_eq!(h.apply(b"-2").unwrap(), b"3");
//! assert!(h.apply(b"oops").is_err());
//! assert_eq!(h.query(b"").unwrap(), b"3");
//! assert_eq!(h.events().len(), 2);
//! ```

extern crate self as wasmraft_guest_sdk;

#[cfg(feature = "entry-arena")]
pub mod arena;
pub mod crc32c;

/// Every guest built on the SDK gets a heap that starts in a static arena (see [`arena`]).
#[cfg(all(target_arch = "wasm32", feature = "entry-arena"))]
#[global_allocator]
static GUEST_HEAP: arena::GuestHeap = arena::GuestHeap::new();
#[cfg(feature = "build")]
pub mod builder;
mod store;
pub mod testing;

pub use store::{ReadStore, Scan, Store, prefix_end};

/// Name, version and served APIs of a guest (the WIT `guest-info`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GuestInfo {
    pub name: String,
    /// A semantic version, "MAJOR.MINOR.PATCH".
    pub version: String,
    /// Client APIs the guest serves, such as [`API_ETCD_KV`]. The host routes a service's
    /// requests only to a guest that lists it.
    pub apis: Vec<String>,
}

/// The API name a guest lists when it speaks etcd's v3 KV protocol (commands are etcd's
/// `InternalRaftRequest`, queries are `RangeRequest`).
pub const API_ETCD_KV: &str = "etcd.v3.kv";

/// Listed by every guest built on the SDK (the export adds it to [`StateMachine::info`]'s
/// apis): the host may run the commands that share a raft entry one after another in one
/// instance instead of one instance each. The SDK keeps nothing between calls; a guest that
/// keeps state in a `static` across `apply` calls would see it carried from one command to the
/// next of the same entry (still the same on every member, since the grouping is in the log,
/// but no longer independent of it). Keep state in the [`Store`].
pub const API_SHARED_ENTRY_INSTANCE: &str = "wasmraft.shared-entry-instance";

impl GuestInfo {
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        GuestInfo { name: name.into(), version: version.into(), apis: Vec::new() }
    }
    pub fn with_api(mut self, api: impl Into<String>) -> Self {
        self.apis.push(api.into());
        self
    }
}

/// Where the entry being applied sits in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ApplyContext {
    pub index: u64,
    pub term: u64,
    /// The proposer's wall clock when it proposed the entry, identical on every member. A guest
    /// has no other clock.
    pub time_unix_ms: u64,
}

/// A deterministic state machine. Every function must depend only on its arguments and the
/// store: the same log must give the same state on every member.
pub trait StateMachine {
    fn info() -> GuestInfo;

    /// Applies one committed command inside the entry's write transaction. `Err` (or a panic,
    /// which traps) rolls back every write and event of this entry; the error text reaches the
    /// client that proposed it.
    fn apply(ctx: &ApplyContext, store: &mut dyn Store, command: &[u8]) -> Result<Vec<u8>, String>;

    /// Answers a read-only request.
    fn query(store: &dyn ReadStore, request: &[u8]) -> Result<Vec<u8>, String>;

    /// Runs inside the log entry that makes this guest the active one, with the info of the
    /// guest it replaces. `Err` rejects the swap on every member.
    fn migrate(from: &GuestInfo, store: &mut dyn Store) -> Result<(), String> {
        let _ = (from, store);
        Ok(())
    }
}

/// The generated WIT bindings. Guest authors use [`export_guest!`] instead.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../proto/wit",
        world: "state-machine",
        pub_export_macro: true,
        export_macro_name: "__export_state_machine_world",
        default_bindings_module: "wasmraft_guest_sdk::bindings",
        runtime_path: "wasmraft_guest_sdk::__private::wit_bindgen::rt",
    });
}

/// What [`export_guest!`] expands to calls into here.
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    use crate::bindings::wasmraft::guest::{events, metrics, store, types};
    use crate::{ApplyContext, GuestInfo, ReadStore, StateMachine, Store};

    /// The store as the host exposes it to a running guest.
    struct HostStore;

    impl ReadStore for HostStore {
        fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
            store::get(key)
        }
        fn scan_page(&self, start: &[u8], end: &[u8], limit: u32, reverse: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
            store::scan(start, end, limit, reverse)
        }
    }

    impl Store for HostStore {
        fn put(&mut self, key: &[u8], value: &[u8]) {
            store::put(key, value)
        }
        fn delete(&mut self, key: &[u8]) {
            store::delete(key)
        }
        fn emit(&mut self, event: &[u8]) {
            events::emit(event)
        }
        fn metric_add(&mut self, name: &str, delta: i64) {
            metrics::add(name, delta)
        }
        fn metric_set(&mut self, name: &str, value: i64) {
            metrics::set(name, value)
        }
    }

    fn to_wit(info: GuestInfo) -> types::GuestInfo {
        types::GuestInfo { name: info.name, version: info.version, apis: info.apis }
    }

    pub fn info<S: StateMachine>() -> types::GuestInfo {
        let mut info = S::info();
        if !info.apis.iter().any(|a| a == crate::API_SHARED_ENTRY_INSTANCE) {
            info.apis.push(crate::API_SHARED_ENTRY_INSTANCE.to_string());
        }
        to_wit(info)
    }

    pub fn apply<S: StateMachine>(ctx: types::ApplyContext, command: Vec<u8>) -> Result<Vec<u8>, String> {
        let ctx = ApplyContext { index: ctx.index, term: ctx.term, time_unix_ms: ctx.time_unix_ms };
        S::apply(&ctx, &mut HostStore, &command)
    }

    pub fn query<S: StateMachine>(request: Vec<u8>) -> Result<Vec<u8>, String> {
        S::query(&HostStore, &request)
    }

    pub fn migrate<S: StateMachine>(from: types::GuestInfo) -> Result<(), String> {
        let from = GuestInfo { name: from.name, version: from.version, apis: from.apis };
        S::migrate(&from, &mut HostStore)
    }
}

/// Exports a [`StateMachine`] as the guest's WIT world. Use it once, in the guest crate's root.
#[macro_export]
macro_rules! export_guest {
    ($sm:ty) => {
        #[doc(hidden)]
        pub struct __WasmraftGuestExport;

        impl $crate::bindings::Guest for __WasmraftGuestExport {
            fn info() -> $crate::bindings::wasmraft::guest::types::GuestInfo {
                $crate::__private::info::<$sm>()
            }
            fn apply(
                ctx: $crate::bindings::wasmraft::guest::types::ApplyContext,
                command: ::std::vec::Vec<u8>,
            ) -> ::std::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                $crate::__private::apply::<$sm>(ctx, command)
            }
            fn query(
                request: ::std::vec::Vec<u8>,
            ) -> ::std::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                $crate::__private::query::<$sm>(request)
            }
            fn migrate(
                from: $crate::bindings::wasmraft::guest::types::GuestInfo,
            ) -> ::std::result::Result<(), ::std::string::String> {
                $crate::__private::migrate::<$sm>(from)
            }
        }

        $crate::bindings::__export_state_machine_world!(__WasmraftGuestExport with_types_in $crate::bindings);
    };
}
