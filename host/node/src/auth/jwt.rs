//! etcd's JWT auth tokens (`--auth-token jwt,pub-key=…,priv-key=…,sign-method=…,ttl=…`).
//!
//! A JWT carries its user and the auth revision it was issued at, signed, so any member holding
//! the key checks it alone: no per-token state, nothing lost on restart, and a token from one
//! member (or from etcd given the same key) works on every other. The claims are exactly
//! etcd's (`username`, `revision`, `exp`) for that reason. The price is etcd's too: a token
//! stays valid until it expires, whatever happens to its user in between, except that the
//! auth store's revision moves on with every change and a token older than it is refused as
//! stale ("revision of auth store is old") by every permission check.
//!
//! The options are read and the keys checked when the member starts, with etcd's texts: etcd's
//! own for what `auth.jwtOptions` refuses, "auth: missing key data" without a usable key. Only a
//! public key (RS*, PS*, ES*) makes a verify-only member: it checks tokens other members issue
//! but refuses logins (etcd's `ErrVerifyOnly`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{AuthError, AuthInfo, TokenOptionsError};

/// etcd's `auth.DefaultTTL`, for a JWT without a `ttl` option.
const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);

/// etcd's option names (`auth/options.go`); others are only warned about, as etcd does.
const KNOWN_OPTIONS: &[&str] = &["sign-method", "pub-key", "priv-key", "ttl"];

/// What etcd signs, in its claim names.
#[derive(Serialize)]
struct Issued<'a> {
    username: &'a str,
    revision: u64,
    exp: u64,
}

/// What a presented token must carry. etcd reads `revision` as a JSON number (a float).
#[derive(Deserialize)]
struct Presented {
    username: String,
    revision: f64,
}

pub struct JwtTokens {
    algorithm: Algorithm,
    ttl: Duration,
    /// `None` on a verify-only member (a public key and no private key).
    signer: Option<EncodingKey>,
    verifier: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtTokens")
            .field("algorithm", &self.algorithm)
            .field("ttl", &self.ttl)
            .field("verify_only", &self.signer.is_none())
            .finish()
    }
}

/// The key material the options name, read as etcd's `jwtOptions.Parse` reads it.
struct Options {
    algorithm: Algorithm,
    ttl: Duration,
    public_key: Option<Vec<u8>>,
    private_key: Option<Vec<u8>>,
}

impl Options {
    /// etcd's `ParseWithDefaults`, in its order: ttl, public key file, private key file, sign
    /// method. Every failure here is etcd's "invalid auth options", the reason logged with it.
    fn parse(opts: &BTreeMap<String, String>) -> Result<Options, TokenOptionsError> {
        let invalid =
            |reason: String| TokenOptionsError::Invalid { detail: format!("problem loading JWT options: {reason}") };
        let get = |k: &str| opts.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let ttl = match get("ttl") {
            Some(t) => wasmraft_proto::go::parse_duration(t).map_err(invalid)?,
            None => DEFAULT_TTL,
        };
        let read = |k: &str| -> Result<Option<Vec<u8>>, TokenOptionsError> {
            get(k)
                .map(|p| std::fs::read(p).map_err(|e| invalid(wasmraft_proto::go::open_error(Path::new(p), &e))))
                .transpose()
        };
        let public_key = read("pub-key")?;
        let private_key = read("priv-key")?;
        let method = get("sign-method").unwrap_or_default();
        let algorithm = sign_method(method).map_err(invalid)?;
        Ok(Options { algorithm, ttl, public_key, private_key })
    }
}

/// etcd 3.4's sign methods (jwt-go's names) that ring can do. ES512 (P-521) is etcd's too, but
/// ring has no P-521: refused by name rather than failing at the first login.
fn sign_method(name: &str) -> Result<Algorithm, String> {
    Ok(match name {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "ES512" => return Err("sign-method ES512 (P-521) is not supported by wasmraft; use ES256 or ES384".into()),
        // jwt-go knows "none" but etcd cannot make a key for it.
        "none" => return Err("unsupported signing method: *jwt.signingMethodNone".into()),
        _ => return Err("auth: invalid auth signature method".into()),
    })
}

/// The kind of key a sign method takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Hmac,
    Rsa,
    Ec,
}

fn family(a: Algorithm) -> Family {
    match a {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Family::Hmac,
        Algorithm::ES256 | Algorithm::ES384 => Family::Ec,
        _ => Family::Rsa,
    }
}

/// jwt-go's `ErrKeyMustBePEMEncoded`, which etcd stops with for a file that is no PEM key.
const NOT_PEM: &str = "invalid key: Key must be a PEM encoded PKCS1 or PKCS8 key";

impl JwtTokens {
    /// etcd's `newTokenProviderJWT` over the `--auth-token` options after `jwt`.
    pub fn new(opts: &BTreeMap<String, String>) -> Result<JwtTokens, TokenOptionsError> {
        let o = Options::parse(opts)?;
        let unknown: Vec<&str> = opts.keys().map(String::as_str).filter(|k| !KNOWN_OPTIONS.contains(k)).collect();
        if !unknown.is_empty() {
            tracing::warn!(keys = ?unknown, "unknown JWT options");
        }
        let (signer, verifier) = keys(&o)?;
        let mut validation = Validation::new(o.algorithm);
        // jwt-go's checks: `exp` if present, to the second, no leeway; nothing required.
        validation.leeway = 0;
        validation.required_spec_claims.clear();
        validation.validate_nbf = true;
        validation.validate_aud = false;
        let tokens = JwtTokens { algorithm: o.algorithm, ttl: o.ttl, signer, verifier, validation };
        tokens.check_pair()?;
        tracing::info!(sign_method = ?o.algorithm, ttl = ?o.ttl, verify_only = tokens.signer.is_none(), "using JWT auth tokens");
        Ok(tokens)
    }

    /// A probe token signed and verified at start: ring only refuses a bad key when it signs,
    /// and a public key that does not belong to the private one would make every token this
    /// member issues unverifiable (etcd's `ErrKeyMismatch`).
    fn check_pair(&self) -> Result<(), TokenOptionsError> {
        let Some(signer) = &self.signer else { return Ok(()) };
        let claims = Issued { username: "", revision: 0, exp: u64::MAX / 2 };
        let token = jsonwebtoken::encode(&Header::new(self.algorithm), &claims, signer).map_err(|e| {
            TokenOptionsError::Key(format!("the JWT private key cannot sign with {:?}: {e}", self.algorithm))
        })?;
        if jsonwebtoken::decode::<Presented>(&token, &self.verifier, &self.validation).is_err() {
            return Err(TokenOptionsError::KeyMismatch);
        }
        Ok(())
    }

    /// A token for `user` at auth revision `revision`, expiring `ttl` from now (etcd's
    /// `assign`). A verify-only member cannot make one.
    pub fn sign(&self, user: &str, revision: u64) -> Result<String, AuthError> {
        let Some(signer) = &self.signer else { return Err(AuthError::VerifyOnly) };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let claims = Issued { username: user, revision, exp: (now + self.ttl).as_secs() };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, signer).map_err(|e| {
            tracing::warn!(user_name = %user, revision, "failed to sign a JWT token: {e}");
            AuthError::TokenSigning
        })
    }

    /// Who a token names, if it is signed with this member's key in its sign method and has not
    /// expired (etcd's `info`: the revision is the token's, not the store's).
    pub fn verify(&self, token: &str) -> Option<AuthInfo> {
        match jsonwebtoken::decode::<Presented>(token, &self.verifier, &self.validation) {
            Ok(t) => Some(AuthInfo { user: t.claims.username, revision: t.claims.revision as u64 }),
            Err(e) => {
                tracing::warn!("failed to parse a JWT token: {e}");
                None
            }
        }
    }
}

/// The signing key (none: verify-only) and the verifying key, as etcd's `jwtOptions.Key` picks
/// them: HMAC takes the private key file's bytes as the secret; RSA and EC take PEM keys.
fn keys(o: &Options) -> Result<(Option<EncodingKey>, DecodingKey), TokenOptionsError> {
    let missing = || TokenOptionsError::Key("auth: missing key data".into());
    match family(o.algorithm) {
        Family::Hmac => {
            let secret = o.private_key.as_deref().ok_or_else(missing)?;
            Ok((Some(EncodingKey::from_secret(secret)), DecodingKey::from_secret(secret)))
        }
        Family::Rsa | Family::Ec => {
            let f = family(o.algorithm);
            let signer = o.private_key.as_deref().map(|k| private_key(f, k)).transpose()?;
            let verifier = match (&o.public_key, &o.private_key) {
                (Some(k), _) => public_key(f, k)?,
                (None, Some(k)) => derived_public_key(f, k)?,
                (None, None) => return Err(missing()),
            };
            Ok((signer, verifier))
        }
    }
}

fn private_key(f: Family, pem: &[u8]) -> Result<EncodingKey, TokenOptionsError> {
    let parsed = match f {
        Family::Rsa => EncodingKey::from_rsa_pem(pem),
        _ => EncodingKey::from_ec_pem(sec1_as_pkcs8_pem(pem).as_deref().unwrap_or(pem)),
    };
    parsed.map_err(|_| key_error(f, pem, "private"))
}

fn public_key(f: Family, pem: &[u8]) -> Result<DecodingKey, TokenOptionsError> {
    let parsed = match f {
        Family::Rsa => DecodingKey::from_rsa_pem(pem),
        _ => DecodingKey::from_ec_pem(pem),
    };
    parsed.map_err(|_| key_error(f, pem, "public"))
}

/// jwt-go's texts: not PEM at all, or PEM of another kind of key.
fn key_error(f: Family, pem: &[u8], which: &str) -> TokenOptionsError {
    if ::pem::parse(pem).is_err() {
        return TokenOptionsError::Key(NOT_PEM.into());
    }
    let kind = if f == Family::Rsa { "RSA" } else { "ECDSA" };
    TokenOptionsError::Key(format!("key is not a valid {kind} {which} key"))
}

/// Without `pub-key`, etcd verifies with the private key's public half.
fn derived_public_key(f: Family, pem: &[u8]) -> Result<DecodingKey, TokenOptionsError> {
    use ring::signature::KeyPair;
    let block = ::pem::parse(sec1_as_pkcs8_pem(pem).as_deref().unwrap_or(pem))
        .map_err(|_| TokenOptionsError::Key(NOT_PEM.into()))?;
    let der = block.contents();
    let invalid = || key_error(f, pem, "private");
    match f {
        Family::Rsa => {
            let pair = match block.tag() {
                "RSA PRIVATE KEY" => ring::rsa::KeyPair::from_der(der),
                _ => ring::rsa::KeyPair::from_pkcs8(der),
            }
            .map_err(|e| {
                TokenOptionsError::Key(format!(
                    "the JWT private key is not usable: {e} (RSA keys of 2048 to 8192 bits)"
                ))
            })?;
            Ok(DecodingKey::from_rsa_der(pair.public().as_ref()))
        }
        _ => {
            let rng = ring::rand::SystemRandom::new();
            let pair =
                [&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING]
                    .into_iter()
                    .find_map(|alg| ring::signature::EcdsaKeyPair::from_pkcs8(alg, der, &rng).ok())
                    .ok_or_else(invalid)?;
            Ok(DecodingKey::from_ec_der(pair.public_key().as_ref()))
        }
    }
}

/// OpenSSL's `ecparam -genkey` writes SEC1 (`EC PRIVATE KEY`), which jwt-go reads and ring does
/// not: the same key wrapped as PKCS#8 (`PRIVATE KEY`), its curve taken from the SEC1 key.
fn sec1_as_pkcs8_pem(pem: &[u8]) -> Option<Vec<u8>> {
    let block = ::pem::parse(pem).ok()?;
    if block.tag() != "EC PRIVATE KEY" {
        return None;
    }
    let curve = sec1_curve(block.contents())?;
    // PrivateKeyInfo: version 0, AlgorithmIdentifier { id-ecPublicKey, curve }, the SEC1 key.
    const EC_PUBLIC_KEY_OID: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let alg = der(0x30, &[EC_PUBLIC_KEY_OID, curve].concat());
    let info = der(0x30, &[&[0x02, 0x01, 0x00][..], &alg, &der(0x04, block.contents())].concat());
    Some(::pem::encode(&::pem::Pem::new("PRIVATE KEY", info)).into_bytes())
}

/// The curve OID (tag and length included) in a SEC1 key's `[0] parameters`.
fn sec1_curve(key: &[u8]) -> Option<&[u8]> {
    // ECPrivateKey ::= SEQUENCE { version INTEGER, privateKey OCTET STRING, [0] params, ... }
    let (tag, body, _) = tlv(key)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _, rest) = tlv(body)?;
    let (_, _, rest) = tlv(rest)?;
    let (tag, params, _) = tlv(rest)?;
    (tag == 0xa0).then_some(params)
}

/// One DER element: its tag, its contents and what follows it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 2 || rest.len() < n {
            return None;
        }
        (rest[..n].iter().fold(0usize, |acc, b| acc << 8 | *b as usize), &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// A DER element with `tag` around `contents`.
fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match contents.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n < 0x100 => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(contents);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made once with `openssl genrsa 2048`, `openssl rsa -pubout` and `openssl ecparam -genkey
    // -name prime256v1`: test keys, nothing else uses them.
    const RSA_PRIVATE: &str = include_str!("testdata/rsa-private.pem");
    const RSA_PUBLIC: &str = include_str!("testdata/rsa-public.pem");
    const RSA_OTHER_PUBLIC: &str = include_str!("testdata/rsa-other-public.pem");
    const EC_SEC1_PRIVATE: &str = include_str!("testdata/ec-sec1-private.pem");
    const EC_PUBLIC: &str = include_str!("testdata/ec-public.pem");

    /// Writes the keys to a temp dir and returns the options naming them.
    fn opts(dir: &tempfile::TempDir, pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for (k, v) in pairs {
            let value = if k.ends_with("-key") {
                let path = dir.path().join(format!("{k}.pem"));
                std::fs::write(&path, v).expect("write a test key");
                path.display().to_string()
            } else {
                v.to_string()
            };
            m.insert(k.to_string(), value);
        }
        m
    }

    fn payload(token: &str) -> serde_json::Value {
        use base64::Engine as _;
        let part = token.split('.').nth(1).expect("three parts");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).expect("base64url");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[test]
    fn tokens_carry_etcds_claims_and_verify_on_a_member_with_the_public_key_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let signing = JwtTokens::new(&opts(
            &dir,
            &[("priv-key", RSA_PRIVATE), ("pub-key", RSA_PUBLIC), ("sign-method", "RS256"), ("ttl", "1m")],
        ))
        .expect("signing provider");
        let token = signing.sign("alice", 7).expect("sign");
        assert_eq!(token.split('.').count(), 3);
        let p = payload(&token);
        let exp = p["exp"].as_u64().expect("exp");
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
        assert!((now + 55..=now + 61).contains(&exp), "exp {exp}, now {now}");
        assert_eq!((p["username"].as_str(), p["revision"].as_u64()), (Some("alice"), Some(7)));
        assert_eq!(p.as_object().map(|o| o.len()), Some(3), "{p}");

        let verify_only = JwtTokens::new(&opts(&dir, &[("pub-key", RSA_PUBLIC), ("sign-method", "RS256")]))
            .expect("verify-only provider");
        assert_eq!(verify_only.verify(&token), Some(AuthInfo { user: "alice".into(), revision: 7 }));
        assert_eq!(verify_only.sign("alice", 7), Err(AuthError::VerifyOnly));
        // Without pub-key the private key's own public half verifies.
        let private_only =
            JwtTokens::new(&opts(&dir, &[("priv-key", RSA_PRIVATE), ("sign-method", "RS256")])).expect("private only");
        assert!(private_only.verify(&token).is_some());
        // Another method with the same key, a tampered payload, a foreign key: refused.
        let rs384 = JwtTokens::new(&opts(&dir, &[("pub-key", RSA_PUBLIC), ("sign-method", "RS384")])).expect("RS384");
        assert_eq!(rs384.verify(&token), None);
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let forged = signing.sign("root", 7).expect("sign");
        parts[1] = forged.split('.').nth(1).expect("payload").to_string();
        assert_eq!(signing.verify(&parts.join(".")), None);
        let foreign =
            JwtTokens::new(&opts(&dir, &[("pub-key", RSA_OTHER_PUBLIC), ("sign-method", "RS256")])).expect("foreign");
        assert_eq!(foreign.verify(&token), None);
        assert_eq!(signing.verify("not.a.token"), None);
    }

    #[test]
    fn tokens_expire_after_their_ttl() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t =
            JwtTokens::new(&opts(&dir, &[("priv-key", "a shared secret\n"), ("sign-method", "HS256"), ("ttl", "1s")]))
                .expect("HS256");
        let token = t.sign("bob", 3).expect("sign");
        assert_eq!(t.verify(&token), Some(AuthInfo { user: "bob".into(), revision: 3 }));
        std::thread::sleep(Duration::from_millis(2100));
        assert_eq!(t.verify(&token), None);
    }

    #[test]
    fn ec_keys_from_openssl_sign_and_verify() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = JwtTokens::new(&opts(
            &dir,
            &[("priv-key", EC_SEC1_PRIVATE), ("pub-key", EC_PUBLIC), ("sign-method", "ES256")],
        ))
        .expect("ES256");
        let token = t.sign("carol", 2).expect("sign");
        let v = JwtTokens::new(&opts(&dir, &[("pub-key", EC_PUBLIC), ("sign-method", "ES256")]))
            .expect("verify-only ES256");
        assert_eq!(v.verify(&token), Some(AuthInfo { user: "carol".into(), revision: 2 }));
        let derived =
            JwtTokens::new(&opts(&dir, &[("priv-key", EC_SEC1_PRIVATE), ("sign-method", "ES256")])).expect("derived");
        assert!(derived.verify(&token).is_some());
    }

    #[test]
    fn bad_options_are_refused_with_etcds_texts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = |pairs: &[(&str, &str)]| format!("{:#}", JwtTokens::new(&opts(&dir, pairs)).expect_err("refused"));
        assert_eq!(
            err(&[]),
            "auth: invalid auth options (problem loading JWT options: auth: invalid auth signature method)"
        );
        assert!(err(&[("sign-method", "RS256"), ("ttl", "abc")]).contains("time: invalid duration \"abc\""));
        assert_eq!(err(&[("sign-method", "RS256")]), "auth: missing key data");
        assert_eq!(err(&[("sign-method", "HS256"), ("pub-key", RSA_PUBLIC)]), "auth: missing key data");
        assert_eq!(err(&[("sign-method", "RS256"), ("priv-key", "junk\n")]), NOT_PEM);
        assert_eq!(err(&[("sign-method", "ES256"), ("priv-key", RSA_PRIVATE)]), "key is not a valid ECDSA private key");
        assert_eq!(
            err(&[("sign-method", "RS256"), ("priv-key", RSA_PRIVATE), ("pub-key", RSA_OTHER_PUBLIC)]),
            "auth: public and private keys don't match"
        );
        assert!(err(&[("sign-method", "ES512"), ("priv-key", EC_SEC1_PRIVATE)]).contains("not supported by wasmraft"));
        let missing = dir.path().join("nope.pem").display().to_string();
        let mut o = opts(&dir, &[("sign-method", "RS256")]);
        o.insert("pub-key".into(), missing.clone());
        let text = format!("{:#}", JwtTokens::new(&o).expect_err("refused"));
        assert_eq!(
            text,
            format!(
                "auth: invalid auth options (problem loading JWT options: open {missing}: no such file or directory)"
            )
        );
        // Unknown options are only warned about, as in etcd.
        assert!(
            JwtTokens::new(&opts(&dir, &[("sign-method", "RS256"), ("priv-key", RSA_PRIVATE), ("colour", "blue")]))
                .is_ok()
        );
    }

    #[test]
    fn der_lengths_round_trip() {
        for n in [0usize, 5, 127, 128, 255, 256, 300] {
            let body = vec![7u8; n];
            let e = der(0x04, &body);
            assert_eq!(tlv(&e), Some((0x04, body.as_slice(), &[][..])));
        }
    }
}
