//! `--config-file`: etcd 3.4's YAML configuration file (embed.Config's `configYAML`), read into
//! the same flags the command line sets, so one set of checks and defaults serves both.
//!
//! The keys are the flags' names (`name`, `data-dir`, `listen-client-urls`, …), matched as Go's
//! `encoding/json` matches them (exactly, else ignoring ASCII case), plus etcd's two TLS blocks,
//! `client-transport-security:` and `peer-transport-security:` {cert-file, key-file,
//! client-cert-auth, trusted-ca-file, auto-tls; and etcd 3.5's allowed-cn / allowed-hostname and
//! crl-file}. As in etcd, the TLS flags are not top-level keys, durations are integers of
//! nanoseconds, `cipher-suites` and `log-outputs` are lists, `cors` and `host-whitelist` are
//! comma-separated strings, a null value keeps the default, a repeated key's last value counts,
//! and unknown keys are ignored (etcd ignores them silently; wasmraft warns, naming the line).
//!
//! Where etcd would refuse and the meaning is plain, wasmraft accepts: a duration may also be a
//! Go duration string (`5s`), a number or boolean may stand for a string key
//! (`auto-compaction-retention: 1`), a single string for a list. Every error names the key and
//! its line, which etcd's does not.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use clap::Command;
use saphyr::{MarkedYaml, ScalarStyle, YamlData, YamlLoader};

use super::load::Note;

/// A value from the file, as the flag it sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileValue {
    /// The flag's name (`data-dir`); the key in the file, for the TLS blocks its path.
    pub flag: String,
    pub key: String,
    /// 1-based.
    pub line: usize,
    pub value: String,
}

impl FileValue {
    /// The command-line argument with the same meaning.
    pub fn arg(&self) -> String {
        format!("--{}={}", self.flag, self.value)
    }
}

/// How a key's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A string or number, passed as written.
    Scalar,
    Bool,
    /// Go's `time.Duration` through JSON: integer nanoseconds.
    Duration,
    /// A YAML list, joined with commas as the flag takes it.
    List,
    /// `client-transport-security` / `peer-transport-security`.
    Tls(Side),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Peer,
}

/// Keys whose Go type is `time.Duration`.
const DURATIONS: &[&str] = &[
    "backend-batch-interval",
    "grpc-keepalive-min-time",
    "grpc-keepalive-interval",
    "grpc-keepalive-timeout",
    "experimental-corrupt-check-time",
    "experimental-watch-progress-notify-interval",
    "experimental-warning-apply-duration",
];

/// Keys whose Go type is `[]string`.
const LISTS: &[&str] = &["cipher-suites", "log-outputs", "log-output"];

/// Flags etcd 3.4 does not read from a file: the TLS ones have no YAML tag (they are set through
/// the two blocks), the rest select the file or print something.
const NOT_IN_FILE: &[&str] = &[
    "config-file",
    "version",
    "cert-file",
    "key-file",
    "client-cert-auth",
    "client-crl-file",
    "client-cert-allowed-hostname",
    "trusted-ca-file",
    "auto-tls",
    "peer-cert-file",
    "peer-key-file",
    "peer-client-cert-auth",
    "peer-trusted-ca-file",
    "peer-auto-tls",
    "peer-crl-file",
    "peer-cert-allowed-cn",
    "peer-cert-allowed-hostname",
    "experimental-peer-skip-client-san-verification",
];

/// A TLS block's keys → the flag each sets, for the client and the peer side.
const TLS_KEYS: &[(&str, &str, &str)] = &[
    ("cert-file", "cert-file", "peer-cert-file"),
    ("key-file", "key-file", "peer-key-file"),
    ("client-cert-auth", "client-cert-auth", "peer-client-cert-auth"),
    ("trusted-ca-file", "trusted-ca-file", "peer-trusted-ca-file"),
    ("auto-tls", "auto-tls", "peer-auto-tls"),
    ("crl-file", "client-crl-file", "peer-crl-file"),
    ("allowed-cn", "", "peer-cert-allowed-cn"),
    ("allowed-hostname", "client-cert-allowed-hostname", "peer-cert-allowed-hostname"),
];

/// The keys a file may hold, from the member's flags (`cmd`, see `load::member_command`).
fn keys(cmd: &Command) -> HashMap<String, Kind> {
    let mut keys: HashMap<String, Kind> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !NOT_IN_FILE.contains(l) && !super::load::is_extra(l))
        .map(|l| {
            let arg = cmd.get_arguments().find(|a| a.get_long() == Some(l));
            // Go's boolean flags are the ones that may stand without a value.
            let is_bool = arg.and_then(|a| a.get_num_args()).is_some_and(|n| n.min_values() == 0);
            let kind = if DURATIONS.contains(&l) {
                Kind::Duration
            } else if LISTS.contains(&l) {
                Kind::List
            } else if is_bool {
                Kind::Bool
            } else {
                Kind::Scalar
            };
            (l.to_string(), kind)
        })
        .collect();
    keys.insert("client-transport-security".into(), Kind::Tls(Side::Client));
    keys.insert("peer-transport-security".into(), Kind::Tls(Side::Peer));
    keys
}

/// Reads `path` into flag values, with warnings for what it ignores.
pub fn read(path: &Path, cmd: &Command) -> anyhow::Result<(Vec<FileValue>, Vec<Note>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("open {}", path.display()))?;
    parse(&text, &path.display().to_string(), cmd)
}

/// [`read`] on the file's text; `name` is how errors and warnings refer to the file.
pub fn parse(text: &str, name: &str, cmd: &Command) -> anyhow::Result<(Vec<FileValue>, Vec<Note>)> {
    let mut loader: YamlLoader<'_, MarkedYaml<'_>> = YamlLoader::default();
    // Scalars as written: a string key keeps `010` and `1.50` as they are, and booleans follow
    // YAML 1.1 (go-yaml's) rather than 1.2.
    loader.early_parse(false);
    // go-yaml v2, which etcd 3.4 reads the file with, lets a repeated key's last value win.
    loader.allow_duplicate_keys(true);
    let mut parser = saphyr_parser::Parser::new_from_str(text);
    let scanned = parser.load(&mut loader, false).err().or_else(|| loader.error().cloned());
    if let Some(e) = scanned {
        bail!("{name}: line {}: {}", e.marker().line(), e.info());
    }
    let Some(doc) = loader.into_documents().into_iter().next() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let map = match &doc.data {
        YamlData::Mapping(m) => m,
        _ if is_null(&doc) => return Ok((Vec::new(), Vec::new())),
        _ => bail!("{name}: line {}: the configuration must be a mapping of keys to values", doc.span.start.line()),
    };
    let known = keys(cmd);
    let mut values = Vec::new();
    let mut notes = Vec::new();
    for (k, v) in map {
        let line = k.span.start.line();
        let Some(key) = scalar(k) else {
            notes.push(Note::warn(format!("etcdmain: {name}: line {line}: a key that is not a string is ignored")));
            continue;
        };
        let Some((flag, kind)) = lookup(&known, key) else {
            let hint = if NOT_IN_FILE.contains(&key) {
                " (etcd 3.4 reads TLS settings only under client-transport-security / peer-transport-security)"
            } else {
                ""
            };
            notes.push(Note::warn(format!(
                "etcdmain: {name}: line {line}: unknown key {key:?} is ignored, as etcd ignores it{hint}"
            )));
            continue;
        };
        let at = |e: String| anyhow::anyhow!("{name}: line {}: {key}: {e}", v.span.start.line().max(line));
        match kind {
            Kind::Tls(side) => tls_block(name, key, side, v, &mut values, &mut notes)?,
            kind => {
                if let Some(value) = value_of(kind, v).map_err(at)? {
                    values.push(FileValue { flag: flag.to_string(), key: key.to_string(), line, value });
                }
            }
        }
    }
    Ok((values, notes))
}

fn lookup<'k>(known: &'k HashMap<String, Kind>, key: &str) -> Option<(&'k str, Kind)> {
    if let Some((k, kind)) = known.get_key_value(key) {
        return Some((k, *kind));
    }
    // encoding/json's fallback: a key differing only in case.
    known.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(k, kind)| (k.as_str(), *kind))
}

fn tls_block(
    name: &str,
    block: &str,
    side: Side,
    node: &MarkedYaml<'_>,
    values: &mut Vec<FileValue>,
    notes: &mut Vec<Note>,
) -> anyhow::Result<()> {
    let map = match &node.data {
        YamlData::Mapping(m) => m,
        _ if is_null(node) => return Ok(()),
        _ => bail!("{name}: line {}: {block}: expected a mapping of TLS settings", node.span.start.line()),
    };
    for (k, v) in map {
        let line = k.span.start.line();
        let key = scalar(k).unwrap_or_default();
        let found = TLS_KEYS.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(key));
        let flag = found.map(|(_, client, peer)| if side == Side::Client { *client } else { *peer }).unwrap_or("");
        if flag.is_empty() {
            notes.push(Note::warn(format!(
                "etcdmain: {name}: line {line}: unknown key {block}.{key} is ignored, as etcd ignores it"
            )));
            continue;
        }
        let kind = if flag.ends_with("cert-auth") || flag.ends_with("auto-tls") { Kind::Bool } else { Kind::Scalar };
        // etcd 3.5 takes lists of allowed names; wasmraft's flags, like etcd 3.4's, one.
        let value = if let YamlData::Sequence(items) = &v.data {
            match items.as_slice() {
                [] => Ok(None),
                [one] => value_of(kind, one),
                _ => Err("wasmraft takes one allowed name, as etcd 3.4's flag does".to_string()),
            }
        } else {
            value_of(kind, v)
        };
        let value = value.map_err(|e| anyhow::anyhow!("{name}: line {line}: {block}.{key}: {e}"))?;
        if let Some(value) = value {
            values.push(FileValue { flag: flag.to_string(), key: format!("{block}.{key}"), line, value });
        }
    }
    Ok(())
}

/// The flag value for a node, `None` for null (etcd keeps the default then).
fn value_of(kind: Kind, node: &MarkedYaml<'_>) -> Result<Option<String>, String> {
    if is_null(node) {
        return Ok(None);
    }
    if kind == Kind::List {
        return match &node.data {
            YamlData::Sequence(items) => {
                let mut parts = Vec::new();
                for item in items {
                    parts.push(scalar(item).ok_or("expected a list of strings")?.to_string());
                }
                Ok(Some(parts.join(",")))
            }
            _ => scalar(node).map(|s| Some(s.to_string())).ok_or_else(|| "expected a list of strings".to_string()),
        };
    }
    let Some(text) = scalar(node) else {
        return Err(match node.data {
            YamlData::Sequence(_) => "expected a single value, found a list".into(),
            _ => "expected a single value, found a mapping".into(),
        });
    };
    let plain = matches!(node.data, YamlData::Representation(_, ScalarStyle::Plain, _));
    Ok(Some(match kind {
        Kind::Bool if plain => yaml11_bool(text).map(str::to_string).unwrap_or_else(|| text.to_string()),
        // Go's time.Duration in JSON is a count of nanoseconds.
        Kind::Duration if text.bytes().all(|b| b.is_ascii_digit()) => format!("{text}ns"),
        _ => text.to_string(),
    }))
}

/// go-yaml v2's booleans (YAML 1.1), which etcd's files may use (`enable-v2: yes`).
fn yaml11_bool(text: &str) -> Option<&'static str> {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some("true"),
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some("false"),
        _ => None,
    }
}

fn scalar<'a>(node: &'a MarkedYaml<'_>) -> Option<&'a str> {
    match &node.data {
        YamlData::Representation(text, _, _) => Some(text),
        _ => None,
    }
}

fn is_null(node: &MarkedYaml<'_>) -> bool {
    match &node.data {
        YamlData::Representation(text, ScalarStyle::Plain, _) => matches!(&**text, "" | "~" | "null" | "Null" | "NULL"),
        _ => false,
    }
}

/// Which file value set a flag named in `error`, for an error from the shared checks (which name
/// flags as `--data-dir`): the key and line to add.
pub fn locate<'v>(values: &'v [FileValue], error: &str) -> Option<&'v FileValue> {
    values.iter().rev().find(|v| {
        let flag = format!("--{}", v.flag);
        error.match_indices(&flag).any(|(i, _)| {
            let next = error[i + flag.len()..].chars().next();
            !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    })
}
