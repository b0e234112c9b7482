//! # wasmraft-locks-guest
//!
//! A lock and semaphore service with fencing tokens. Each lock name has `N` permits (`N = 1`: a
//! mutex). A holder acquires a permit for a time-to-live and gets a *fencing token*: a number
//! that is strictly greater than every token issued for that name before, whether the earlier
//! holders released, expired or are still holding. A resource protected by the lock remembers
//! the highest token it has seen and refuses requests carrying a lower one, so a holder that
//! stalled past its lease cannot overwrite the work of the next one.
//!
//! ## Time
//!
//! Leases expire by the *proposer's* clock: the only time a guest sees is
//! `ApplyContext::time_unix_ms`, identical on every member. The guest keeps the highest proposer
//! time it has applied (`clock`) and uses `max(ctx.time_unix_ms, clock)` as "now", so a new
//! leader whose clock is behind the old one's cannot bring an expired lease back to life.
//! Expired permits are reclaimed lazily, by the next `acquire` of the same name.
//!
//! ## Commands (`apply`, UTF-8, space-separated words)
//!
//! | command | effect | returns |
//! |---|---|---|
//! | `acquire <name> <holder> <ttl_ms> [permits]` | takes a permit of `name` (capacity `permits`, default 1) for `ttl_ms` (> 0) milliseconds; if `holder` already holds a live permit, renews it and keeps its token | `token <t> expires <unix_ms>` |
//! | `release <name> <holder> <token>` | returns the permit `holder` acquired with `token` | `released <t>` |
//!
//! Refusals are `Err` texts that start with `locks: ` and name the reason: all permits taken (with
//! the current holders), a capacity that differs from the one the live holders acquired with, a
//! release by a non-holder, with a stale token, or after the lease expired. Names and holders are
//! any non-empty words without NUL, at most 256 bytes.
//!
//! Events: `acquired <name> <holder> <token> <expires>`, `renewed …`, `released <name> <holder>
//! <token>`, `expired <name> <holder> <token>` (emitted when an expired permit is reclaimed).
//!
//! ## Queries (`query`, UTF-8)
//!
//! - `token <name>`: the last fencing token issued for `name` (`0` if none).
//! - `holders <name>`: a first line `permits=<n> token=<last> clock=<unix_ms>`, then one line
//!   `<holder> <token> <expires>` per permit not yet expired as of `clock` (the time of the last
//!   applied entry; a query has no clock of its own).
//!
//! ## Storage
//!
//! | key | value |
//! |---|---|
//! | `clock` | highest applied proposer time, decimal |
//! | `l/<name>` | `<permits> <last token>`; never deleted, so tokens never restart |
//! | `h/<name>\0<holder>` | `<token> <expires_unix_ms>` |
//!
//! ```
//! use wasmraft_locks_guest::Locks;
//! let mut h = wasmraft_guest_sdk::testing::Harness::<Locks>::new();
//! let granted = String::from_utf8(h.apply(b"acquire db alice 1000").unwrap()).unwrap();
//! assert!(granted.starts_with("token 1 expires "));
//! assert!(h.apply(b"acquire db bob 1000").unwrap_err().contains("held"));
//! assert_eq!(h.apply(b"release db alice 1").unwrap(), b"released 1");
//! assert!(h.apply(b"acquire db bob 1000").unwrap().starts_with(b"token 2 "));
//! ```

use wasmraft_guest_sdk::{ApplyContext, GuestInfo, ReadStore, StateMachine, Store};

/// The lock service state machine.
pub struct Locks;

const CLOCK: &[u8] = b"clock";
const MAX_WORD: usize = 256;

impl StateMachine for Locks {
    fn info() -> GuestInfo {
        GuestInfo::new("locks", "1.0.0")
    }

    fn apply(ctx: &ApplyContext, store: &mut dyn Store, command: &[u8]) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(command).map_err(|_| "locks: command is not UTF-8".to_string())?;
        let words: Vec<&str> = text.split_whitespace().collect();
        let now = ctx.time_unix_ms.max(read_u64(store, CLOCK)?.unwrap_or(0));
        store.put(CLOCK, now.to_string().as_bytes());
        match words.as_slice() {
            ["acquire", name, holder, ttl] => acquire(store, now, name, holder, ttl, "1"),
            ["acquire", name, holder, ttl, permits] => acquire(store, now, name, holder, ttl, permits),
            ["release", name, holder, token] => release(store, now, name, holder, token),
            _ => Err(format!(
                "locks: unknown command {text:?}; expected `acquire <name> <holder> <ttl_ms> [permits]` or `release <name> <holder> <token>`"
            )),
        }
    }

    fn query(store: &dyn ReadStore, request: &[u8]) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(request).map_err(|_| "locks: query is not UTF-8".to_string())?;
        match text.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["token", name] => {
                let name = word("name", name)?;
                Ok(meta(store, name)?.map_or(0, |m| m.1).to_string().into_bytes())
            }
            ["holders", name] => {
                let name = word("name", name)?;
                let clock = read_u64(store, CLOCK)?.unwrap_or(0);
                let (permits, last) = meta(store, name)?.unwrap_or((0, 0));
                let mut out = format!("permits={permits} token={last} clock={clock}\n");
                for (holder, token, expires) in holders(store, name)? {
                    if expires > clock {
                        out.push_str(&format!("{holder} {token} {expires}\n"));
                    }
                }
                Ok(out.into_bytes())
            }
            _ => Err(format!("locks: unknown query {text:?}; expected `token <name>` or `holders <name>`")),
        }
    }
}

fn acquire(
    store: &mut dyn Store,
    now: u64,
    name: &str,
    holder: &str,
    ttl: &str,
    permits: &str,
) -> Result<Vec<u8>, String> {
    let (name, holder) = (word("name", name)?, word("holder", holder)?);
    let ttl = number("ttl_ms", ttl)?;
    let permits = number("permits", permits)?;
    if ttl == 0 || permits == 0 {
        return Err("locks: ttl_ms and permits must be at least 1".into());
    }
    let expires = now.checked_add(ttl).ok_or_else(|| format!("locks: ttl_ms {ttl} is too large"))?;
    let (old_permits, last) = meta(store, name)?.unwrap_or((permits, 0));

    // Reclaim expired permits; the rest are live.
    let mut live = Vec::new();
    for (h, token, exp) in holders(store, name)? {
        if exp <= now {
            store.delete(&holder_key(name, &h));
            store.emit(format!("expired {name} {h} {token}").as_bytes());
        } else {
            live.push((h, token, exp));
        }
    }
    if !live.is_empty() && permits != old_permits {
        return Err(format!("locks: lock {name} has {old_permits} permit(s) while held; acquire asked for {permits}"));
    }
    if let Some((_, token, _)) = live.iter().find(|(h, _, _)| h == holder) {
        let token = *token;
        store.put(&holder_key(name, holder), format!("{token} {expires}").as_bytes());
        store.emit(format!("renewed {name} {holder} {token} {expires}").as_bytes());
        return Ok(format!("token {token} expires {expires}").into_bytes());
    }
    if live.len() as u64 >= permits {
        let held: Vec<String> = live.iter().map(|(h, t, e)| format!("{h} (token {t}, until {e})")).collect();
        return Err(format!("locks: lock {name} is held: all {permits} permit(s) taken by {}", held.join(", ")));
    }
    let token = last.checked_add(1).ok_or_else(|| format!("locks: lock {name} ran out of fencing tokens"))?;
    store.put(&meta_key(name), format!("{permits} {token}").as_bytes());
    store.put(&holder_key(name, holder), format!("{token} {expires}").as_bytes());
    store.emit(format!("acquired {name} {holder} {token} {expires}").as_bytes());
    Ok(format!("token {token} expires {expires}").into_bytes())
}

fn release(store: &mut dyn Store, now: u64, name: &str, holder: &str, token: &str) -> Result<Vec<u8>, String> {
    let (name, holder) = (word("name", name)?, word("holder", holder)?);
    let token = number("token", token)?;
    let key = holder_key(name, holder);
    let Some(record) = store.get(&key) else {
        return Err(format!("locks: {holder} holds no permit of lock {name}"));
    };
    let (held, expires) = parse_pair(&record)?;
    if held != token {
        return Err(format!("locks: stale fencing token {token} for lock {name}: {holder} holds token {held}"));
    }
    if expires <= now {
        return Err(format!(
            "locks: {holder}'s lease on lock {name} (token {token}) expired at {expires}, now is {now}"
        ));
    }
    store.delete(&key);
    store.emit(format!("released {name} {holder} {token}").as_bytes());
    Ok(format!("released {token}").into_bytes())
}

fn word<'a>(what: &str, w: &'a str) -> Result<&'a str, String> {
    if w.is_empty() || w.len() > MAX_WORD || w.contains('\0') {
        return Err(format!("locks: {what} must be 1..={MAX_WORD} bytes without NUL"));
    }
    Ok(w)
}

fn number(what: &str, s: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("locks: {what} {s:?} is not a non-negative decimal integer"))
}

fn meta_key(name: &str) -> Vec<u8> {
    [b"l/", name.as_bytes()].concat()
}

fn holders_prefix(name: &str) -> Vec<u8> {
    [b"h/", name.as_bytes(), b"\0"].concat()
}

fn holder_key(name: &str, holder: &str) -> Vec<u8> {
    [holders_prefix(name), holder.as_bytes().to_vec()].concat()
}

fn meta(store: &(impl ReadStore + ?Sized), name: &str) -> Result<Option<(u64, u64)>, String> {
    store.get(&meta_key(name)).map(|v| parse_pair(&v)).transpose()
}

/// Every permit record of `name`, expired or not: (holder, token, expires).
fn holders(store: &(impl ReadStore + ?Sized), name: &str) -> Result<Vec<(String, u64, u64)>, String> {
    let prefix = holders_prefix(name);
    let end = wasmraft_guest_sdk::prefix_end(&prefix);
    let mut out = Vec::new();
    let mut start = prefix.clone();
    loop {
        let page = store.scan_page(&start, &end, 0, false);
        let Some((last, _)) = page.last() else { break };
        start = [last.as_slice(), b"\0"].concat();
        for (k, v) in page {
            let holder = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let (token, expires) = parse_pair(&v)?;
            out.push((holder, token, expires));
        }
    }
    Ok(out)
}

fn parse_pair(v: &[u8]) -> Result<(u64, u64), String> {
    let corrupt = || format!("locks: stored record {:?} is corrupt", String::from_utf8_lossy(v));
    let s = std::str::from_utf8(v).map_err(|_| corrupt())?;
    let (a, b) = s.split_once(' ').ok_or_else(corrupt)?;
    Ok((a.parse().map_err(|_| corrupt())?, b.parse().map_err(|_| corrupt())?))
}

fn read_u64(store: &(impl ReadStore + ?Sized), key: &[u8]) -> Result<Option<u64>, String> {
    store
        .get(key)
        .map(|v| {
            std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| "locks: stored clock is corrupt".to_string())
        })
        .transpose()
}

wasmraft_guest_sdk::export_guest!(Locks);
