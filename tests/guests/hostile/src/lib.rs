//! A guest that misbehaves on command, so the host's sandbox can be tested against the worst a
//! guest can do: trap after writing, panic, return `Err`, never return, allocate without bound,
//! keep state in globals, return or emit more than the host accepts.
//!
//! `apply` commands (UTF-8):
//!
//! | command                  | what the guest does                                            |
//! |--------------------------|----------------------------------------------------------------|
//! | `ok:<k>=<v>`             | puts `k = v`, emits `put:<k>`, returns `ok`                     |
//! | `put-then-trap:<k>=<v>`  | puts, then executes `unreachable`                              |
//! | `put-then-panic`         | puts `panic = 1`, then panics (a trap: guests build with `panic = "abort"`) |
//! | `put-then-err`           | puts `err = 1`, emits an event, then returns `Err("hostile: refused after put")` |
//! | `loop`                   | loops forever (only fuel stops it)                             |
//! | `recurse`                | recurses forever (the stack limit stops it)                    |
//! | `recurse-to:<n>`         | recurses `n` calls deep, puts `recursed/<n>`, returns `n`: where it starts to trap measures the stack limit |
//! | `alloc:<bytes>`          | allocates and touches `bytes` bytes, returns the count         |
//! | `global-inc`             | increments a global and returns it: always `1` on a fresh instance |
//! | `global-put:<k>`         | increments the same global, puts its count under `k` and returns it: a host that reused instances would store `2`, `3`, … and members would disagree |
//! | `huge-result:<bytes>`    | returns `bytes` bytes of `x`                                   |
//! | `emit:<n>`               | emits `n` events `e0`, `e1`, …, returns `n`                    |
//! | `emit-size:<bytes>`      | emits one event of `bytes` bytes                               |
//! | `script:<op>;<op>;…`     | runs store ops in order, returns their output, one line each    |
//!
//! Script ops (space-separated words; `-` is the empty string): `put <k> <v>`, `del <k>`,
//! `get <k>` (→ the value or `none`), `scan <start> <end> <limit> fwd|rev` (one page, → `k=v,k=v`),
//! `bigput <key-bytes> <value-bytes>` (a key of `k`s and a value of `v`s), `emit <bytes>` (one
//! event of `e`s), `pad <bytes>` (a line of `x`s in the output, to make it too large after writes).
//!
//! `query` takes the same `script:` commands against the read-only store, plus `put-in-query`,
//! which calls the raw `put` import the host must refuse, and `huge-result:<bytes>`.
//! Anything else is an `Err` naming the command.

use std::sync::atomic::{AtomicU64, Ordering};

use wasmraft_guest_sdk::{ApplyContext, GuestInfo, ReadStore, StateMachine, Store};

pub struct Hostile;

/// State that would leak between entries if the host reused an instance.
static ENTRIES_SEEN: AtomicU64 = AtomicU64::new(0);

impl StateMachine for Hostile {
    fn info() -> GuestInfo {
        GuestInfo::new("hostile", "0.1.0").with_api("wasmraft.test.hostile")
    }

    fn apply(_ctx: &ApplyContext, store: &mut dyn Store, command: &[u8]) -> Result<Vec<u8>, String> {
        let command = std::str::from_utf8(command).map_err(|_| "hostile: command is not UTF-8".to_string())?;
        let (verb, arg) = command.split_once(':').unwrap_or((command, ""));
        match verb {
            "ok" => {
                let (k, v) = pair(arg)?;
                store.put(k.as_bytes(), v.as_bytes());
                store.emit(format!("put:{k}").as_bytes());
                Ok(b"ok".to_vec())
            }
            "put-then-trap" => {
                let (k, v) = pair(arg)?;
                store.put(k.as_bytes(), v.as_bytes());
                trap()
            }
            "put-then-panic" => {
                store.put(b"panic", b"1");
                panic!("hostile guest panics on purpose");
            }
            "put-then-err" => {
                store.put(b"err", b"1");
                store.emit(b"never delivered");
                Err("hostile: refused after put".to_string())
            }
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    // black_box keeps the optimizer from proving anything about the loop.
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "recurse" => Ok(recurse(std::hint::black_box(1)).to_string().into_bytes()),
            "recurse-to" => {
                let n = number(arg)? as u64;
                let mixed = descend(n, command.as_bytes());
                store.put(format!("recursed/{n}").as_bytes(), mixed.to_string().as_bytes());
                Ok(n.to_string().into_bytes())
            }
            "alloc" => {
                let n = number(arg)?;
                let mut v = vec![0u8; n];
                // Touch every page so the allocation cannot stay virtual.
                for i in (0..n).step_by(4096) {
                    v[i] = 1;
                }
                Ok(std::hint::black_box(v).len().to_string().into_bytes())
            }
            "global-inc" => Ok((ENTRIES_SEEN.fetch_add(1, Ordering::Relaxed) + 1).to_string().into_bytes()),
            "global-put" => {
                let seen = ENTRIES_SEEN.fetch_add(1, Ordering::Relaxed) + 1;
                let seen = seen.to_string().into_bytes();
                store.put(arg.as_bytes(), &seen);
                Ok(seen)
            }
            "huge-result" => Ok(vec![b'x'; number(arg)?]),
            "emit" => {
                let n = number(arg)?;
                for i in 0..n {
                    store.emit(format!("e{i}").as_bytes());
                }
                Ok(n.to_string().into_bytes())
            }
            "emit-size" => {
                store.emit(&vec![b'e'; number(arg)?]);
                Ok(b"emitted".to_vec())
            }
            "script" => script(arg, Some(store), None),
            _ => Err(format!("hostile: unknown command {verb:?}")),
        }
    }

    fn query(store: &dyn ReadStore, request: &[u8]) -> Result<Vec<u8>, String> {
        let request = std::str::from_utf8(request).map_err(|_| "hostile: request is not UTF-8".to_string())?;
        let (verb, arg) = request.split_once(':').unwrap_or((request, ""));
        match verb {
            "put-in-query" => {
                wasmraft_guest_sdk::bindings::wasmraft::guest::store::put(b"sneaky", b"1");
                Ok(b"the host let a query write".to_vec())
            }
            "metric-in-query" => {
                wasmraft_guest_sdk::bindings::wasmraft::guest::metrics::add("sneaky_total", 1);
                Ok(b"the host let a query count".to_vec())
            }
            "huge-result" => Ok(vec![b'x'; number(arg)?]),
            "global-inc" => Ok((ENTRIES_SEEN.fetch_add(1, Ordering::Relaxed) + 1).to_string().into_bytes()),
            "script" => script(arg, None, Some(store)),
            _ => Err(format!("hostile: unknown query {verb:?}")),
        }
    }
}

fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    // The addition after the call keeps it from becoming a loop.
    recurse(std::hint::black_box(depth + 1)) + 1
}

/// Recurses `levels` calls deep. Each level's result mixes the one below in a way no compiler
/// turns into a loop, and nothing here lives in linear memory (no shadow-stack frame), so the
/// depth it reaches is bounded by the host's Wasm stack limit alone.
#[inline(never)]
fn descend(levels: u64, salt: &[u8]) -> u64 {
    if levels == 0 {
        return salt.len() as u64;
    }
    let below = descend(levels - 1, salt);
    below.rotate_left((levels % 63) as u32) ^ levels
}

fn pair(arg: &str) -> Result<(&str, &str), String> {
    arg.split_once('=').ok_or_else(|| format!("hostile: expected <k>=<v>, got {arg:?}"))
}

fn number(arg: &str) -> Result<usize, String> {
    arg.parse().map_err(|_| format!("hostile: expected a number, got {arg:?}"))
}

fn word(w: &str) -> &[u8] {
    if w == "-" { b"" } else { w.as_bytes() }
}

/// Runs store ops against the write store (apply) or the read store (query).
fn script(ops: &str, mut write: Option<&mut dyn Store>, read: Option<&dyn ReadStore>) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for op in ops.split(';').filter(|op| !op.trim().is_empty()) {
        let words: Vec<&str> = op.split_whitespace().collect();
        let reader: &dyn ReadStore = match (&write, read) {
            (Some(w), _) => &**w,
            (None, Some(r)) => r,
            (None, None) => return Err("hostile: no store".into()),
        };
        let line = match words.as_slice() {
            ["get", k] => {
                reader.get(word(k)).map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_else(|| "none".into())
            }
            ["scan", start, end, limit, dir] => {
                let limit = number(limit)? as u32;
                let page = reader.scan_page(word(start), word(end), limit, *dir == "rev");
                let pairs: Vec<String> = page
                    .iter()
                    .map(|(k, v)| format!("{}={}", String::from_utf8_lossy(k), String::from_utf8_lossy(v)))
                    .collect();
                pairs.join(",")
            }
            ["put", k, v] => {
                write.as_deref_mut().ok_or("hostile: put in a query script")?.put(word(k), word(v));
                "put".into()
            }
            ["del", k] => {
                write.as_deref_mut().ok_or("hostile: del in a query script")?.delete(word(k));
                "del".into()
            }
            ["bigput", klen, vlen] => {
                let (k, v) = (vec![b'k'; number(klen)?], vec![b'v'; number(vlen)?]);
                write.as_deref_mut().ok_or("hostile: bigput in a query script")?.put(&k, &v);
                "bigput".into()
            }
            ["emit", len] => {
                let event = vec![b'e'; number(len)?];
                write.as_deref_mut().ok_or("hostile: emit in a query script")?.emit(&event);
                "emit".into()
            }
            ["madd", name, delta] => {
                let delta = delta.parse().map_err(|_| format!("hostile: bad delta {delta:?}"))?;
                write.as_deref_mut().ok_or("hostile: madd in a query script")?.metric_add(name, delta);
                "madd".into()
            }
            ["mset", name, value] => {
                let value = value.parse().map_err(|_| format!("hostile: bad value {value:?}"))?;
                write.as_deref_mut().ok_or("hostile: mset in a query script")?.metric_set(name, value);
                "mset".into()
            }
            ["fail"] => return Err("hostile: failed as scripted".into()),
            ["pad", len] => "x".repeat(number(len)?),
            _ => return Err(format!("hostile: bad script op {op:?}")),
        };
        out.push(line);
    }
    Ok(out.join("\n").into_bytes())
}

wasmraft_guest_sdk::export_guest!(Hostile);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmraft_guest_sdk::testing::Harness;

    #[test]
    fn script_merges_writes_of_the_same_entry() {
        let mut h = Harness::<Hostile>::new();
        h.apply(b"ok:a=1").unwrap();
        h.apply(b"ok:c=3").unwrap();
        let out = h.apply(b"script:put b 2;del c;scan - - 0 fwd;scan - - 0 rev").unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "put\ndel\na=1,b=2\nb=2,a=1");
        assert!(h.apply(b"put-then-err").is_err());
        assert_eq!(h.query(b"script:get err").unwrap(), b"none");
    }

    #[test]
    fn global_put_counts_up_when_the_instance_is_reused() {
        // Natively the static lives on between calls, which is exactly the state a host must not
        // let through: on wasmraft every entry gets a fresh instance and stores `1`.
        let mut h = Harness::<Hostile>::new();
        let first: u64 = String::from_utf8(h.apply(b"global-put:g1").unwrap()).unwrap().parse().unwrap();
        let second: u64 = String::from_utf8(h.apply(b"global-put:g2").unwrap()).unwrap().parse().unwrap();
        assert!(second > first, "the static must carry over natively: {first} then {second}");
        assert_eq!(h.query(b"script:get g2").unwrap(), second.to_string().into_bytes());
    }

    #[test]
    fn emit_and_pad_script_ops() {
        let mut h = Harness::<Hostile>::new();
        assert_eq!(h.apply(b"script:put a 1;emit 3;pad 4").unwrap(), b"put\nemit\nxxxx");
        assert!(h.query(b"script:emit 3").is_err(), "a query cannot emit");
    }
}
