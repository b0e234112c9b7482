//! etcd's JWT auth tokens (`--auth-token jwt,pub-key=…,priv-key=…,sign-method=RS256,ttl=…`),
//! real etcd 3.4.23 and wasmraft side by side with the same RSA key pair (made by `openssl`):
//! the same etcdctl script and raw-token requests print the same; a token is a three-part JWT
//! with exactly etcd's claims; tokens cross between etcd and wasmraft and between the members of
//! a cluster (one of them verify-only); they expire after their ttl; bad options stop a member
//! with etcd's text.
//!
//! etcdctl never shows its token, so the token steps send one themselves over gRPC (a Range with
//! the `token` metadata, as every etcd client does).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use wasmraft_proto::etcdserverpb::{PutRequest, RangeRequest, kv_client::KvClient};
use wasmraft_tests::{ClusterConfig, CmdOutput, Etcdctl, Flavor, Member, MemberConfig};

const ROOT: &str = "--user=root:pw";
const ALICE: &str = "--user=alice:apw";

/// An RSA key pair in PEM files, shared by every member of a test (etcd's and wasmraft's).
struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Keys {
        let dir = tempfile::tempdir().expect("temp dir for keys");
        let sh = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(dir.path()).output().expect("run openssl");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        sh(&["genrsa", "-out", "priv.pem", "2048"]);
        sh(&["rsa", "-in", "priv.pem", "-pubout", "-out", "pub.pem"]);
        // SEC1 (`EC PRIVATE KEY`), as `openssl ecparam -genkey` writes it.
        sh(&["ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", "ec-priv.pem"]);
        sh(&["ec", "-in", "ec-priv.pem", "-pubout", "-out", "ec-pub.pem"]);
        std::fs::write(dir.path().join("secret"), "a shared secret\n").expect("write the HMAC secret");
        Keys { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `--auth-token` for a member that signs and verifies.
    fn flag(&self, ttl: &str) -> String {
        format!(
            "--auth-token=jwt,pub-key={},priv-key={},sign-method=RS256,ttl={ttl}",
            self.path("pub.pem").display(),
            self.path("priv.pem").display()
        )
    }

    /// `--auth-token` for a member that only verifies (etcd's verify-only mode).
    fn verify_only_flag(&self) -> String {
        format!("--auth-token=jwt,pub-key={},sign-method=RS256", self.path("pub.pem").display())
    }
}

/// One step: what ran, whether real etcd must succeed, what came out.
struct Step {
    what: String,
    ok: bool,
    out: CmdOutput,
}

/// A script's run on one flavor.
struct Run {
    flavor: Flavor,
    endpoint: String,
    steps: Vec<Step>,
}

impl Run {
    fn new(flavor: Flavor, endpoint: String) -> Run {
        Run { flavor, endpoint, steps: Vec::new() }
    }

    fn ctl(&mut self, ok: bool, args: &[&str]) {
        let out = Etcdctl::new(self.endpoint.clone()).run(args);
        self.steps.push(Step { what: format!("etcdctl {}", args.join(" ")), ok, out });
    }

    /// A Range of `key` sent with `token`, as a step.
    fn get_with(&mut self, ok: bool, what: &str, token: &str, key: &str) {
        let result = get_with_token(&self.endpoint, token, key);
        self.outcome(ok, format!("get {key} with {what}"), result);
    }

    /// A Put of `key` sent with `token`, as a step.
    fn put_with(&mut self, ok: bool, what: &str, token: &str, key: &str) {
        let result = put_with_token(&self.endpoint, token, key);
        self.outcome(ok, format!("put {key} with {what}"), result);
    }

    fn outcome(&mut self, ok: bool, what: String, result: Result<String, String>) {
        let out = match result {
            Ok(v) => CmdOutput { code: Some(0), stdout: format!("{v}\n"), stderr: String::new() },
            Err(e) => CmdOutput { code: Some(1), stdout: String::new(), stderr: format!("{e}\n") },
        };
        self.steps.push(Step { what, ok, out });
    }
}

/// Asserts the reference run did what each step expects, then that both runs printed the same.
fn assert_same(etcd: &Run, ours: &Run) {
    let wrong: Vec<String> = etcd
        .steps
        .iter()
        .filter(|s| s.out.success() != s.ok)
        .map(|s| format!("{} (expected ok={}):\n{}", s.what, s.ok, s.out.render()))
        .collect();
    assert!(wrong.is_empty(), "the script is wrong against real etcd:\n{}", wrong.join("\n"));
    assert_eq!(etcd.steps.len(), ours.steps.len());
    let diffs: Vec<String> = etcd
        .steps
        .iter()
        .zip(&ours.steps)
        .filter_map(|(e, w)| {
            let (eo, wo) = (blank(&e.out, &etcd.endpoint), blank(&w.out, &ours.endpoint));
            if std::env::var_os("WASMRAFT_COMPAT_DUMP").is_some() {
                eprintln!(
                    "{}\n--- {} ---\n{}--- {} ---\n{}",
                    e.what,
                    etcd.flavor,
                    eo.render(),
                    ours.flavor,
                    wo.render()
                );
            }
            (eo != wo).then(|| {
                format!("{}\n--- {} ---\n{}--- {} ---\n{}", e.what, etcd.flavor, eo.render(), ours.flavor, wo.render())
            })
        })
        .collect();
    assert!(diffs.is_empty(), "{} of {} steps differ:\n\n{}", diffs.len(), etcd.steps.len(), diffs.join("\n"));
}

fn blank(o: &CmdOutput, endpoint: &str) -> CmdOutput {
    let o = o.normalized();
    CmdOutput {
        code: o.code,
        stdout: o.stdout.replace(endpoint, "<endpoint>"),
        stderr: o.stderr.replace(endpoint, "<endpoint>"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    wasmraft_tests::runtime()
}

/// A token from the Auth service through the etcd-client crate.
fn login(endpoint: &str, user: &str, password: &str) -> Result<String, String> {
    runtime().block_on(async {
        let c = etcd_client::Client::connect([endpoint], None).await.map_err(|e| e.to_string())?;
        let resp = c.auth_client().authenticate(user.to_string(), password.to_string()).await.map_err(|e| match e {
            etcd_client::Error::GRpcStatus(s) => format!("{:?}: {}", s.code(), s.message()),
            other => other.to_string(),
        })?;
        Ok(resp.token().to_string())
    })
}

/// `message` with the `token` metadata, as every etcd client sends its token.
fn with_token<T>(message: T, token: &str) -> Result<tonic::Request<T>, String> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut().insert("token", token.parse().map_err(|_| "token is not ASCII".to_string())?);
    Ok(req)
}

fn status_text(s: tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

/// The values of a Range of `key` sent with `token`, or the gRPC code and message.
fn get_with_token(endpoint: &str, token: &str, key: &str) -> Result<String, String> {
    runtime().block_on(async {
        let mut kv = KvClient::connect(endpoint.to_string()).await.map_err(|e| e.to_string())?;
        let req = with_token(RangeRequest { key: key.as_bytes().to_vec(), ..Default::default() }, token)?;
        let resp = kv.range(req).await.map_err(status_text)?.into_inner();
        Ok(resp
            .kvs
            .iter()
            .map(|kv| format!("{}={}", String::from_utf8_lossy(&kv.key), String::from_utf8_lossy(&kv.value)))
            .collect::<Vec<_>>()
            .join(","))
    })
}

/// A Put of `key` (value "v") sent with `token`: "OK", or the gRPC code and message.
fn put_with_token(endpoint: &str, token: &str, key: &str) -> Result<String, String> {
    runtime().block_on(async {
        let mut kv = KvClient::connect(endpoint.to_string()).await.map_err(|e| e.to_string())?;
        let req =
            with_token(PutRequest { key: key.as_bytes().to_vec(), value: b"v".to_vec(), ..Default::default() }, token)?;
        kv.put(req).await.map_err(status_text)?;
        Ok("OK".into())
    })
}

/// A JWT's payload as JSON.
fn claims(token: &str) -> serde_json::Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts: {token}");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1]).expect("base64url payload");
    serde_json::from_slice(&payload).expect("JSON payload")
}

/// `token` with its signature's first character changed.
fn tampered(token: &str) -> String {
    let (head, sig) = token.rsplit_once('.').expect("a JWT");
    let first = if sig.starts_with('A') { 'B' } else { 'A' };
    format!("{head}.{first}{}", &sig[1..])
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

/// Users `root` and `alice` (who reads `foo/`), two keys, auth on: the same on every flavor.
fn setup(run: &mut Run) {
    run.ctl(true, &["user", "add", "root:pw", "--interactive=false"]);
    run.ctl(true, &["user", "add", "alice:apw", "--interactive=false"]);
    run.ctl(true, &["role", "add", "reader"]);
    run.ctl(true, &["role", "grant-permission", "reader", "read", "foo/", "--prefix"]);
    run.ctl(true, &["user", "grant-role", "alice", "reader"]);
    run.ctl(true, &["put", "foo/a", "1"]);
    run.ctl(true, &["put", "bar", "x"]);
    run.ctl(true, &["auth", "enable"]);
}

fn script(flavor: Flavor, keys: &Keys) -> Run {
    let member = Member::start_with(MemberConfig::new(flavor).arg(keys.flag("1m")));
    let mut run = Run::new(flavor, member.endpoint());
    setup(&mut run);

    // etcdctl logs in per call: users see what their roles allow.
    run.ctl(false, &["get", "foo/a"]);
    run.ctl(true, &[ALICE, "get", "foo/a"]);
    run.ctl(false, &[ALICE, "get", "bar"]);
    run.ctl(false, &[ALICE, "put", "foo/a", "2"]);
    run.ctl(false, &["--user=alice:wrong", "get", "foo/a"]);
    run.ctl(true, &[ALICE, "user", "get", "alice"]);
    run.ctl(false, &[ALICE, "user", "list"]);
    run.ctl(true, &[ROOT, "user", "list"]);
    run.ctl(true, &[ROOT, "put", "bar", "y"]);

    // The token itself: good, tampered, garbage.
    let token = login(&run.endpoint, "alice", "apw").unwrap_or_else(|e| format!("no token: {e}"));
    run.get_with(true, "alice's token", &token, "foo/a");
    run.get_with(false, "alice's token tampered", &tampered(&token), "foo/a");
    run.get_with(false, "a token that is no JWT", "abc.123", "foo/a");
    let root = login(&run.endpoint, "root", "pw").unwrap_or_else(|e| format!("no token: {e}"));
    run.put_with(true, "root's token", &root, "k");
    run.put_with(false, "alice's token", &token, "foo/a");
    // Any auth change makes earlier tokens stale (the token's revision is older than the store's):
    // reads and writes, root's too.
    run.ctl(true, &[ROOT, "role", "grant-permission", "reader", "read", "bar"]);
    run.get_with(false, "alice's token from before the grant", &token, "bar");
    run.put_with(false, "root's token from before the grant", &root, "k");
    let fresh = login(&run.endpoint, "alice", "apw").unwrap_or_else(|e| format!("no token: {e}"));
    run.get_with(true, "a fresh token", &fresh, "bar");
    let root = login(&run.endpoint, "root", "pw").unwrap_or_else(|e| format!("no token: {e}"));
    // Auth off: a bad token is still refused, and so is a read with one from before the
    // disable (etcd's doSerialize wants the token's revision to be the store's, auth on or off);
    // etcdctl's `--user` finds auth off and goes on without a token.
    run.ctl(true, &[ROOT, "auth", "disable"]);
    run.ctl(true, &["get", "bar"]);
    run.get_with(false, "a token from before auth was disabled", &fresh, "bar");
    run.get_with(false, "a tampered token after auth was disabled", &tampered(&fresh), "bar");
    // Writes are checked only while auth is on: the same stale tokens write.
    run.put_with(true, "alice's token from before auth was disabled", &fresh, "foo/a");
    run.put_with(true, "root's token from before auth was disabled", &root, "k");
    run.ctl(true, &[ALICE, "put", "bar", "z"]);
    run.ctl(true, &["get", "bar"]);
    run
}

#[test]
fn jwt_script_matches_etcd() {
    let _serial = wasmraft_tests::one_cluster_at_a_time();
    let keys = Keys::new();
    let etcd = script(Flavor::Etcd, &keys);
    let ours = script(Flavor::subject(), &keys);
    assert_same(&etcd, &ours);
}

/// etcd and the subject started with `flag`, set up alike, and a token alice got from each.
/// wasmraft's enable bumps the auth revision and etcd 3.4's does not, so etcd gets one extra
/// change first: both stores end at the same revision (a token older than a store is stale).
fn etcd_and_ours(flag: &str) -> (Member, Member, String, String) {
    let etcd = Member::start_with(MemberConfig::new(Flavor::Etcd).arg(flag));
    let ours = Member::start_with(MemberConfig::new(Flavor::subject()).arg(flag));
    let mut e = Run::new(Flavor::Etcd, etcd.endpoint());
    if Flavor::subject() == Flavor::Wasmraft {
        e.ctl(true, &["role", "add", "padding"]);
    }
    setup(&mut e);
    let mut w = Run::new(Flavor::subject(), ours.endpoint());
    setup(&mut w);
    for s in e.steps.iter().chain(&w.steps) {
        assert!(s.out.success(), "{flag} setup: {}\n{}", s.what, s.out.render());
    }
    let from_etcd = login(&etcd.endpoint(), "alice", "apw").expect("alice logs in on etcd");
    let from_ours = login(&ours.endpoint(), "alice", "apw").expect("alice logs in on wasmraft");
    (etcd, ours, from_etcd, from_ours)
}

/// etcd and wasmraft, up at once with the same keys: each one's tokens carry etcd's claims and
/// work on the other.
#[test]
fn jwt_tokens_cross_between_etcd_and_wasmraft() {
    let _serial = wasmraft_tests::one_cluster_at_a_time();
    let keys = Keys::new();
    let (etcd, ours, from_etcd, from_ours) = etcd_and_ours(&keys.flag("1m"));
    let issued = now_secs();
    let (ce, cw) = (claims(&from_etcd), claims(&from_ours));
    for c in [&ce, &cw] {
        let mut names: Vec<&String> = c.as_object().expect("claims object").keys().collect();
        names.sort();
        assert_eq!(names, ["exp", "revision", "username"], "{c}");
        assert_eq!(c["username"], "alice");
        let exp = c["exp"].as_u64().expect("exp is a number");
        assert!((issued + 55..=issued + 61).contains(&exp), "exp {exp} is not a minute after {issued}: {c}");
    }
    assert_eq!(ce["revision"], cw["revision"], "the two stores should be at the same auth revision: {ce} {cw}");

    assert_eq!(get_with_token(&ours.endpoint(), &from_etcd, "foo/a"), Ok("foo/a=1".into()), "etcd's token on wasmraft");
    assert_eq!(get_with_token(&etcd.endpoint(), &from_ours, "foo/a"), Ok("foo/a=1".into()), "wasmraft's token on etcd");
    let invalid = Err("Unauthenticated: etcdserver: invalid auth token".to_string());
    assert_eq!(
        get_with_token(&ours.endpoint(), &tampered(&from_etcd), "foo/a"),
        invalid,
        "etcd's token tampered, on wasmraft"
    );
    assert_eq!(
        get_with_token(&etcd.endpoint(), &tampered(&from_ours), "foo/a"),
        invalid,
        "wasmraft's token tampered, on etcd"
    );
    let denied = Err("PermissionDenied: etcdserver: permission denied".to_string());
    assert_eq!(get_with_token(&ours.endpoint(), &from_etcd, "bar"), denied, "etcd's token still names alice");
    let root = login(&etcd.endpoint(), "root", "pw").expect("root logs in on etcd");
    assert_eq!(get_with_token(&ours.endpoint(), &root, "bar"), Ok("bar=x".into()), "etcd's root token on wasmraft");
}

/// The other kinds of sign method etcd 3.4 offers cross too: RSA-PSS, ECDSA with OpenSSL's SEC1
/// key, and HMAC with the private key file's bytes as the secret.
#[test]
fn jwt_other_sign_methods_cross_with_etcd() {
    let _serial = wasmraft_tests::one_cluster_at_a_time();
    let keys = Keys::new();
    let p = |name: &str| keys.path(name).display().to_string();
    let methods = [
        ("PS384", format!("pub-key={},priv-key={}", p("pub.pem"), p("priv.pem"))),
        ("ES256", format!("pub-key={},priv-key={}", p("ec-pub.pem"), p("ec-priv.pem"))),
        ("HS256", format!("priv-key={}", p("secret"))),
    ];
    for (method, files) in methods {
        let flag = format!("--auth-token=jwt,{files},sign-method={method},ttl=1m");
        let (etcd, ours, from_etcd, from_ours) = etcd_and_ours(&flag);
        let header = |t: &str| -> serde_json::Value {
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t.split('.').next().unwrap_or_default())
                .expect("base64url header");
            serde_json::from_slice(&raw).expect("JSON header")
        };
        assert_eq!(
            (header(&from_etcd)["alg"].as_str(), header(&from_ours)["alg"].as_str()),
            (Some(method), Some(method))
        );
        assert_eq!(
            get_with_token(&ours.endpoint(), &from_etcd, "foo/a"),
            Ok("foo/a=1".into()),
            "{method}: etcd's token on wasmraft"
        );
        assert_eq!(
            get_with_token(&etcd.endpoint(), &from_ours, "foo/a"),
            Ok("foo/a=1".into()),
            "{method}: wasmraft's token on etcd"
        );
        let invalid = Err("Unauthenticated: etcdserver: invalid auth token".to_string());
        assert_eq!(
            get_with_token(&ours.endpoint(), &tampered(&from_etcd), "foo/a"),
            invalid,
            "{method}: tampered, on wasmraft"
        );
    }
}

/// A token one member issues works on the others; a member with only the public key verifies
/// tokens but refuses logins with etcd's error. Run on etcd too, which must agree.
#[test]
fn jwt_from_one_member_works_on_another() {
    let _serial = wasmraft_tests::one_cluster_at_a_time();
    let keys = Keys::new();
    let run = |flavor: Flavor| -> Vec<(String, Result<String, String>)> {
        let mut c = ClusterConfig::new(flavor, 3).arg(keys.flag("1m")).start();
        c.wait_leader(Duration::from_secs(30));
        // Member 2 restarts verify-only.
        c.member_mut(2).terminate();
        let args = &mut c.member_mut(2).config_mut().extra_args;
        args.retain(|a| !a.starts_with("--auth-token="));
        args.push(keys.verify_only_flag());
        c.restart(2);
        let mut r = Run::new(flavor, c.endpoint(0));
        setup(&mut r);
        for s in &r.steps {
            assert!(s.out.success(), "{flavor} setup: {}\n{}", s.what, s.out.render());
        }
        c.wait_converged(Duration::from_secs(30));
        let mut seen = Vec::new();
        let token = login(&c.endpoint(0), "alice", "apw");
        seen.push(("login on member 0".to_string(), token.clone().map(|_| "token".into())));
        let token = token.unwrap_or_default();
        for i in 0..3 {
            seen.push((format!("member 0's token on member {i}"), get_with_token(&c.endpoint(i), &token, "foo/a")));
        }
        // Tokens are not member state: a member killed and restarted still takes them.
        c.kill9(1);
        c.restart(1);
        seen.push((
            "member 0's token on member 1 after its kill -9 and restart".into(),
            get_with_token(&c.endpoint(1), &token, "foo/a"),
        ));
        let from_1 = login(&c.endpoint(1), "alice", "apw").unwrap_or_default();
        seen.push(("member 1's token on member 2".into(), get_with_token(&c.endpoint(2), &from_1, "foo/a")));
        seen.push(("login on the verify-only member".into(), login(&c.endpoint(2), "alice", "apw")));
        let out = Etcdctl::new(c.endpoint(2)).run(&[ALICE, "get", "foo/a"]);
        let out = out.normalized();
        seen.push((
            "etcdctl --user on the verify-only member".into(),
            if out.success() { Ok(out.stdout) } else { Err(out.stderr) },
        ));
        seen
    };
    let etcd = run(Flavor::Etcd);
    let ours = run(Flavor::subject());
    let expected_ok = [true, true, true, true, true, true, false, false];
    for (i, ((what, e), ok)) in etcd.iter().zip(expected_ok).enumerate() {
        assert_eq!(e.is_ok(), ok, "etcd: {what}: {e:?}");
        assert_eq!((what, e), (&ours[i].0, &ours[i].1), "{} differs from etcd", Flavor::subject());
    }
    assert!(
        etcd[6].1.as_ref().is_err_and(|e| e.contains("auth: token signing attempted with verify-only key")),
        "{:?}",
        etcd[6]
    );
}

/// A token dies `ttl` after it was issued (to the second, as etcd's `exp` is), on both.
#[test]
fn jwt_expires_after_its_ttl() {
    let _serial = wasmraft_tests::one_cluster_at_a_time();
    let keys = Keys::new();
    for flavor in [Flavor::Etcd, Flavor::subject()] {
        let member = Member::start_with(MemberConfig::new(flavor).arg(keys.flag("2s")));
        let mut r = Run::new(flavor, member.endpoint());
        setup(&mut r);
        let token = login(&member.endpoint(), "alice", "apw").expect("alice logs in");
        let exp = claims(&token)["exp"].as_u64().expect("exp");
        assert!(exp <= now_secs() + 2, "{flavor}: exp {exp} more than 2s ahead");
        assert_eq!(
            get_with_token(&member.endpoint(), &token, "foo/a"),
            Ok("foo/a=1".into()),
            "{flavor}: a fresh token"
        );
        while now_secs() <= exp {
            std::thread::sleep(Duration::from_millis(200));
        }
        let refused = get_with_token(&member.endpoint(), &token, "foo/a");
        assert_eq!(
            refused,
            Err("Unauthenticated: etcdserver: invalid auth token".into()),
            "{flavor}: an expired token"
        );
        let out = Etcdctl::new(member.endpoint()).run(&[ALICE, "get", "foo/a"]);
        assert!(out.success(), "{flavor}: a new login works: {}", out.render());
    }
}

/// Bad options stop the member (exit 1) with etcd's text, on both.
#[test]
fn bad_jwt_options_stop_the_member() {
    let keys = Keys::new();
    let (public, private) = (keys.path("pub.pem"), keys.path("priv.pem"));
    let missing = keys.path("missing.pem");
    std::fs::write(keys.path("junk.pem"), "junk\n").expect("write junk");
    let cases = [
        ("jwt".to_string(), "auth: invalid auth options"),
        (
            format!("jwt,pub-key={},priv-key={},sign-method=XX256", public.display(), private.display()),
            "auth: invalid auth options",
        ),
        (format!("jwt,pub-key={},sign-method=RS256", missing.display()), "auth: invalid auth options"),
        (format!("jwt,priv-key={},sign-method=RS256,ttl=soon", private.display()), "auth: invalid auth options"),
        ("jwt,pub-key,sign-method=RS256".to_string(), "auth: invalid auth options"),
        ("bogus".to_string(), "auth: invalid auth options"),
        ("jwt,sign-method=RS256".to_string(), "auth: missing key data"),
        (
            format!("jwt,priv-key={},sign-method=RS256", keys.path("junk.pem").display()),
            "invalid key: Key must be a PEM encoded PKCS1 or PKCS8 key",
        ),
    ];
    for (flag, text) in cases {
        for flavor in [Flavor::Etcd, Flavor::subject()] {
            let mut member = Member::spawn(MemberConfig::new(flavor).arg(format!("--auth-token={flag}")));
            let status = member.wait_exit(Duration::from_secs(20));
            assert_eq!(
                status.and_then(|s| s.code()),
                Some(1),
                "{flavor} with --auth-token={flag} should exit 1:\n{}",
                member.log()
            );
            assert!(member.log().contains(text), "{flavor} with --auth-token={flag}: no {text:?} in\n{}", member.log());
        }
    }
    // Unknown options are only warned about.
    for flavor in [Flavor::Etcd, Flavor::subject()] {
        let member = Member::start_with(MemberConfig::new(flavor).arg(format!("{},colour=blue", keys.flag("1m"))));
        assert!(member.log().contains("unknown JWT options"), "{flavor}:\n{}", member.log());
    }
}
