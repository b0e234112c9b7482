//! The value syntax of Go's `flag` package, which etcd's command line is built on, so a command
//! line that etcd accepts means the same to wasmraft: booleans as `strconv.ParseBool` reads them
//! (`--flag`, `--flag=true`, `=1`, `=t`, `=F`, …; never a separate `true` word), integers as
//! `strconv.ParseUint(s, 0, …)` reads them (`0x10`, `0o17`, `010` is octal, `1_000`), and the
//! single-dash long flags Go takes as well (`-name m1` is `--name m1`; etcd's older docs and many
//! unit files use that form).
//!
//! clap's own parsers differ on each point (`--flag=1` is an error, `010` is ten, `-name` is a
//! cluster of short flags), which is why the flags name these parsers.

use std::collections::HashSet;
use std::ffi::OsString;

/// `strconv.ParseBool`.
pub fn go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("parse error: invalid boolean value {s:?}")),
    }
}

/// A path flag: Go's string flags take an empty value (`--cert-file=`) as "not set", which
/// clap's path parser refuses; the resolution treats an empty path as unset.
pub fn go_path(s: &str) -> Result<std::path::PathBuf, String> {
    Ok(s.into())
}

/// Go's `uint` flag (64 bits on the platforms wasmraft runs on).
pub fn go_u64(s: &str) -> Result<u64, String> {
    parse_unsigned(s, u64::MAX)
}

/// Go's `uint32`-valued flags (etcd's `Uint32Value`, e.g. --max-concurrent-streams).
pub fn go_u32(s: &str) -> Result<u32, String> {
    parse_unsigned(s, u32::MAX.into()).map(|v| v as u32)
}

/// Go's `uint` flag, into a size.
pub fn go_usize(s: &str) -> Result<usize, String> {
    parse_unsigned(s, usize::MAX as u64).map(|v| v as usize)
}

/// Go's `int` and `int64` flags.
pub fn go_i64(s: &str) -> Result<i64, String> {
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let limit = if negative { i64::MIN.unsigned_abs() } else { i64::MAX as u64 };
    let magnitude = parse_unsigned(digits, limit).map_err(|e| e.replace(&format!("{digits:?}"), &format!("{s:?}")))?;
    Ok(if negative { 0i64.wrapping_sub_unsigned(magnitude) } else { magnitude as i64 })
}

/// `strconv.ParseUint(s, 0, bits)`: the base from the prefix, `_` between digits.
fn parse_unsigned(s: &str, max: u64) -> Result<u64, String> {
    let syntax = || format!("parse error: invalid syntax {s:?}");
    let lower = s.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d, true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d, true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..], true)
    } else {
        (10, lower.as_str(), false)
    };
    if !underscores_ok(digits, prefixed) {
        return Err(syntax());
    }
    let digits: String = digits.chars().filter(|&c| c != '_').collect();
    if digits.is_empty() {
        return Err(syntax());
    }
    let mut value: u64 = 0;
    for c in digits.chars() {
        let d = c.to_digit(radix).ok_or_else(syntax)?;
        value = value
            .checked_mul(radix.into())
            .and_then(|v| v.checked_add(d.into()))
            .filter(|&v| v <= max)
            .ok_or_else(|| format!("parse error: value out of range {s:?}"))?;
    }
    Ok(value)
}

/// Go's rule: `_` only between digits, or right after a base prefix.
fn underscores_ok(digits: &str, prefixed: bool) -> bool {
    if !digits.contains('_') {
        return true;
    }
    let bytes = digits.as_bytes();
    let starts_ok = prefixed || bytes.first() != Some(&b'_');
    starts_ok && bytes.last() != Some(&b'_') && !digits.contains("__")
}

/// Rewrites Go's single-dash long flags (`-name`, `-name=m1`) into clap's `--name`, for the names
/// in `long_names` only: anything else (`-h`, a value such as `-1`) is left for clap to judge.
/// Nothing after `--` is touched.
pub fn normalize_single_dash(args: Vec<OsString>, long_names: &HashSet<String>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut rest = args.into_iter();
    if let Some(program) = rest.next() {
        out.push(program);
    }
    for arg in rest.by_ref() {
        let rewritten = arg.to_str().and_then(|text| {
            let name = text.strip_prefix('-').filter(|t| !t.starts_with('-'))?.split('=').next()?;
            long_names.contains(name).then(|| OsString::from(format!("-{text}")))
        });
        let end = arg == "--";
        out.push(rewritten.unwrap_or(arg));
        if end {
            break;
        }
    }
    out.extend(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_as_strconv_reads_them() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(go_bool(t), Ok(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(go_bool(f), Ok(false), "{f}");
        }
        assert!(go_bool("yes").is_err());
        assert!(go_bool("").is_err());
    }

    #[test]
    fn integers_with_go_prefixes() {
        assert_eq!(go_u64("100"), Ok(100));
        assert_eq!(go_u64("0x10"), Ok(16));
        assert_eq!(go_u64("0X1f"), Ok(31));
        assert_eq!(go_u64("010"), Ok(8), "a leading 0 is octal in Go");
        assert_eq!(go_u64("0o17"), Ok(15));
        assert_eq!(go_u64("0b101"), Ok(5));
        assert_eq!(go_u64("1_000"), Ok(1000));
        assert_eq!(go_u64("0"), Ok(0));
        assert!(go_u64("08").is_err());
        assert!(go_u64("_1").is_err());
        assert!(go_u64("1__0").is_err());
        assert!(go_u64("1_").is_err());
        assert!(go_u64("-1").is_err());
        assert!(go_u64("").is_err());
        assert!(go_u64("18446744073709551616").unwrap_err().contains("out of range"));
        assert_eq!(go_u32("4294967295"), Ok(u32::MAX));
        assert!(go_u32("4294967296").unwrap_err().contains("out of range"));
        assert_eq!(go_i64("-5"), Ok(-5));
        assert_eq!(go_i64("+0x10"), Ok(16));
        assert_eq!(go_i64("-9223372036854775808"), Ok(i64::MIN));
        assert!(go_i64("9223372036854775808").is_err());
    }

    #[test]
    fn single_dash_long_flags() {
        let names: HashSet<String> = ["name", "data-dir", "debug"].iter().map(|s| s.to_string()).collect();
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            normalize_single_dash(args(&["etcd", "-name", "m1", "-data-dir=/d", "-debug", "--x", "-h"]), &names),
            args(&["etcd", "--name", "m1", "--data-dir=/d", "--debug", "--x", "-h"])
        );
        assert_eq!(normalize_single_dash(args(&["etcd", "--", "-name"]), &names), args(&["etcd", "--", "-name"]));
    }
}
