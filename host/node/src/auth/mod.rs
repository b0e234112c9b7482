//! etcd's authentication and role-based access control, in the host.
//!
//! **Where auth lives, and why the host.** Users, roles and permissions are cluster state that
//! must hold whatever guest runs: a custom guest's generic API and guest deploys need guarding
//! too, and a guest swap must not drop (or let a guest rewrite) who may do what. So the auth
//! store is the host's, in its own state table (`auth`), written by `Entry.auth` entries through
//! the log and carried by raft snapshots, like membership and alarms. Guests never see it.
//!
//! **How a request is checked** (etcd's `authApplierV3`, moved to the proposer with a guard):
//! the API layer knows what an etcd request touches (it decodes it), so it checks the caller's
//! permissions against this member's auth store and stamps the proposed entry with the store's
//! revision (`Entry.auth_revision`). At apply, a stamped command is refused with etcd's
//! "revision of auth store is old" when the store changed after the stamp, on every member
//! alike. The check therefore always ran against the auth state the entry applies under, which
//! is what etcd's apply-time check gives. Reads are checked after their ReadIndex barrier and
//! refused if the store changed while they read (etcd's `doSerialize`).
//!
//! What is checked (etcd 3.4): KV ranges (read), puts and deletes (write; `prev_kv` needs read
//! too), every compare and op of a txn, lease revoke and put-with-lease (write on the lease's
//! keys), watch creation (read), admin calls (user/role management, auth disable, defragment,
//! snapshot, hash, member add/remove/update/promote) need the `root` role. wasmraft's own
//! services: the generic API needs the `root` role when the active guest is the KV guest (its
//! opaque commands would bypass key permissions), otherwise read (query) or write (propose)
//! permission on the key [`GENERIC_KEY`]; every guest admin call (deploy, rollback, status, list)
//! needs the `root` role. `tests/tests/authz_table.rs` holds the whole table, method by method.
//!
//! **Tokens** (`--auth-token`, [`TokenProvider`]). `Authenticate` checks the password (bcrypt)
//! on the member that was asked, then proposes the user name (and a random prefix); the token
//! is made when the entry applies, as in etcd. etcd's simple tokens (the default): every member
//! assigns `<prefix>.<index>`, so the token works on any member; they live in memory (a restart
//! forgets them) and expire after `--auth-token-ttl` without use. etcd's JWTs
//! (`jwt,pub-key=…,priv-key=…,sign-method=…,ttl=…`): the member that was asked returns a JWT it
//! signs with claims `username`, `revision` (the store's, at apply) and `exp`; every member
//! with the key verifies it alone, and the token's revision, not the store's, is the one the
//! permission checks compare, so a token issued before any auth change is refused as stale.
//! Tokens from etcd with the same key are accepted and the other way round. With
//! `--client-cert-auth`, a request without a token is the user named by its verified client
//! certificate's CN.

mod jwt;
mod password;
mod perms;
mod simple_tokens;
mod store;
mod tokens;

pub use password::{DEFAULT_COST as DEFAULT_BCRYPT_COST, PasswordHasher, hash_password, verify_password};
pub use perms::Access;
pub use store::{AuthState, AuthStore, Staged};
pub use tokens::{TokenOptions, TokenProvider};

/// etcd's root user and role: the only role with admin rights, and the user that must exist
/// (with that role) before auth can be enabled.
pub const ROOT: &str = "root";

/// The pseudo-key whose permissions guard wasmraft's generic API for guests other than the KV
/// guest: read lets a user query, write lets a user propose.
pub const GENERIC_KEY: &[u8] = b"wasmraft/generic";

/// Who a request comes from, and the auth store revision its identity was resolved at.
/// `revision` 0 means no user was given (etcd's empty `AuthInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthInfo {
    pub user: String,
    pub revision: u64,
}

/// Why `--auth-token` was refused: etcd's texts, which stop the member at start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenOptionsError {
    /// etcd's `ErrInvalidAuthOpts` (what etcd stops with when an option cannot be loaded), with
    /// the reason etcd logs beside it.
    #[error("auth: invalid auth options ({detail})")]
    Invalid { detail: String },
    /// A key file that holds no usable key (jwt-go's text, or ring's reason).
    #[error("{0}")]
    Key(String),
    /// etcd's `ErrKeyMismatch`.
    #[error("auth: public and private keys don't match")]
    KeyMismatch,
}

/// etcd's auth errors, with the texts etcd sends clients (rpctypes.ErrGRPC*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    #[error("etcdserver: user name not found")]
    UserNotFound,
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    /// etcd sends this one untranslated (code Unknown, its internal text).
    #[error("auth: authentication failed, password was given for no password user")]
    NoPasswordUser,
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    /// RoleGrantPermission without a permission (etcd 3.4.25+).
    #[error("etcdserver: permission not given")]
    PermissionNotGiven,
    #[error("etcdserver: revision of auth store is old")]
    AuthOldRevision,
    /// etcd's `ErrVerifyOnly` (a login on a member with only a JWT public key), sent
    /// untranslated (code Unknown) as etcd sends it.
    #[error("auth: token signing attempted with verify-only key")]
    VerifyOnly,
    /// ring refused to sign a JWT (the key was checked at start, so not expected).
    #[error("auth: failed to sign a JWT token")]
    TokenSigning,
}

impl AuthError {
    /// The text of etcd's internal error value (`auth.Err*`). etcd's maintenance server returns
    /// these untranslated, so clients see them with code Unknown.
    pub fn internal_text(self) -> String {
        match self {
            AuthError::UserNotFound => "auth: user not found".to_string(),
            AuthError::RoleNotFound => "auth: role not found".to_string(),
            AuthError::UserAlreadyExist => "auth: user already exists".to_string(),
            AuthError::RoleAlreadyExist => "auth: role already exists".to_string(),
            AuthError::AuthOldRevision => "auth: revision in header is old".to_string(),
            other => other.to_string().replacen("etcdserver: ", "auth: ", 1),
        }
    }
}
