//! etcd 3.4's bucket names and the host's records in them, as `etcdserver` lays them out
//! (`auth/store.go`, `etcdserver/api/membership/store.go`, `etcdserver/api/membership/member.go`,
//! `etcdserver/cindex` / `mvcc/backend`, `etcdserver/api/v3alarm`).

use serde::{Deserialize, Serialize};

pub const ALARM: &[u8] = b"alarm";
pub const AUTH: &[u8] = b"auth";
pub const AUTH_ROLES: &[u8] = b"authRoles";
pub const AUTH_USERS: &[u8] = b"authUsers";
pub const CLUSTER: &[u8] = b"cluster";
pub const MEMBERS: &[u8] = b"members";
pub const MEMBERS_REMOVED: &[u8] = b"members_removed";

/// `auth`: whether auth is on (`[1]` or `[0]`).
pub const AUTH_ENABLED_KEY: &[u8] = b"authEnabled";
/// `auth`: the auth store's revision, 8 bytes big-endian.
pub const AUTH_REVISION_KEY: &[u8] = b"authRevision";
/// `cluster`: the cluster version, as text.
pub const CLUSTER_VERSION_KEY: &[u8] = b"clusterVersion";
/// `meta`: the raft index the backend has applied, 8 bytes big-endian.
pub const CONSISTENT_INDEX_KEY: &[u8] = b"consistent_index";
/// `members_removed`: the value of every key.
pub const REMOVED: &[u8] = b"removed";

/// A member as etcd 3.4 stores it in `members`: `json.Marshal` of its `Member` (the id, then
/// the embedded `RaftAttributes` and `Attributes`, in that order; empty optional fields left
/// out).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct EtcdMember {
    pub id: u64,
    #[serde(rename = "peerURLs")]
    pub peer_urls: Vec<String>,
    #[serde(rename = "isLearner", default, skip_serializing_if = "std::ops::Not::not")]
    pub is_learner: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(rename = "clientURLs", default, skip_serializing_if = "Vec::is_empty")]
    pub client_urls: Vec<String>,
}

/// A member id as a `members` key: Go's `types.ID.String()`, lowercase hex.
pub fn member_key(id: u64) -> Vec<u8> {
    format!("{id:x}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_json_is_etcds() {
        let m = EtcdMember {
            id: 0x8e9e05c52164694d,
            peer_urls: vec!["http://localhost:2380".into()],
            is_learner: false,
            name: "default".into(),
            client_urls: vec!["http://localhost:2379".into()],
        };
        // etcd 3.4.23's own bytes for its default member.
        assert_eq!(
            serde_json::to_string(&m).expect("json"),
            r#"{"id":10276657743932975437,"peerURLs":["http://localhost:2380"],"name":"default","clientURLs":["http://localhost:2379"]}"#
        );
        assert_eq!(member_key(0x8e9e05c52164694d), b"8e9e05c52164694d");
    }
}
