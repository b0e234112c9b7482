//! etcd's simple tokens: `<16 random letters>.<index of the Authenticate entry>`, assigned on
//! every member when it applies the entry, kept in memory, and dropped after `--auth-token-ttl`
//! without use (each use restarts the clock), when their user is deleted or changes password,
//! and all at once when auth is disabled.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};

/// etcd's token prefix length and alphabet (`randString`).
const PREFIX_LEN: usize = 16;
const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

struct Token {
    user: String,
    last_used: Instant,
}

pub struct SimpleTokens {
    ttl: Duration,
    tokens: Mutex<HashMap<String, Token>>,
}

impl SimpleTokens {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, tokens: Mutex::new(HashMap::new()) }
    }

    /// A fresh random prefix for an Authenticate proposal.
    pub fn gen_prefix() -> Result<String, String> {
        let mut raw = [0u8; PREFIX_LEN];
        SystemRandom::new().fill(&mut raw).map_err(|_| "no randomness for an auth token".to_string())?;
        Ok(raw.iter().map(|b| LETTERS[*b as usize % LETTERS.len()] as char).collect())
    }

    /// The token an Authenticate entry at `index` with `prefix` gives, on every member.
    pub fn token(prefix: &str, index: u64) -> String {
        format!("{prefix}.{index}")
    }

    /// Makes the token of an applied Authenticate entry live and returns it.
    pub fn assign(&self, prefix: &str, index: u64, user: &str) -> String {
        let token = Self::token(prefix, index);
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let ttl = self.ttl;
        tokens.retain(|_, t| t.last_used.elapsed() < ttl);
        tokens.insert(token.clone(), Token { user: user.to_string(), last_used: Instant::now() });
        token
    }

    /// The user `token` belongs to, if it is live (its clock restarts).
    pub fn user_of(&self, token: &str) -> Option<String> {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let t = tokens.get_mut(token)?;
        if t.last_used.elapsed() >= self.ttl {
            tokens.remove(token);
            return None;
        }
        t.last_used = Instant::now();
        Some(t.user.clone())
    }

    pub fn invalidate_user(&self, user: &str) {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, t| t.user != user);
    }

    pub fn clear(&self) {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_unless_used_and_go_with_their_user() {
        let t = SimpleTokens::new(Duration::from_millis(200));
        let prefix = SimpleTokens::gen_prefix().expect("prefix");
        assert_eq!(prefix.len(), 16);
        let a = t.assign(&prefix, 7, "alice");
        assert_eq!(a, format!("{prefix}.7"));
        let b = t.assign("x", 8, "bob");
        assert_eq!(t.user_of(&a).as_deref(), Some("alice"));
        t.invalidate_user("alice");
        assert_eq!(t.user_of(&a), None);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(t.user_of(&b), None);
    }
}
