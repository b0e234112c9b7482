//! The host's replicated subsystems: state that lives in the state database beside the guest's
//! keyspace and changes only through applied entries — membership, the active guest, the auth
//! store, the alarms, and the keyspace's size as the quota counts it.
//!
//! Each follows the same life, which is what [`Replicated`] names: an apply batch *stages* its
//! changes inside the batch's write transaction (later entries of the batch must see them, and
//! batch boundaries differ between members), *commits* them to readers only once that
//! transaction has committed (a client woken by its result must be able to read its own
//! change), travels inside raft snapshots with the rest of the state database (the snapshot
//! copies every table), and is *reloaded* from the database after a snapshot replaced it.
//!
//! [`Subsystems`] is the one list of them the apply thread walks: adding a subsystem is its
//! impl, one line in `replicated_subsystems!` below, and the entry kind that changes it in
//! `apply::batch`.

use std::sync::Arc;

use crate::alarms::{self, Alarms};
use crate::auth::{self, AuthStore};
use crate::kv_size::{KvSize, StagedKvSize};
use crate::membership::{self, Membership};

use super::active::{self, ActiveGuestCell};
use crate::{DeploymentError, StateError};

/// A part of the host's state that only applied entries change.
pub(crate) trait Replicated: Send + Sync {
    /// What one apply batch has changed so far and readers cannot see yet.
    type Staged;

    /// Begins an apply batch.
    fn stage(&self) -> Self::Staged;

    /// Makes a batch's changes visible; called once its transaction has committed.
    fn commit(&self, staged: Self::Staged);

    /// Reads the subsystem anew from a state database a snapshot has just replaced.
    fn reload(&self, db: &redb::Database) -> Result<(), ReloadFailure>;
}

/// Why a subsystem could not be read anew after a snapshot: the member cannot go on with
/// state it cannot read.
#[derive(Debug, thiserror::Error)]
#[error("reloading {subsystem}")]
pub(crate) struct ReloadError {
    /// The subsystem's field in [`Subsystems`].
    pub subsystem: &'static str,
    #[source]
    pub source: ReloadFailure,
}

/// What failed in the subsystem's reload.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReloadFailure {
    #[error(transparent)]
    State(#[from] StateError),
    /// The active guest's record, or the guest it names.
    #[error(transparent)]
    Guest(#[from] DeploymentError),
}

/// Declares [`Subsystems`] and [`Staged`] from one list of `field: Type` pairs, so the apply
/// thread stages, commits and reloads every subsystem without naming each one.
macro_rules! replicated_subsystems {
    ($($(#[$doc:meta])* $field:ident: $ty:ty,)*) => {
        /// Every replicated subsystem of the member, as the last applied batch left it.
        pub(crate) struct Subsystems {
            $($(#[$doc])* pub $field: $ty,)*
        }

        /// What the apply batch in progress has changed in each subsystem.
        pub(crate) struct Staged {
            $(pub $field: <$ty as Replicated>::Staged,)*
        }

        impl Subsystems {
            pub fn stage(&self) -> Staged {
                Staged { $($field: self.$field.stage(),)* }
            }

            pub fn commit(&self, staged: Staged) {
                $(self.$field.commit(staged.$field);)*
            }

            /// Reloads each subsystem after a snapshot install, naming the one that failed.
            pub fn reload(&self, db: &redb::Database) -> Result<(), ReloadError> {
                $(
                    Replicated::reload(&self.$field, db)
                        .map_err(|source| ReloadError { subsystem: stringify!($field), source })?;
                )*
                Ok(())
            }
        }
    };
}

replicated_subsystems! {
    /// The cluster's members and the removed ids.
    membership: Membership,
    /// The guest the next entry runs in.
    guest: ActiveGuestCell,
    /// etcd's users, roles and tokens.
    auth: AuthStore,
    /// etcd's active alarms.
    alarms: Alarms,
    /// The backend size etcd's quota bounds, counted.
    kv_size: KvSize,
}

impl Replicated for Membership {
    type Staged = membership::Staged;

    fn stage(&self) -> Self::Staged {
        membership::Staged::default()
    }

    fn commit(&self, staged: Self::Staged) {
        Membership::commit(self, staged)
    }

    fn reload(&self, db: &redb::Database) -> Result<(), ReloadFailure> {
        self.replace_with(Membership::load(db)?);
        Ok(())
    }
}

impl Replicated for AuthStore {
    type Staged = auth::Staged;

    fn stage(&self) -> Self::Staged {
        auth::Staged::default()
    }

    fn commit(&self, staged: Self::Staged) {
        staged.commit(self)
    }

    fn reload(&self, db: &redb::Database) -> Result<(), ReloadFailure> {
        Ok(AuthStore::reload(self, db)?)
    }
}

/// The alarms as the batch changes them (an entry sees the alarms raised before it), and as
/// they were before it, to publish only a real change.
pub(crate) struct StagedAlarms {
    pub list: Vec<wasmraft_proto::etcdserverpb::AlarmMember>,
    before: Vec<wasmraft_proto::etcdserverpb::AlarmMember>,
}

impl StagedAlarms {
    /// Whether a NOSPACE alarm is active at this point of the batch.
    pub fn capped(&self) -> bool {
        alarms::is_capped(&self.list)
    }

    /// Whether a CORRUPT alarm is active at this point of the batch.
    pub fn corrupt(&self) -> bool {
        alarms::is_corrupt(&self.list)
    }
}

impl Replicated for Alarms {
    type Staged = StagedAlarms;

    fn stage(&self) -> Self::Staged {
        let list = self.list();
        StagedAlarms { before: list.clone(), list }
    }

    fn commit(&self, staged: Self::Staged) {
        if staged.list != staged.before {
            self.replace(staged.list);
        }
    }

    fn reload(&self, db: &redb::Database) -> Result<(), ReloadFailure> {
        self.replace(Alarms::load(db)?.list());
        Ok(())
    }
}

impl Replicated for KvSize {
    type Staged = StagedKvSize;

    fn stage(&self) -> Self::Staged {
        StagedKvSize { bytes: self.keyspace_bytes(), changed: false }
    }

    fn commit(&self, staged: Self::Staged) {
        if staged.changed {
            self.replace(staged.bytes);
        }
    }

    fn reload(&self, db: &redb::Database) -> Result<(), ReloadFailure> {
        self.replace(KvSize::load(db)?.keyspace_bytes());
        Ok(())
    }
}

impl Replicated for ActiveGuestCell {
    type Staged = active::StagedGuest;

    fn stage(&self) -> Self::Staged {
        active::StagedGuest { active: self.current(), switched: false }
    }

    fn commit(&self, staged: Self::Staged) {
        if staged.switched {
            self.replace(staged.active);
        }
    }

    fn reload(&self, db: &redb::Database) -> Result<(), ReloadFailure> {
        let loaded = crate::deployment::load_active(db, self.registry())?;
        self.replace(loaded.map(Arc::new));
        Ok(())
    }
}
