//! # wasmraft-counter-guest
//!
//! The hello world of wasmraft guests: one replicated signed 64-bit counter.
//!
//! ## Commands (`apply`, UTF-8 text)
//!
//! | command   | effect                                    | returns            |
//! |-----------|-------------------------------------------|--------------------|
//! | `add <n>` | adds the non-negative decimal `n`         | the new value      |
//! | `sub <n>` | subtracts the non-negative decimal `n`    | the new value      |
//!
//! Every change emits one event, `<old> -> <new>` (e.g. `3 -> 8`). An unknown command, a bad
//! number or an overflow past `i64` is an `Err` and changes nothing.
//!
//! ## Queries (`query`, UTF-8 text)
//!
//! `get` (or an empty request) returns the current value in decimal; it is `0` before the first
//! command.
//!
//! ## Storage
//!
//! One key, `count`, holding the value in decimal. Nothing else: every entry runs in a fresh
//! instance, so the store is the only memory the guest has.
//!
//! ```
//! use wasmraft_counter_guest::Counter;
//! let mut h = wasmraft_guest_sdk::testing::Harness::<Counter>::new();
//! assert_eq!(h.apply(b"add 5").unwrap(), b"5");
//! assert_eq!(h.apply(b"sub 7").unwrap(), b"-2");
//! assert_eq!(h.query(b"get").unwrap(), b"-2");
//! ```

use wasmraft_guest_sdk::{ApplyContext, GuestInfo, ReadStore, StateMachine, Store};

/// The counter state machine.
pub struct Counter;

const KEY: &[u8] = b"count";

impl StateMachine for Counter {
    fn info() -> GuestInfo {
        GuestInfo::new("counter", "1.0.0")
    }

    fn apply(_ctx: &ApplyContext, store: &mut dyn Store, command: &[u8]) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(command).map_err(|_| "counter: command is not UTF-8".to_string())?;
        let mut words = text.split_whitespace();
        let (op, arg) = (words.next().unwrap_or(""), words.next());
        if words.next().is_some() {
            return Err(format!("counter: too many arguments in {text:?}; expected `add <n>` or `sub <n>`"));
        }
        let amount = |arg: Option<&str>| -> Result<i64, String> {
            let arg = arg.ok_or_else(|| format!("counter: `{op}` needs a number, e.g. `{op} 5`"))?;
            arg.parse::<u64>()
                .ok()
                .and_then(|n| i64::try_from(n).ok())
                .ok_or_else(|| format!("counter: {arg:?} is not a non-negative decimal integer up to {}", i64::MAX))
        };
        let old = read(store)?;
        let new = match op {
            "add" => old.checked_add(amount(arg)?),
            "sub" => old.checked_sub(amount(arg)?),
            _ => return Err(format!("counter: unknown command {text:?}; expected `add <n>` or `sub <n>`")),
        }
        .ok_or_else(|| format!("counter: {text} would overflow the counter (now {old})"))?;
        store.put(KEY, new.to_string().as_bytes());
        store.emit(format!("{old} -> {new}").as_bytes());
        Ok(new.to_string().into_bytes())
    }

    fn query(store: &dyn ReadStore, request: &[u8]) -> Result<Vec<u8>, String> {
        match std::str::from_utf8(request).map(str::trim) {
            Ok("get") | Ok("") => Ok(read(store)?.to_string().into_bytes()),
            _ => Err(format!("counter: unknown query {:?}; expected `get`", String::from_utf8_lossy(request))),
        }
    }
}

fn read(store: &(impl ReadStore + ?Sized)) -> Result<i64, String> {
    match store.get(KEY) {
        None => Ok(0),
        Some(v) => std::str::from_utf8(&v)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("counter: stored value {:?} is corrupt", String::from_utf8_lossy(&v))),
    }
}

wasmraft_guest_sdk::export_guest!(Counter);
