//! The active guest's exported metrics (WIT `metrics`) in Prometheus' text format.
//!
//! Naming (docs/decisions.md, "Guest-exported metrics"): a guest that serves etcd's KV API
//! (`etcd.v3.kv`) exports etcd's own names, served as they are; any other guest's names are
//! prefixed with `wasmraft_guest_` unless they already start with it, so a guest cannot pose as
//! the host. A name the host serves itself is never served a second time.

use std::collections::BTreeSet;
use std::fmt::Write as _;

/// One stored guest metric, as the member read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestSample {
    pub name: String,
    pub value: i64,
    /// Last written with `add`: with a name ending in `_total`, a counter.
    pub added: bool,
}

/// Who exported the samples.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GuestExport {
    pub guest_name: String,
    pub guest_version: String,
    /// Whether the guest lists `etcd.v3.kv` in its apis: its names are served unprefixed.
    pub etcd_kv: bool,
    pub samples: Vec<GuestSample>,
}

/// The prefix of every name a guest that is not etcd's KV exports.
pub const GUEST_PREFIX: &str = "wasmraft_guest_";

/// The name a sample is served under.
pub fn served_name(export: &GuestExport, name: &str) -> String {
    if export.etcd_kv || name.starts_with(GUEST_PREFIX) { name.to_string() } else { format!("{GUEST_PREFIX}{name}") }
}

/// Appends the samples to `out`, skipping any name in `taken` (the host's own).
pub fn render(export: &GuestExport, taken: &BTreeSet<String>, out: &mut String) {
    for s in &export.samples {
        let name = served_name(export, &s.name);
        if taken.contains(&name) {
            continue;
        }
        let kind = if s.added && name.ends_with("_total") && !ETCD_GAUGES.contains(&name.as_str()) {
            "counter"
        } else {
            "gauge"
        };
        let help = help_for(&name)
            .map(str::to_string)
            .unwrap_or_else(|| format!("Exported by guest {} {}.", export.guest_name, export.guest_version));
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {}", s.value);
    }
}

/// etcd's names that end in `_total` but are gauges in etcd: served as etcd types them, however
/// the guest updates them.
const ETCD_GAUGES: &[&str] = &["etcd_debugging_mvcc_keys_total"];

/// etcd 3.4's help texts for the names the KV guest exports (mvcc/metrics.go), so a scraper
/// sees what it sees from etcd.
fn help_for(name: &str) -> Option<&'static str> {
    Some(match name {
        "etcd_mvcc_put_total" => "Total number of puts seen by this member.",
        "etcd_mvcc_delete_total" => "Total number of deletes seen by this member.",
        "etcd_mvcc_txn_total" => "Total number of txns seen by this member.",
        "etcd_debugging_mvcc_keys_total" => "Total number of keys.",
        "etcd_debugging_mvcc_current_revision" => "The current revision of store.",
        "etcd_debugging_mvcc_compact_revision" => "The revision of the last compaction in store.",
        "etcd_debugging_mvcc_total_put_size_in_bytes" => "The total size of put kv pairs seen by this member.",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, value: i64, added: bool) -> GuestSample {
        GuestSample { name: name.into(), value, added }
    }

    #[test]
    fn names_types_and_help_follow_the_rules() {
        let mut export = GuestExport {
            guest_name: "counter".into(),
            guest_version: "1.0.0".into(),
            etcd_kv: false,
            samples: vec![sample("hits_total", 3, true), sample("size", -2, false), sample("up_total", 1, false)],
        };
        let mut out = String::new();
        render(&export, &BTreeSet::new(), &mut out);
        assert_eq!(
            out,
            "# HELP wasmraft_guest_hits_total Exported by guest counter 1.0.0.\n\
             # TYPE wasmraft_guest_hits_total counter\nwasmraft_guest_hits_total 3\n\
             # HELP wasmraft_guest_size Exported by guest counter 1.0.0.\n\
             # TYPE wasmraft_guest_size gauge\nwasmraft_guest_size -2\n\
             # HELP wasmraft_guest_up_total Exported by guest counter 1.0.0.\n\
             # TYPE wasmraft_guest_up_total gauge\nwasmraft_guest_up_total 1\n"
        );

        export.etcd_kv = true;
        export.samples = vec![
            sample("etcd_mvcc_put_total", 4, true),
            sample("etcd_server_has_leader", 0, false),
            sample("etcd_debugging_mvcc_keys_total", 2, true),
        ];
        let taken: BTreeSet<String> = ["etcd_server_has_leader".to_string()].into();
        let mut out = String::new();
        render(&export, &taken, &mut out);
        assert_eq!(
            out,
            "# HELP etcd_mvcc_put_total Total number of puts seen by this member.\n\
             # TYPE etcd_mvcc_put_total counter\netcd_mvcc_put_total 4\n\
             # HELP etcd_debugging_mvcc_keys_total Total number of keys.\n\
             # TYPE etcd_debugging_mvcc_keys_total gauge\netcd_debugging_mvcc_keys_total 2\n"
        );
    }
}
