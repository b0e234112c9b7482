//! `guest_load`: the path a deployed module's bytes take on a member before anything runs —
//! `Guest::load` in `host/runtime/src/runtime.rs`: the compile budget's pre-scan
//! (`compile_budget.rs`), the stack-counting rewrite of every core module (`stack_limit.rs`),
//! wasmtime's validation and compilation, linking against the host's imports, and the guest's
//! `info()` — the same steps `GuestRegistry::load` runs for `wasmraft guest deploy`, without its
//! cache of compiled code.
//!
//! The first byte chooses: bit 0 clear, the rest is the module; bit 0 set, the rest is a list of
//! edits (3 bytes each: a position as a u16 scaled over the module, and a byte: set it, or with
//! the top bits, delete or insert) applied to the hostile test guest, a real component, so that
//! the fuzzer starts deep inside valid Wasm. Either way the module loads, or is refused with a
//! `LoadError` whose text is not empty; never a panic or a hang. A module the pre-scan refuses is
//! refused for that reason, and one it refuses is never compiled.

use std::sync::OnceLock;

use wasmraft_runtime::{EngineConfig, Guest, GuestEngine, GuestLimits, LoadError, compile_budget};

static HOSTILE: &[u8] = include_bytes!(env!("WASMRAFT_FUZZ_HOSTILE_GUEST"));

fn engine() -> &'static GuestEngine {
    static ENGINE: OnceLock<GuestEngine> = OnceLock::new();
    // No pool: the target loads, it never instantiates many at once, and without the pool's
    // address-space reservation it runs under a sanitizer too.
    ENGINE.get_or_init(|| GuestEngine::new(EngineConfig { max_instances: 8, pooling: false }).expect("guest engine"))
}

pub fn guest_load(data: &[u8]) {
    let Some((mode, rest)) = crate::split_shape(data) else { return };
    let module = if mode & 1 == 0 { rest.to_vec() } else { edited(HOSTILE, rest) };
    let budget = compile_budget::check(&module);
    let limits = GuestLimits { stack_bytes: engine().stack_bytes(), ..wasmraft_runtime::LOAD_LIMITS };
    match Guest::load(engine(), &module, limits) {
        Ok(_) => assert!(budget.is_ok(), "a module over the compile budget loaded: {budget:?}"),
        Err(e) => {
            let text = e.to_string();
            assert!(!text.is_empty(), "an empty refusal: {e:?}");
            if let Err(over) = &budget {
                assert!(
                    matches!(&e, LoadError::CompileBudget(b) if b == over),
                    "a module over the compile budget was refused for something else: {e}"
                );
            }
        }
    }
}

/// `base` with the edits in `edits` applied, in order.
fn edited(base: &[u8], edits: &[u8]) -> Vec<u8> {
    let mut m = base.to_vec();
    for e in edits.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([e[0], e[1]])) * m.len() / 65536;
        match e[2] {
            // Delete a byte.
            0xfe if at < m.len() => {
                m.remove(at);
            }
            // Insert a zero.
            0xfd => m.insert(at.min(m.len()), 0),
            b if at < m.len() => m[at] = b,
            _ => {}
        }
    }
    m
}
