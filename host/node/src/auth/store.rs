//! The auth store: users, roles, the enabled flag and the revision, as applied from the log.
//!
//! The records live in the state database's `auth` table (`enabled`, `revision`, `u/<user>` →
//! authpb.User, `r/<role>` → authpb.Role), written in the apply batch's transaction; a copy in
//! memory answers permission checks. A batch that holds auth entries works on a staged copy
//! ([`Staged`]) that replaces the shared one once the batch has committed, so a later entry of
//! the same batch already sees the change, and nothing is visible before it is durable.
//!
//! Every change bumps the revision (etcd's `commitRevision`). Unlike etcd 3.4, enabling auth
//! bumps it too: a command stamped while auth was off must not apply after it was turned on.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use prost::Message as _;
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use wasmraft_proto::authpb::{Permission, Role, User, UserAddOptions};
use wasmraft_proto::etcdserverpb as pb;

use super::perms::{Access, permitted};
use super::tokens::TokenProvider;
use super::{AuthError, AuthInfo, ROOT};
use crate::StateError;
use wasmraft_storage::tables::AUTH;

const K_ENABLED: &str = "enabled";
const K_REVISION: &str = "revision";
const USER_PREFIX: &str = "u/";
const ROLE_PREFIX: &str = "r/";

/// The auth state as of some applied index.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthState {
    pub enabled: bool,
    /// Starts at 1 (etcd's store commits a first revision when it is created); 0 in a stamp
    /// means "not checked".
    pub revision: u64,
    pub users: BTreeMap<String, User>,
    pub roles: BTreeMap<String, Role>,
}

impl Default for AuthState {
    fn default() -> Self {
        Self { enabled: false, revision: 1, users: BTreeMap::new(), roles: BTreeMap::new() }
    }
}

impl AuthState {
    /// Reads the state from the `auth` table (the default state when it does not exist).
    pub fn read(db: &redb::Database) -> Result<AuthState, StateError> {
        Self::read_txn(&db.begin_read()?)
    }

    /// [`AuthState::read`] inside a transaction (a snapshot's consistent view).
    pub fn read_txn(txn: &redb::ReadTransaction) -> Result<AuthState, StateError> {
        let table = match txn.open_table(AUTH) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(AuthState::default()),
            Err(e) => return Err(e.into()),
        };
        let mut state = AuthState::default();
        for item in table.iter()? {
            let (k, v) = item?;
            let key = std::str::from_utf8(k.value()).map_err(|e| StateError::corrupt("auth table key", e))?;
            let v = v.value();
            if key == K_ENABLED {
                state.enabled = v == [1];
            } else if key == K_REVISION {
                state.revision = u64::from_be_bytes(
                    v.try_into().map_err(|_| StateError::corrupt("auth revision", format!("{} bytes", v.len())))?,
                );
            } else if let Some(name) = key.strip_prefix(USER_PREFIX) {
                state.users.insert(name.to_string(), User::decode(v).map_err(|e| StateError::corrupt("auth user", e))?);
            } else if let Some(name) = key.strip_prefix(ROLE_PREFIX) {
                state.roles.insert(name.to_string(), Role::decode(v).map_err(|e| StateError::corrupt("auth role", e))?);
            }
        }
        Ok(state)
    }

    /// Writes the whole state into an `auth` table that holds nothing else yet: a restore
    /// building a data dir from a backup.
    pub fn install(&self, txn: &WriteTransaction) -> Result<(), redb::Error> {
        let change = Change {
            enabled: true,
            users: self.users.keys().cloned().collect(),
            roles: self.roles.keys().cloned().collect(),
        };
        write(txn, self, &change)
    }

    fn is_root(user: &User) -> bool {
        user.roles.iter().any(|r| r == ROOT)
    }

    /// etcd's `IsAdminPermitted`: with auth on, only a user with the root role.
    pub fn check_admin(&self, info: Option<&AuthInfo>) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        let Some(info) = info.filter(|i| !i.user.is_empty()) else { return Err(AuthError::UserEmpty) };
        let user = self.users.get(&info.user).ok_or(AuthError::UserNotFound)?;
        if Self::is_root(user) { Ok(()) } else { Err(AuthError::PermissionDenied) }
    }

    /// etcd's `isOpPermitted`: `range_end` empty for one key, `"\0"` for everything from `key`.
    pub fn check(
        &self,
        info: Option<&AuthInfo>,
        access: Access,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        let Some(info) = info.filter(|i| i.revision != 0) else { return Err(AuthError::UserEmpty) };
        if info.revision < self.revision {
            return Err(AuthError::AuthOldRevision);
        }
        let Some(user) = self.users.get(&info.user) else { return Err(AuthError::PermissionDenied) };
        if Self::is_root(user) {
            return Ok(());
        }
        let perms = user.roles.iter().filter_map(|r| self.roles.get(r)).flat_map(|r| r.key_permission.iter());
        if permitted(perms, access, key, range_end) { Ok(()) } else { Err(AuthError::PermissionDenied) }
    }

    pub fn has_role(&self, user: &str, role: &str) -> bool {
        self.users.get(user).is_some_and(|u| u.roles.iter().any(|r| r == role))
    }

    /// The stored (hashed) password of `user`, for Authenticate's check. etcd refuses users
    /// without one the same way as a wrong password.
    pub fn password_hash(&self, user: &str) -> Result<Vec<u8>, AuthError> {
        let u = self.users.get(user).ok_or(AuthError::AuthFailed)?;
        if u.options.as_ref().is_some_and(|o| o.no_password) {
            return Err(AuthError::NoPasswordUser);
        }
        Ok(u.password.clone())
    }
}

/// The applied auth state and this member's tokens.
pub struct AuthStore {
    state: RwLock<Arc<AuthState>>,
    pub tokens: TokenProvider,
}

impl AuthStore {
    pub fn load(db: &redb::Database, tokens: TokenProvider) -> Result<AuthStore, StateError> {
        Ok(AuthStore { state: RwLock::new(Arc::new(AuthState::read(db)?)), tokens })
    }

    /// After a snapshot install: the snapshot's auth state; tokens handed out before are
    /// forgotten (their users may be gone).
    pub fn reload(&self, db: &redb::Database) -> Result<(), StateError> {
        let state = AuthState::read(db)?;
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(state);
        self.tokens.clear();
        Ok(())
    }

    pub fn state(&self) -> Arc<AuthState> {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn revision(&self) -> u64 {
        self.state().revision
    }

    pub fn enabled(&self) -> bool {
        self.state().enabled
    }

    /// Who `token` belongs to, and at which auth revision (etcd's `AuthInfoFromCtx`: the
    /// current one for a simple token, the token's own for a JWT).
    pub fn info_from_token(&self, token: &str) -> Result<AuthInfo, AuthError> {
        self.tokens.info(token, self.revision()).ok_or(AuthError::InvalidAuthToken)
    }
}

enum TokenOp {
    Assign { prefix: String, index: u64, user: String },
    InvalidateUser(String),
    Clear,
}

/// What one apply batch does to the auth store, made visible by [`Staged::commit`] once the
/// batch's transaction has committed.
#[derive(Default)]
pub struct Staged {
    state: Option<AuthState>,
    tokens: Vec<TokenOp>,
}

impl Staged {
    /// Whether a command stamped at `stamp` must be refused at this point of the batch: auth is
    /// on and the store changed after the stamp. With auth off nothing is checked, as in etcd.
    pub fn is_stale(&self, store: &AuthStore, stamp: u64) -> bool {
        if stamp == 0 {
            return false;
        }
        let shared;
        let state = match &self.state {
            Some(s) => s,
            None => {
                shared = store.state();
                &*shared
            }
        };
        state.enabled && stamp < state.revision
    }

    /// Applies an auth entry at `index` (etcd's `authApplierV3` and `authStore`): the answer for
    /// the client is the encoded response (without header) or etcd's refusal. `Err` only for
    /// storage failures. A login is given a token only if `live` (not a replay after a restart).
    pub fn apply(
        &mut self,
        store: &AuthStore,
        txn: &WriteTransaction,
        index: u64,
        live: bool,
        req: &pb::InternalRaftRequest,
    ) -> Result<Result<Vec<u8>, AuthError>, redb::Error> {
        let state = self.state.get_or_insert_with(|| (*store.state()).clone());
        let info = req.header.as_ref().map(|h| AuthInfo { user: h.username.clone(), revision: h.auth_revision });
        let mut change = Change::default();
        let tokens_before = self.tokens.len();
        let issuer = live.then_some(&store.tokens);
        let result = apply_request(state, info.as_ref(), index, req, &mut change, &mut self.tokens, issuer);
        if !live {
            self.tokens.truncate(tokens_before);
        }
        if result.is_ok() && change.any() {
            state.revision += 1;
            write(txn, state, &change)?;
        }
        Ok(result)
    }

    /// Publishes the batch's auth state and token changes.
    pub fn commit(self, store: &AuthStore) {
        if let Some(state) = self.state {
            let mut cur = store.state.write().unwrap_or_else(|p| p.into_inner());
            if **cur != state {
                *cur = Arc::new(state);
            }
        }
        for op in self.tokens {
            match op {
                TokenOp::Assign { prefix, index, user } => store.tokens.remember(&prefix, index, &user),
                TokenOp::InvalidateUser(u) => store.tokens.invalidate_user(&u),
                TokenOp::Clear => store.tokens.clear(),
            }
        }
    }
}

/// Which records an applied request changed.
#[derive(Default)]
struct Change {
    enabled: bool,
    users: Vec<String>,
    roles: Vec<String>,
}

impl Change {
    fn any(&self) -> bool {
        self.enabled || !self.users.is_empty() || !self.roles.is_empty()
    }
}

fn write(txn: &WriteTransaction, state: &AuthState, change: &Change) -> Result<(), redb::Error> {
    let mut t = txn.open_table(AUTH)?;
    t.insert(K_REVISION.as_bytes(), state.revision.to_be_bytes().as_slice())?;
    if change.enabled {
        t.insert(K_ENABLED.as_bytes(), [u8::from(state.enabled)].as_slice())?;
    }
    for name in &change.users {
        let key = format!("{USER_PREFIX}{name}");
        match state.users.get(name) {
            Some(u) => t.insert(key.as_bytes(), u.encode_to_vec().as_slice())?,
            None => t.remove(key.as_bytes())?,
        };
    }
    for name in &change.roles {
        let key = format!("{ROLE_PREFIX}{name}");
        match state.roles.get(name) {
            Some(r) => t.insert(key.as_bytes(), r.encode_to_vec().as_slice())?,
            None => t.remove(key.as_bytes())?,
        };
    }
    Ok(())
}

/// etcd's `needAdminPermission`.
fn needs_admin(r: &pb::InternalRaftRequest) -> bool {
    r.auth_enable.is_some()
        || r.auth_disable.is_some()
        || r.auth_user_add.is_some()
        || r.auth_user_delete.is_some()
        || r.auth_user_change_password.is_some()
        || r.auth_user_grant_role.is_some()
        || r.auth_user_revoke_role.is_some()
        || r.auth_role_add.is_some()
        || r.auth_role_grant_permission.is_some()
        || r.auth_role_revoke_permission.is_some()
        || r.auth_role_delete.is_some()
        || r.auth_user_list.is_some()
        || r.auth_role_list.is_some()
}

fn apply_request(
    s: &mut AuthState,
    info: Option<&AuthInfo>,
    index: u64,
    r: &pb::InternalRaftRequest,
    change: &mut Change,
    tokens: &mut Vec<TokenOp>,
    issuer: Option<&TokenProvider>,
) -> Result<Vec<u8>, AuthError> {
    if needs_admin(r) {
        s.check_admin(info)?;
    }
    if r.auth_enable.is_some() {
        if !s.enabled {
            let root = s.users.get(ROOT).ok_or(AuthError::RootUserNotExist)?;
            if !AuthState::is_root(root) {
                return Err(AuthError::RootRoleNotExist);
            }
            s.enabled = true;
            change.enabled = true;
            tracing::info!("enabled authentication");
        }
        return Ok(pb::AuthEnableResponse::default().encode_to_vec());
    }
    if r.auth_disable.is_some() {
        if s.enabled {
            s.enabled = false;
            change.enabled = true;
            tokens.push(TokenOp::Clear);
            tracing::info!("disabled authentication");
        }
        return Ok(pb::AuthDisableResponse::default().encode_to_vec());
    }
    if let Some(a) = &r.authenticate {
        if !s.enabled {
            return Err(AuthError::AuthNotEnabled);
        }
        s.password_hash(&a.name).map_err(|_| AuthError::AuthFailed)?;
        let token = match issuer {
            Some(p) => p.issue(&a.simple_token, index, &a.name, s.revision)?,
            None => String::new(),
        };
        tokens.push(TokenOp::Assign { prefix: a.simple_token.clone(), index, user: a.name.clone() });
        return Ok(pb::AuthenticateResponse { token, ..Default::default() }.encode_to_vec());
    }
    if let Some(u) = &r.auth_user_add {
        if u.name.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        if s.users.contains_key(&u.name) {
            return Err(AuthError::UserAlreadyExist);
        }
        let options = u.options.unwrap_or(UserAddOptions { no_password: false });
        let password = if options.no_password { Vec::new() } else { u.hashed_password.clone() };
        s.users.insert(
            u.name.clone(),
            User { name: u.name.clone().into_bytes(), password, roles: Vec::new(), options: Some(options) },
        );
        change.users.push(u.name.clone());
        tracing::info!(user_name = %u.name, "added a user");
        return Ok(pb::AuthUserAddResponse::default().encode_to_vec());
    }
    if let Some(u) = &r.auth_user_delete {
        if s.enabled && u.name == ROOT {
            return Err(AuthError::InvalidAuthMgmt);
        }
        s.users.remove(&u.name).ok_or(AuthError::UserNotFound)?;
        change.users.push(u.name.clone());
        tokens.push(TokenOp::InvalidateUser(u.name.clone()));
        tracing::info!(user_name = %u.name, "deleted a user");
        return Ok(pb::AuthUserDeleteResponse::default().encode_to_vec());
    }
    if let Some(u) = &r.auth_user_change_password {
        let user = s.users.get_mut(&u.name).ok_or(AuthError::UserNotFound)?;
        user.password = u.hashed_password.clone();
        change.users.push(u.name.clone());
        tokens.push(TokenOp::InvalidateUser(u.name.clone()));
        tracing::info!(user_name = %u.name, "changed a password of a user");
        return Ok(pb::AuthUserChangePasswordResponse::default().encode_to_vec());
    }
    if let Some(g) = &r.auth_user_grant_role {
        if !s.users.contains_key(&g.user) {
            return Err(AuthError::UserNotFound);
        }
        if g.role != ROOT && !s.roles.contains_key(&g.role) {
            return Err(AuthError::RoleNotFound);
        }
        let user = s.users.get_mut(&g.user).ok_or(AuthError::UserNotFound)?;
        if let Err(at) = user.roles.binary_search(&g.role) {
            user.roles.insert(at, g.role.clone());
            change.users.push(g.user.clone());
            tracing::info!(user_name = %g.user, role_name = %g.role, "granted a role to a user");
        }
        return Ok(pb::AuthUserGrantRoleResponse::default().encode_to_vec());
    }
    if let Some(g) = &r.auth_user_get {
        // A user may read their own record without admin rights.
        if s.check_admin(info).is_err() && info.is_none_or(|i| i.user != g.name) {
            s.check_admin(info)?;
        }
        let user = s.users.get(&g.name).ok_or(AuthError::UserNotFound)?;
        return Ok(pb::AuthUserGetResponse { roles: user.roles.clone(), ..Default::default() }.encode_to_vec());
    }
    if r.auth_user_list.is_some() {
        return Ok(
            pb::AuthUserListResponse { users: s.users.keys().cloned().collect(), ..Default::default() }.encode_to_vec()
        );
    }
    if let Some(g) = &r.auth_user_revoke_role {
        if s.enabled && g.name == ROOT && g.role == ROOT {
            return Err(AuthError::InvalidAuthMgmt);
        }
        let user = s.users.get_mut(&g.name).ok_or(AuthError::UserNotFound)?;
        let before = user.roles.len();
        user.roles.retain(|r| *r != g.role);
        if user.roles.len() == before {
            return Err(AuthError::RoleNotGranted);
        }
        change.users.push(g.name.clone());
        tracing::info!(user_name = %g.name, role_name = %g.role, "revoked a role from a user");
        return Ok(pb::AuthUserRevokeRoleResponse::default().encode_to_vec());
    }
    if let Some(a) = &r.auth_role_add {
        if a.name.is_empty() {
            return Err(AuthError::RoleEmpty);
        }
        if s.roles.contains_key(&a.name) {
            return Err(AuthError::RoleAlreadyExist);
        }
        s.roles.insert(a.name.clone(), Role { name: a.name.clone().into_bytes(), key_permission: Vec::new() });
        change.roles.push(a.name.clone());
        tracing::info!(role_name = %a.name, "created a role");
        return Ok(pb::AuthRoleAddResponse::default().encode_to_vec());
    }
    if let Some(g) = &r.auth_role_get {
        // A user may read the roles they have without admin rights.
        if s.check_admin(info).is_err() && !info.is_some_and(|i| s.has_role(&i.user, &g.role)) {
            s.check_admin(info)?;
        }
        let role = s.roles.get(&g.role).ok_or(AuthError::RoleNotFound)?;
        return Ok(pb::AuthRoleGetResponse { perm: role.key_permission.clone(), ..Default::default() }.encode_to_vec());
    }
    if r.auth_role_list.is_some() {
        return Ok(
            pb::AuthRoleListResponse { roles: s.roles.keys().cloned().collect(), ..Default::default() }.encode_to_vec()
        );
    }
    if let Some(g) = &r.auth_role_revoke_permission {
        let role = s.roles.get_mut(&g.role).ok_or(AuthError::RoleNotFound)?;
        let before = role.key_permission.len();
        role.key_permission.retain(|p| p.key != g.key || p.range_end != g.range_end);
        if role.key_permission.len() == before {
            return Err(AuthError::PermissionNotGranted);
        }
        change.roles.push(g.role.clone());
        tracing::info!(role_name = %g.role, "revoked a permission on range");
        return Ok(pb::AuthRoleRevokePermissionResponse::default().encode_to_vec());
    }
    if let Some(d) = &r.auth_role_delete {
        if s.enabled && d.role == ROOT {
            return Err(AuthError::InvalidAuthMgmt);
        }
        s.roles.remove(&d.role).ok_or(AuthError::RoleNotFound)?;
        change.roles.push(d.role.clone());
        for (name, user) in s.users.iter_mut() {
            let before = user.roles.len();
            user.roles.retain(|r| *r != d.role);
            if user.roles.len() != before {
                change.users.push(name.clone());
            }
        }
        tracing::info!(role_name = %d.role, "deleted a role");
        return Ok(pb::AuthRoleDeleteResponse::default().encode_to_vec());
    }
    if let Some(g) = &r.auth_role_grant_permission {
        // etcd 3.4.25+ (etcd#15621): no permission, or one whose range holds no key, is refused
        // before the role is looked up.
        let perm = g.perm.clone().ok_or(AuthError::PermissionNotGiven)?;
        if !super::perms::is_valid_range(&perm.key, &perm.range_end) {
            return Err(AuthError::InvalidAuthMgmt);
        }
        let role = s.roles.get_mut(&g.name).ok_or(AuthError::RoleNotFound)?;
        match role.key_permission.iter_mut().find(|p| p.key == perm.key && p.range_end == perm.range_end) {
            Some(existing) => existing.perm_type = perm.perm_type,
            None => {
                let at = role.key_permission.partition_point(|p: &Permission| p.key <= perm.key);
                role.key_permission.insert(at, perm);
            }
        }
        change.roles.push(g.name.clone());
        tracing::info!(role_name = %g.name, "granted/updated a permission to a role");
        return Ok(pb::AuthRoleGrantPermissionResponse::default().encode_to_vec());
    }
    // Nothing this store knows: deterministic on every member, like an unknown entry.
    Err(AuthError::InvalidAuthMgmt)
}
