//! Which kind of auth token a member hands out and accepts (`--auth-token`): etcd's simple
//! tokens or JWTs. An enum, not a trait object: the kinds are two, chosen once at start, and
//! their differences (state or none, the revision taken from the store or from the token) are
//! easier to see side by side than behind a vtable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::jwt::JwtTokens;
use super::simple_tokens::SimpleTokens;
use super::{AuthError, AuthInfo, TokenOptionsError};

/// `--auth-token` as parsed and checked when the member starts (the JWT keys loaded).
#[derive(Debug, Clone)]
pub enum TokenOptions {
    Simple,
    Jwt(Arc<JwtTokens>),
}

impl TokenOptions {
    /// etcd's `NewTokenProvider`: `simple`, or `jwt` followed by `,key=value` options. What etcd
    /// refuses stops the member with its text ("auth: invalid auth options", the reason etcd
    /// logs in parentheses) or the key loader's.
    pub fn parse(flag: &str) -> Result<TokenOptions, TokenOptionsError> {
        let mut parts = flag.split(',');
        let kind = parts.next().unwrap_or_default();
        let mut options = BTreeMap::new();
        for part in parts {
            let invalid = |why: &str| TokenOptionsError::Invalid { detail: format!("{why}: {flag}") };
            let [key, value] = part.split('=').collect::<Vec<_>>()[..] else {
                return Err(invalid("invalid token specific option"));
            };
            if options.insert(key.to_string(), value.to_string()).is_some() {
                return Err(invalid(&format!("invalid token specific option, duplicated parameters ({key})")));
            }
        }
        match kind {
            "simple" => Ok(TokenOptions::Simple),
            "jwt" => Ok(TokenOptions::Jwt(Arc::new(JwtTokens::new(&options)?))),
            other => Err(TokenOptionsError::Invalid { detail: format!("unknown token type: {other}") }),
        }
    }
}

/// The member's tokens: simple ones live in its memory, JWTs only in the clients' hands.
pub enum TokenProvider {
    Simple(SimpleTokens),
    Jwt(Arc<JwtTokens>),
}

impl TokenProvider {
    /// `simple_ttl` is `--auth-token-ttl` (a JWT's lifetime is its own `ttl` option).
    pub fn new(options: &TokenOptions, simple_ttl: Duration) -> TokenProvider {
        match options {
            TokenOptions::Simple => {
                // etcd's warning when its auth store starts with simple tokens.
                tracing::warn!("simple token is not cryptographically signed");
                TokenProvider::Simple(SimpleTokens::new(simple_ttl))
            }
            TokenOptions::Jwt(j) => TokenProvider::Jwt(j.clone()),
        }
    }

    /// What an Authenticate proposal carries: a simple token's random prefix; nothing for a
    /// JWT (etcd's `genTokenPrefix`), which is signed when the entry applies.
    pub fn gen_prefix(&self) -> Result<String, String> {
        match self {
            TokenProvider::Simple(_) => SimpleTokens::gen_prefix(),
            TokenProvider::Jwt(_) => Ok(String::new()),
        }
    }

    /// The token an applied Authenticate entry answers with (etcd's `assign`): the same simple
    /// token on every member, or a JWT this member signs for `user` at the store's `revision`.
    pub fn issue(&self, prefix: &str, index: u64, user: &str, revision: u64) -> Result<String, AuthError> {
        match self {
            TokenProvider::Simple(_) => Ok(SimpleTokens::token(prefix, index)),
            TokenProvider::Jwt(j) => j.sign(user, revision),
        }
    }

    /// Makes an issued simple token live once its entry's batch has committed.
    pub fn remember(&self, prefix: &str, index: u64, user: &str) {
        if let TokenProvider::Simple(s) = self {
            s.assign(prefix, index, user);
        }
    }

    /// Who `token` belongs to (etcd's `info`): a simple token's user at the store's current
    /// revision; a JWT's user at the revision it was issued at, so a token older than the store
    /// is refused as stale by the permission checks, as in etcd.
    pub fn info(&self, token: &str, current_revision: u64) -> Option<AuthInfo> {
        match self {
            TokenProvider::Simple(s) => s.user_of(token).map(|user| AuthInfo { user, revision: current_revision }),
            TokenProvider::Jwt(j) => j.verify(token),
        }
    }

    /// A user deleted or given a new password: their simple tokens go (a JWT cannot be called
    /// back; the revision bump makes it stale instead).
    pub fn invalidate_user(&self, user: &str) {
        if let TokenProvider::Simple(s) = self {
            s.invalidate_user(user);
        }
    }

    /// Auth disabled or a snapshot installed: every simple token goes.
    pub fn clear(&self) {
        if let TokenProvider::Simple(s) = self {
            s.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(flag: &str) -> String {
        format!("{:#}", TokenOptions::parse(flag).expect_err("refused"))
    }

    #[test]
    fn the_flag_is_parsed_as_etcd_parses_it() {
        assert!(matches!(TokenOptions::parse("simple"), Ok(TokenOptions::Simple)));
        // etcd ignores options after `simple`.
        assert!(matches!(TokenOptions::parse("simple,ttl=1s"), Ok(TokenOptions::Simple)));
        assert_eq!(refusal("bogus"), "auth: invalid auth options (unknown token type: bogus)");
        assert_eq!(refusal(""), "auth: invalid auth options (unknown token type: )");
        assert_eq!(
            refusal("jwt,pub-key,sign-method=RS256"),
            "auth: invalid auth options (invalid token specific option: jwt,pub-key,sign-method=RS256)"
        );
        assert_eq!(refusal("jwt,ttl=a=b"), "auth: invalid auth options (invalid token specific option: jwt,ttl=a=b)");
        assert_eq!(
            refusal("jwt,sign-method=RS256,sign-method=RS384"),
            "auth: invalid auth options (invalid token specific option, duplicated parameters (sign-method): jwt,sign-method=RS256,sign-method=RS384)"
        );
        assert_eq!(refusal("jwt,sign-method=RS256"), "auth: missing key data");
    }

    #[test]
    fn simple_tokens_take_the_store_revision_and_jwts_their_own() {
        let simple = TokenProvider::new(&TokenOptions::Simple, Duration::from_secs(60));
        let token = simple.issue("abc", 9, "alice", 4).expect("simple token");
        assert_eq!(token, "abc.9");
        assert_eq!(simple.info(&token, 5), None, "not live before its batch commits");
        simple.remember("abc", 9, "alice");
        assert_eq!(simple.info(&token, 5), Some(AuthInfo { user: "alice".into(), revision: 5 }));
        simple.invalidate_user("alice");
        assert_eq!(simple.info(&token, 5), None);

        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cret").expect("write the secret");
        let options =
            TokenOptions::parse(&format!("jwt,sign-method=HS256,priv-key={}", secret.display())).expect("jwt options");
        let jwt = TokenProvider::new(&options, Duration::from_secs(60));
        assert_eq!(jwt.gen_prefix().as_deref(), Ok(""));
        let token = jwt.issue("", 9, "alice", 4).expect("jwt");
        jwt.clear();
        assert_eq!(jwt.info(&token, 5), Some(AuthInfo { user: "alice".into(), revision: 4 }));
    }
}
