//! Passwords, hashed as etcd hashes them: bcrypt at `--bcrypt-cost` (etcd's default 10).
//!
//! The hash is computed on the member the client asked, before proposing, and only the hash
//! enters the log (etcd 3.5's `hashed_password`; 3.4 hashed at apply, once per member, with a
//! different salt on each). bcrypt is slow on purpose, so both directions run on tokio's
//! blocking pool, never on the runtime's workers, and at most one per core at a time: a flood
//! of logins otherwise ran hundreds of bcrypt threads at once, and the raft, apply and client
//! threads got a few hundredth of the CPU each (a logged-in client's put waited up to 0.9 s).
//! Go runs etcd's bcrypt on its `GOMAXPROCS` threads, which bounds it the same way.

use std::sync::OnceLock;

use tokio::sync::Semaphore;

/// bcrypt computations allowed at once: one per core.
fn bcrypt_slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())))
}

/// Runs a bcrypt computation on the blocking pool once a slot is free.
async fn bcrypt_blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Result<R, String> {
    // The semaphore is never closed, so acquiring only waits.
    let _slot = bcrypt_slots().acquire().await.map_err(|e| e.to_string())?;
    tokio::task::spawn_blocking(f).await.map_err(|e| e.to_string())
}

/// bcrypt's bounds; etcd falls back to its default outside them.
const MIN_COST: u32 = 4;
const MAX_COST: u32 = 31;
/// etcd's default (`bcrypt.DefaultCost`).
pub const DEFAULT_COST: u32 = 10;

/// The bcrypt cost this member hashes new passwords with.
#[derive(Debug, Clone, Copy)]
pub struct PasswordHasher {
    cost: u32,
}

impl PasswordHasher {
    /// etcd's `NewAuthStore`: an out-of-range cost is replaced by the default, with a warning.
    pub fn new(cost: u32) -> Self {
        if !(MIN_COST..=MAX_COST).contains(&cost) {
            tracing::warn!(
                min_cost = MIN_COST,
                max_cost = MAX_COST,
                default_cost = DEFAULT_COST,
                given_cost = cost,
                "use default bcrypt cost instead of the invalid given cost"
            );
            return Self { cost: DEFAULT_COST };
        }
        Self { cost }
    }
}

/// The bcrypt hash of `password` in Go's `$2a$<cost>$` form, the one etcd stores (the `2b`
/// revision only fixes a length wrap-around in OpenBSD's C code; the hash is the same).
pub async fn hash_password(hasher: PasswordHasher, password: String) -> Result<Vec<u8>, String> {
    bcrypt_blocking(move || {
        bcrypt::hash_with_result(password, hasher.cost)
            .map(|h| h.format_for_version(bcrypt::Version::TwoA).into_bytes())
            .map_err(|e| format!("hashing the password: {e}"))
    })
    .await
    .map_err(|e| format!("hashing the password: {e}"))?
}

/// Whether `password` matches `hash`. A malformed hash matches nothing.
pub async fn verify_password(password: String, hash: Vec<u8>) -> bool {
    bcrypt_blocking(move || {
        let Ok(hash) = String::from_utf8(hash) else { return false };
        bcrypt::verify(password, &hash).unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_carry_the_cost_in_gos_form_and_verify() {
        let hash = hash_password(PasswordHasher::new(4), "pw".into()).await.expect("hash");
        assert!(hash.starts_with(b"$2a$04$"), "{}", String::from_utf8_lossy(&hash));
        assert!(verify_password("pw".into(), hash.clone()).await);
        assert!(!verify_password("other".into(), hash).await);
        let fallback = hash_password(PasswordHasher::new(3), "pw".into()).await.expect("hash");
        assert!(fallback.starts_with(b"$2a$10$"), "{}", String::from_utf8_lossy(&fallback));
    }
}
