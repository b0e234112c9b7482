//! # wasmraft-ledger-guest
//!
//! An account ledger whose invariant holds on every member after every entry: money is neither
//! created nor destroyed by transfers (the total of all balances changes only when an account is
//! opened), and no balance is ever negative. Balances are `u64`, and a transfer that would
//! overdraw its source is refused as a whole — the entry's writes are rolled back.
//!
//! ## Commands (`apply`, UTF-8, space-separated words)
//!
//! | command | effect | returns |
//! |---|---|---|
//! | `open <account> <initial>` | creates `account` with balance `initial` (≥ 0) | `<initial>` |
//! | `transfer <from> <to> <amount>` | moves `amount` (> 0) from `from` to `to` | `<from balance> <to balance>` after the transfer |
//!
//! Refusals are `Err` texts starting with `ledger: `: an account that already exists (`open`) or
//! does not (`transfer`), a transfer to the same account, a zero or malformed amount, and
//! insufficient funds (`ledger: insufficient funds: a has 5, transfer needs 10`). Account names
//! are non-empty words of at most 256 bytes.
//!
//! Events: `open <account> <initial>` and `transfer <from> <to> <amount>`.
//!
//! ## Queries (`query`, UTF-8)
//!
//! - `balance <account>`: its balance in decimal (an `Err` if unknown).
//! - `total`: the sum of all balances, computed by scanning every account.
//! - `accounts`: one line `<account> <balance>` per account, in name order.
//!
//! ## Storage
//!
//! One key per account, `a/<account>`, holding the balance in decimal.
//!
//! ```
//! use wasmraft_ledger_guest::Ledger;
//! let mut h = wasmraft_guest_sdk::testing::Harness::<Ledger>::new();
//! h.apply(b"open alice 100").unwrap();
//! h.apply(b"open bob 0").unwrap();
//! assert_eq!(h.apply(b"transfer alice bob 30").unwrap(), b"70 30");
//! assert!(h.apply(b"transfer bob alice 31").unwrap_err().contains("insufficient funds"));
//! assert_eq!(h.query(b"total").unwrap(), b"100");
//! ```

use wasmraft_guest_sdk::{ApplyContext, GuestInfo, ReadStore, StateMachine, Store};

/// The ledger state machine.
pub struct Ledger;

const PREFIX: &[u8] = b"a/";
const MAX_NAME: usize = 256;

impl StateMachine for Ledger {
    fn info() -> GuestInfo {
        GuestInfo::new("ledger", "1.0.0")
    }

    fn apply(_ctx: &ApplyContext, store: &mut dyn Store, command: &[u8]) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(command).map_err(|_| "ledger: command is not UTF-8".to_string())?;
        match text.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["open", account, initial] => {
                let account = name(account)?;
                let initial = amount(initial)?;
                if balance(store, account)?.is_some() {
                    return Err(format!("ledger: account {account} already exists"));
                }
                store.put(&key(account), initial.to_string().as_bytes());
                store.emit(format!("open {account} {initial}").as_bytes());
                Ok(initial.to_string().into_bytes())
            }
            ["transfer", from, to, value] => {
                let (from, to) = (name(from)?, name(to)?);
                let value = amount(value)?;
                if value == 0 {
                    return Err("ledger: transfer amount must be positive".into());
                }
                if from == to {
                    return Err(format!("ledger: cannot transfer from {from} to itself"));
                }
                let known = |b: Option<u64>, a: &str| b.ok_or_else(|| format!("ledger: unknown account {a}"));
                let from_balance = known(balance(store, from)?, from)?;
                let to_balance = known(balance(store, to)?, to)?;
                let from_after = from_balance.checked_sub(value).ok_or_else(|| {
                    format!("ledger: insufficient funds: {from} has {from_balance}, transfer needs {value}")
                })?;
                let to_after =
                    to_balance.checked_add(value).ok_or_else(|| format!("ledger: balance of {to} would overflow"))?;
                store.put(&key(from), from_after.to_string().as_bytes());
                store.put(&key(to), to_after.to_string().as_bytes());
                store.emit(format!("transfer {from} {to} {value}").as_bytes());
                Ok(format!("{from_after} {to_after}").into_bytes())
            }
            _ => Err(format!(
                "ledger: unknown command {text:?}; expected `open <account> <initial>` or `transfer <from> <to> <amount>`"
            )),
        }
    }

    fn query(store: &dyn ReadStore, request: &[u8]) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(request).map_err(|_| "ledger: query is not UTF-8".to_string())?;
        match text.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["balance", account] => {
                let account = name(account)?;
                let b = balance(store, account)?.ok_or_else(|| format!("ledger: unknown account {account}"))?;
                Ok(b.to_string().into_bytes())
            }
            ["total"] => {
                let mut total: u128 = 0;
                for (_, b) in accounts(store)? {
                    total += u128::from(b);
                }
                Ok(total.to_string().into_bytes())
            }
            ["accounts"] => {
                let mut out = String::new();
                for (a, b) in accounts(store)? {
                    out.push_str(&format!("{a} {b}\n"));
                }
                Ok(out.into_bytes())
            }
            _ => Err(format!("ledger: unknown query {text:?}; expected `balance <account>`, `total` or `accounts`")),
        }
    }
}

fn name(a: &str) -> Result<&str, String> {
    if a.is_empty() || a.len() > MAX_NAME {
        return Err(format!("ledger: account names are 1..={MAX_NAME} bytes"));
    }
    Ok(a)
}

fn amount(s: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("ledger: amount {s:?} is not a non-negative decimal integer"))
}

fn key(account: &str) -> Vec<u8> {
    [PREFIX, account.as_bytes()].concat()
}

fn parse_balance(v: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("ledger: stored balance {:?} is corrupt", String::from_utf8_lossy(v)))
}

fn balance(store: &(impl ReadStore + ?Sized), account: &str) -> Result<Option<u64>, String> {
    store.get(&key(account)).map(|v| parse_balance(&v)).transpose()
}

/// Every account and its balance, in name order, paged through the store.
fn accounts(store: &(impl ReadStore + ?Sized)) -> Result<Vec<(String, u64)>, String> {
    let end = wasmraft_guest_sdk::prefix_end(PREFIX);
    let mut start = PREFIX.to_vec();
    let mut out = Vec::new();
    loop {
        let page = store.scan_page(&start, &end, 0, false);
        let Some((last, _)) = page.last() else { break };
        start = [last.as_slice(), b"\0"].concat();
        for (k, v) in page {
            out.push((String::from_utf8_lossy(&k[PREFIX.len()..]).into_owned(), parse_balance(&v)?));
        }
    }
    Ok(out)
}

wasmraft_guest_sdk::export_guest!(Ledger);
