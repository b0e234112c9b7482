//! etcd's client-visible errors as gRPC statuses.
//!
//! etcd clients recognise server errors by their exact message text (clientv3's
//! `rpctypes.Error` looks the description up in a table) and sometimes by their code, so every
//! text and code here is the one etcd 3.4 sends (`etcdserver/api/v3rpc/rpctypes/error.go`).
//!
//! Two sources of errors reach this module:
//! * [`NodeError`]s from the member (timeouts, overload, no leader, …), mapped variant by variant;
//! * a guest's error text ([`NodeError::Guest`]). The bundled KV guest answers with etcd's own
//!   error texts; [`guest_error`] gives a known text etcd's code for it (accepting both the text
//!   etcd puts on the wire and the text of etcd's internal error value that etcd translates into
//!   it, e.g. `mvcc: required revision has been compacted`). Any other text goes back as
//!   `Unknown` with the text unchanged, which is what etcd's `togRPCError` does with an error it
//!   has no mapping for. `Unknown` rather than `FailedPrecondition`: clients must not read more
//!   into a custom guest's error than the guest said, and for etcd clients `Unknown` is a
//!   non-retryable error, the safe choice for an entry that was applied (and rolled back).

use tonic::{Code, Status};

use wasmraft_node::NodeError;

/// An etcd error as the server sends it: gRPC code and the exact description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtcdError {
    pub code: Code,
    pub message: &'static str,
}

impl EtcdError {
    const fn new(code: Code, message: &'static str) -> Self {
        Self { code, message }
    }

    pub fn status(self) -> Status {
        Status::new(self.code, self.message)
    }
}

impl From<EtcdError> for Status {
    fn from(e: EtcdError) -> Self {
        e.status()
    }
}

// The statuses etcd 3.4's v3rpc layer sends (rpctypes.ErrGRPC*), same names without the prefix.
pub const EMPTY_KEY: EtcdError = EtcdError::new(Code::InvalidArgument, "etcdserver: key is not provided");
pub const KEY_NOT_FOUND: EtcdError = EtcdError::new(Code::InvalidArgument, "etcdserver: key not found");
pub const VALUE_PROVIDED: EtcdError = EtcdError::new(Code::InvalidArgument, "etcdserver: value is provided");
pub const LEASE_PROVIDED: EtcdError = EtcdError::new(Code::InvalidArgument, "etcdserver: lease is provided");
pub const TOO_MANY_OPS: EtcdError =
    EtcdError::new(Code::InvalidArgument, "etcdserver: too many operations in txn request");
pub const DUPLICATE_KEY: EtcdError =
    EtcdError::new(Code::InvalidArgument, "etcdserver: duplicate key given in txn request");
/// Not in etcd 3.4 (whose server panics on an unknown sort target); etcd 3.6's text and code.
pub const INVALID_SORT_OPTION: EtcdError = EtcdError::new(Code::InvalidArgument, "etcdserver: invalid sort option");
pub const COMPACTED: EtcdError =
    EtcdError::new(Code::OutOfRange, "etcdserver: mvcc: required revision has been compacted");
pub const FUTURE_REV: EtcdError =
    EtcdError::new(Code::OutOfRange, "etcdserver: mvcc: required revision is a future revision");
pub const NO_SPACE: EtcdError = EtcdError::new(Code::ResourceExhausted, "etcdserver: mvcc: database space exceeded");

pub const LEASE_NOT_FOUND: EtcdError = EtcdError::new(Code::NotFound, "etcdserver: requested lease not found");
pub const LEASE_EXIST: EtcdError = EtcdError::new(Code::FailedPrecondition, "etcdserver: lease already exists");
pub const LEASE_TTL_TOO_LARGE: EtcdError = EtcdError::new(Code::OutOfRange, "etcdserver: too large lease TTL");

pub const MEMBER_EXIST: EtcdError = EtcdError::new(Code::FailedPrecondition, "etcdserver: member ID already exist");
pub const PEER_URL_EXIST: EtcdError = EtcdError::new(Code::FailedPrecondition, "etcdserver: Peer URLs already exists");
pub const MEMBER_NOT_ENOUGH_STARTED: EtcdError =
    EtcdError::new(Code::FailedPrecondition, "etcdserver: re-configuration failed due to not enough started members");
pub const MEMBER_BAD_URLS: EtcdError =
    EtcdError::new(Code::InvalidArgument, "etcdserver: given member URLs are invalid");
pub const MEMBER_NOT_FOUND: EtcdError = EtcdError::new(Code::NotFound, "etcdserver: member not found");
pub const MEMBER_NOT_LEARNER: EtcdError =
    EtcdError::new(Code::FailedPrecondition, "etcdserver: can only promote a learner member");
pub const LEARNER_NOT_READY: EtcdError = EtcdError::new(
    Code::FailedPrecondition,
    "etcdserver: can only promote a learner member which is in sync with leader",
);
pub const TOO_MANY_LEARNERS: EtcdError =
    EtcdError::new(Code::FailedPrecondition, "etcdserver: too many learner members in cluster");

pub const REQUEST_TOO_LARGE: EtcdError = EtcdError::new(Code::InvalidArgument, "etcdserver: request is too large");
pub const TOO_MANY_REQUESTS: EtcdError = EtcdError::new(Code::ResourceExhausted, "etcdserver: too many requests");

pub const ROOT_USER_NOT_EXIST: EtcdError =
    EtcdError::new(Code::FailedPrecondition, "etcdserver: root user does not exist");
pub const ROOT_ROLE_NOT_EXIST: EtcdError =
    EtcdError::new(Code::FailedPrecondition, "etcdserver: root user does not have root role");
pub const USER_ALREADY_EXIST: EtcdError =
    EtcdError::new(Code::FailedPrecondition, "etcdserver: user name already exists");
pub const USER_EMPTY: EtcdError = EtcdError::new(Code::InvalidArgument, "etcdserver: user name is empty");
pub const USER_NOT_FOUND: EtcdError = EtcdError::new(Code::FailedPrecondition, "etcdserver: user name not found");
pub const ROLE_ALREADY_EXIST: EtcdError =
    EtcdError::new(Code::FailedPrecondition, "etcdserver: role name already exists");
pub const ROLE_NOT_FOUND: EtcdError = EtcdError::new(Code::FailedPrecondition, "etcdserver: role name not found");
pub const ROLE_EMPTY: EtcdError = EtcdError::new(Code::InvalidArgument, "etcdserver: role name is empty");
pub const AUTH_FAILED: EtcdError =
    EtcdError::new(Code::InvalidArgument, "etcdserver: authentication failed, invalid user ID or password");
pub const PERMISSION_DENIED: EtcdError = EtcdError::new(Code::PermissionDenied, "etcdserver: permission denied");
pub const ROLE_NOT_GRANTED: EtcdError =
    EtcdError::new(Code::FailedPrecondition, "etcdserver: role is not granted to the user");
pub const PERMISSION_NOT_GRANTED: EtcdError =
    EtcdError::new(Code::FailedPrecondition, "etcdserver: permission is not granted to the role");
pub const AUTH_NOT_ENABLED: EtcdError =
    EtcdError::new(Code::FailedPrecondition, "etcdserver: authentication is not enabled");
pub const INVALID_AUTH_TOKEN: EtcdError = EtcdError::new(Code::Unauthenticated, "etcdserver: invalid auth token");
pub const INVALID_AUTH_MGMT: EtcdError = EtcdError::new(Code::InvalidArgument, "etcdserver: invalid auth management");
pub const PERMISSION_NOT_GIVEN: EtcdError = EtcdError::new(Code::InvalidArgument, "etcdserver: permission not given");
pub const AUTH_OLD_REVISION: EtcdError =
    EtcdError::new(Code::InvalidArgument, "etcdserver: revision of auth store is old");

pub const NO_LEADER: EtcdError = EtcdError::new(Code::Unavailable, "etcdserver: no leader");
pub const NOT_LEADER: EtcdError = EtcdError::new(Code::FailedPrecondition, "etcdserver: not leader");
pub const LEADER_CHANGED: EtcdError = EtcdError::new(Code::Unavailable, "etcdserver: leader changed");
pub const NOT_CAPABLE: EtcdError = EtcdError::new(Code::Unavailable, "etcdserver: not capable");
pub const STOPPED: EtcdError = EtcdError::new(Code::Unavailable, "etcdserver: server stopped");
pub const TIMEOUT: EtcdError = EtcdError::new(Code::Unavailable, "etcdserver: request timed out");
pub const TIMEOUT_DUE_TO_LEADER_FAIL: EtcdError =
    EtcdError::new(Code::Unavailable, "etcdserver: request timed out, possibly due to previous leader failure");
pub const TIMEOUT_DUE_TO_CONNECTION_LOST: EtcdError =
    EtcdError::new(Code::Unavailable, "etcdserver: request timed out, possibly due to connection lost");
pub const TIMEOUT_WAIT_APPLIED_INDEX: EtcdError =
    EtcdError::new(Code::Unavailable, "etcdserver: request timed out, waiting for the applied index took too long");
pub const UNHEALTHY: EtcdError = EtcdError::new(Code::Unavailable, "etcdserver: unhealthy cluster");
pub const CORRUPT: EtcdError = EtcdError::new(Code::DataLoss, "etcdserver: corrupt cluster");
pub const NOT_SUPPORTED_FOR_LEARNER: EtcdError =
    EtcdError::new(Code::Unavailable, "etcdserver: rpc not supported for learner");
pub const TIMEOUT_LEADER_TRANSFER: EtcdError =
    EtcdError::new(Code::Unavailable, "etcdserver: request timed out, leader transfer took too long");
pub const BAD_LEADER_TRANSFEREE: EtcdError =
    EtcdError::new(Code::FailedPrecondition, "etcdserver: bad leader transferee");

/// Every wire-level error etcd 3.4 knows by text (rpctypes' `errStringToError`).
const WIRE_ERRORS: &[EtcdError] = &[
    EMPTY_KEY,
    KEY_NOT_FOUND,
    VALUE_PROVIDED,
    LEASE_PROVIDED,
    TOO_MANY_OPS,
    DUPLICATE_KEY,
    INVALID_SORT_OPTION,
    COMPACTED,
    FUTURE_REV,
    NO_SPACE,
    LEASE_NOT_FOUND,
    LEASE_EXIST,
    LEASE_TTL_TOO_LARGE,
    MEMBER_EXIST,
    PEER_URL_EXIST,
    MEMBER_NOT_ENOUGH_STARTED,
    MEMBER_BAD_URLS,
    MEMBER_NOT_FOUND,
    MEMBER_NOT_LEARNER,
    LEARNER_NOT_READY,
    TOO_MANY_LEARNERS,
    REQUEST_TOO_LARGE,
    TOO_MANY_REQUESTS,
    ROOT_USER_NOT_EXIST,
    ROOT_ROLE_NOT_EXIST,
    USER_ALREADY_EXIST,
    USER_EMPTY,
    USER_NOT_FOUND,
    ROLE_ALREADY_EXIST,
    ROLE_NOT_FOUND,
    ROLE_EMPTY,
    AUTH_FAILED,
    PERMISSION_DENIED,
    ROLE_NOT_GRANTED,
    PERMISSION_NOT_GRANTED,
    AUTH_NOT_ENABLED,
    INVALID_AUTH_TOKEN,
    INVALID_AUTH_MGMT,
    PERMISSION_NOT_GIVEN,
    AUTH_OLD_REVISION,
    NO_LEADER,
    NOT_LEADER,
    LEADER_CHANGED,
    NOT_CAPABLE,
    STOPPED,
    TIMEOUT,
    TIMEOUT_DUE_TO_LEADER_FAIL,
    TIMEOUT_LEADER_TRANSFER,
    TIMEOUT_DUE_TO_CONNECTION_LOST,
    TIMEOUT_WAIT_APPLIED_INDEX,
    UNHEALTHY,
    CORRUPT,
    NOT_SUPPORTED_FOR_LEARNER,
    BAD_LEADER_TRANSFEREE,
];

/// etcd's internal error values whose text differs from what etcd sends for them (v3rpc's
/// `toGRPCErrorMap`). A guest written against etcd's code may return either text.
const INTERNAL_ALIASES: &[(&str, EtcdError)] = &[
    ("mvcc: required revision has been compacted", COMPACTED),
    ("mvcc: required revision is a future revision", FUTURE_REV),
    ("etcdserver: no space", NO_SPACE),
    ("lease not found", LEASE_NOT_FOUND),
    ("lease already exists", LEASE_EXIST),
    ("too large lease TTL", LEASE_TTL_TOO_LARGE),
    ("membership: ID removed", MEMBER_NOT_FOUND),
    ("membership: ID not found", MEMBER_NOT_FOUND),
    ("membership: ID exists", MEMBER_EXIST),
    ("membership: peerURL exists", PEER_URL_EXIST),
    ("membership: can only promote a learner member", MEMBER_NOT_LEARNER),
    ("membership: too many learner members in cluster", TOO_MANY_LEARNERS),
    ("auth: root user does not exist", ROOT_USER_NOT_EXIST),
    ("auth: root user does not have root role", ROOT_ROLE_NOT_EXIST),
    ("auth: user already exists", USER_ALREADY_EXIST),
    ("auth: user name is empty", USER_EMPTY),
    ("auth: user not found", USER_NOT_FOUND),
    ("auth: role already exists", ROLE_ALREADY_EXIST),
    ("auth: role not found", ROLE_NOT_FOUND),
    ("auth: role name is empty", ROLE_EMPTY),
    ("auth: authentication failed, invalid user ID or password", AUTH_FAILED),
    ("auth: permission denied", PERMISSION_DENIED),
    ("auth: role is not granted to the user", ROLE_NOT_GRANTED),
    ("auth: permission is not granted to the role", PERMISSION_NOT_GRANTED),
    ("auth: authentication is not enabled", AUTH_NOT_ENABLED),
    ("auth: invalid auth token", INVALID_AUTH_TOKEN),
    ("auth: invalid auth management", INVALID_AUTH_MGMT),
    ("auth: permission not given", PERMISSION_NOT_GIVEN),
    ("auth: revision in header is old", AUTH_OLD_REVISION),
];

/// The etcd error a text names, if etcd knows it (exact match, as clients match).
pub fn known_etcd_error(text: &str) -> Option<EtcdError> {
    WIRE_ERRORS
        .iter()
        .copied()
        .find(|e| e.message == text)
        .or_else(|| INTERNAL_ALIASES.iter().find(|(t, _)| *t == text).map(|(_, e)| *e))
}

/// A guest's error text as the client sees it: etcd's status when etcd knows the text,
/// otherwise `Unknown` with the text as it is (see the module comment).
pub fn guest_error(text: &str) -> Status {
    match known_etcd_error(text) {
        Some(e) => e.status(),
        None => Status::unknown(text),
    }
}

/// A member error as etcd would report it.
pub fn node_error(err: NodeError) -> Status {
    match err {
        NodeError::Guest(text) => guest_error(&text),
        NodeError::Timeout => TIMEOUT.status(),
        NodeError::TooManyRequests => TOO_MANY_REQUESTS.status(),
        NodeError::RequestTooLarge => REQUEST_TOO_LARGE.status(),
        NodeError::Stopped => STOPPED.status(),
        NodeError::NoLeader => NO_LEADER.status(),
        NodeError::NotLeader => NOT_LEADER.status(),
        NodeError::BadLeaderTransferee => BAD_LEADER_TRANSFEREE.status(),
        NodeError::LeaderTransferTimeout => TIMEOUT_LEADER_TRANSFER.status(),
        no_guest @ NodeError::NoGuest => Status::unavailable(no_guest.to_string()),
        NodeError::DeployRefused(text) => Status::failed_precondition(text),
        NodeError::Membership(e) => membership_error(e),
        NodeError::Auth(e) => auth_error(e),
        // The node's text already says what failed; keep it, it is ours, not etcd's.
        internal @ NodeError::Internal(_) => Status::internal(internal.to_string()),
    }
}

/// An auth store refusal: its text is etcd's, so the table gives etcd's code.
pub fn auth_error(e: wasmraft_node::auth::AuthError) -> Status {
    guest_error(&e.to_string())
}

/// `?` in a service for what the node answers: etcd's status for each error (the node's error
/// types are the node crate's and `Status` is tonic's, so no `From` can join them).
pub trait OrStatus<T> {
    fn or_status(self) -> Result<T, Status>;
}

impl<T> OrStatus<T> for Result<T, NodeError> {
    fn or_status(self) -> Result<T, Status> {
        self.map_err(node_error)
    }
}

impl<T> OrStatus<T> for Result<T, wasmraft_node::auth::AuthError> {
    fn or_status(self) -> Result<T, Status> {
        self.map_err(auth_error)
    }
}

/// etcd's `toGRPCErrorMap` for membership errors. "Not enough started members" maps to the
/// client-side error value there (`rpctypes.ErrMemberNotEnoughStarted`, not a gRPC status), so
/// etcd sends it with code Unknown.
fn membership_error(e: wasmraft_node::membership::MembershipError) -> Status {
    use wasmraft_node::membership::MembershipError as M;
    let known = match e {
        M::IdRemoved | M::IdNotFound => MEMBER_NOT_FOUND,
        M::IdExists => MEMBER_EXIST,
        M::PeerUrlExists => PEER_URL_EXIST,
        M::NotLearner => MEMBER_NOT_LEARNER,
        M::TooManyLearners => TOO_MANY_LEARNERS,
        M::NotEnoughStartedMembers => return Status::unknown(MEMBER_NOT_ENOUGH_STARTED.message),
        M::Unhealthy => UNHEALTHY,
        M::LearnerNotReady => LEARNER_NOT_READY,
    };
    known.status()
}

/// A guest answered with bytes that are not the response message the API expects. This is a
/// broken guest, not a client mistake.
pub fn bad_guest_response(what: &str, err: prost::DecodeError) -> Status {
    Status::internal(format!("wasmraft: the guest's {what} could not be decoded: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_status(s: &Status, code: Code, message: &str) {
        assert_eq!(s.code(), code, "code of {s:?}");
        assert_eq!(s.message(), message, "message of {s:?}");
    }

    #[test]
    fn node_errors_map_to_etcd_codes_and_texts() {
        assert_status(&node_error(NodeError::Timeout), Code::Unavailable, "etcdserver: request timed out");
        assert_status(
            &node_error(NodeError::TooManyRequests),
            Code::ResourceExhausted,
            "etcdserver: too many requests",
        );
        assert_status(
            &node_error(NodeError::RequestTooLarge),
            Code::InvalidArgument,
            "etcdserver: request is too large",
        );
        assert_status(&node_error(NodeError::Stopped), Code::Unavailable, "etcdserver: server stopped");
        assert_status(&node_error(NodeError::NoLeader), Code::Unavailable, "etcdserver: no leader");
        assert_status(
            &node_error(NodeError::Internal("redb: disk full".into())),
            Code::Internal,
            "wasmraft: internal error: redb: disk full",
        );
    }

    #[test]
    fn node_error_texts_agree_with_the_statuses() {
        // NodeError's Display is what logs show; it must be the same text clients get.
        for e in [
            NodeError::Timeout,
            NodeError::TooManyRequests,
            NodeError::RequestTooLarge,
            NodeError::Stopped,
            NodeError::NoLeader,
        ] {
            let text = e.to_string();
            assert_eq!(node_error(e).message(), text);
        }
    }

    #[test]
    fn known_guest_texts_get_etcds_codes() {
        assert_status(
            &node_error(NodeError::Guest("etcdserver: mvcc: required revision has been compacted".into())),
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        );
        assert_status(
            &guest_error("etcdserver: mvcc: required revision is a future revision"),
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision",
        );
        assert_status(
            &guest_error("etcdserver: requested lease not found"),
            Code::NotFound,
            "etcdserver: requested lease not found",
        );
        assert_status(&guest_error("etcdserver: key not found"), Code::InvalidArgument, "etcdserver: key not found");
        assert_status(
            &guest_error("etcdserver: mvcc: database space exceeded"),
            Code::ResourceExhausted,
            "etcdserver: mvcc: database space exceeded",
        );
        assert_status(
            &guest_error("etcdserver: permission denied"),
            Code::PermissionDenied,
            "etcdserver: permission denied",
        );
        assert_status(&guest_error("etcdserver: corrupt cluster"), Code::DataLoss, "etcdserver: corrupt cluster");
    }

    #[test]
    fn etcd_internal_texts_are_translated_to_the_wire_text() {
        assert_status(
            &guest_error("mvcc: required revision has been compacted"),
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        );
        assert_status(&guest_error("lease not found"), Code::NotFound, "etcdserver: requested lease not found");
        assert_status(&guest_error("too large lease TTL"), Code::OutOfRange, "etcdserver: too large lease TTL");
        assert_status(
            &guest_error("etcdserver: no space"),
            Code::ResourceExhausted,
            "etcdserver: mvcc: database space exceeded",
        );
        assert_status(
            &guest_error("auth: user already exists"),
            Code::FailedPrecondition,
            "etcdserver: user name already exists",
        );
    }

    #[test]
    fn unknown_guest_texts_pass_through_as_unknown() {
        assert_status(&guest_error("guest trapped: unreachable"), Code::Unknown, "guest trapped: unreachable");
        // Matching is exact, as etcd clients match: a prefix or different case is not etcd's error.
        assert_status(
            &guest_error("etcdserver: mvcc: required revision has been compacted (rev 5)"),
            Code::Unknown,
            "etcdserver: mvcc: required revision has been compacted (rev 5)",
        );
        assert_status(&guest_error("Etcdserver: no leader"), Code::Unknown, "Etcdserver: no leader");
        assert_status(&guest_error(""), Code::Unknown, "");
    }

    #[test]
    fn wire_table_has_no_duplicate_texts() {
        for (i, a) in WIRE_ERRORS.iter().enumerate() {
            for b in &WIRE_ERRORS[i + 1..] {
                assert_ne!(a.message, b.message);
            }
            // An alias must never shadow a wire text with a different meaning.
            assert!(INTERNAL_ALIASES.iter().all(|(t, _)| *t != a.message), "{} is both", a.message);
        }
    }
}
