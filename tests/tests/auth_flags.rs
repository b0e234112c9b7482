//! The auth flags whose effect a client can see, on etcd 3.4.23 and on wasmraft side by side:
//! `--bcrypt-cost` (the cost the stored password hash carries, read from `etcdctl snapshot save`,
//! the only place a client sees the hash; an invalid cost falls back to etcd's default with
//! etcd's warning) and `--auth-token-ttl` (a simple token dies after that long unused, and each
//! use keeps it alive).

use std::path::Path;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use wasmraft_tests::{Etcdctl, Flavor, Member, MemberConfig};

const ROOT: &str = "--user=root:pw";

fn start(flavor: Flavor, flags: &[&str]) -> Member {
    let mut config = MemberConfig::new(flavor);
    for f in flags {
        config = config.arg(*f);
    }
    Member::start_with(config)
}

/// The bcrypt cost fields of the password hashes in the file at `path` (`$2a$04$...` → 4).
fn bcrypt_costs(path: &Path) -> Vec<u32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .windows(7)
        .filter(|w| w.starts_with(b"$2") && w[3] == b'$' && w[6] == b'$')
        .filter_map(|w| std::str::from_utf8(&w[4..6]).ok()?.parse().ok())
        .collect()
}

/// A user added under `--bcrypt-cost=N` gets a hash of cost N (in etcd's `$2a$` form) and
/// authenticates with its password only; an out-of-range cost starts the member anyway, with
/// etcd's warning, at etcd's default cost 10.
#[test]
fn bcrypt_cost_is_the_cost_of_stored_password_hashes() {
    for flavor in [Flavor::Etcd, Flavor::subject()] {
        for (cost, expected) in [("5", 5), ("100", 10)] {
            let m = start(flavor, &[&format!("--bcrypt-cost={cost}")]);
            let ctl = Etcdctl::new(m.endpoint());
            for args in
                [&["user", "add", "root:pw", "--interactive=false"][..], &["auth", "enable"], &[ROOT, "put", "k", "v"]]
            {
                let out = ctl.run(args);
                assert!(out.success(), "{flavor} --bcrypt-cost={cost}: {args:?}: {}", out.render());
            }
            let wrong = ctl.run(&["--user=root:nope", "get", "k"]);
            assert!(
                !wrong.success() && wrong.stderr.contains("authentication failed, invalid user ID or password"),
                "{flavor}: {}",
                wrong.render()
            );
            let dir = tempfile::tempdir().expect("tempdir");
            let file = dir.path().join("snap.db");
            let saved = ctl.run(&[ROOT, "snapshot", "save", &file.to_string_lossy()]);
            assert!(saved.success(), "{flavor}: {}", saved.render());
            let costs = bcrypt_costs(&file);
            // bbolt may keep copies of the page in free pages: all the same hash.
            assert!(
                !costs.is_empty() && costs.iter().all(|c| *c == expected),
                "{flavor} --bcrypt-cost={cost}: costs {costs:?} in the snapshot, expected {expected}"
            );
            let bytes = std::fs::read(&file).expect("snapshot");
            assert!(bytes.windows(4).any(|w| w == b"$2a$"), "{flavor}: the hash is not in Go's `$2a$` form");
            // etcd's capnslog text; wasmraft logs etcd's zap message whichever --logger.
            let warning = match flavor {
                Flavor::Etcd => "auth: Use default bcrypt-cost 10 instead of the invalid value 100",
                Flavor::Wasmraft => "use default bcrypt cost instead of the invalid given cost",
            };
            let warned = m.log().contains(warning);
            assert_eq!(warned, cost == "100", "{flavor} --bcrypt-cost={cost}:\n{}", m.log_excerpt(30));
        }
    }
}

/// What a put with `client`'s token gives: "ok" or the server's message.
fn put(rt: &tokio::runtime::Runtime, client: &mut Client, key: &str) -> String {
    match rt.block_on(client.put(key, "v", None)) {
        Ok(_) => "ok".into(),
        Err(etcd_client::Error::GRpcStatus(s)) => format!("{:?}: {}", s.code(), s.message()),
        Err(e) => e.to_string(),
    }
}

/// With `--auth-token-ttl=2`, a simple token used every 1.2 s lives past its 2 s (each use
/// restarts the clock); left unused for 3.5 s it is gone: etcd's "invalid auth token", which a
/// new Authenticate replaces. (etcd drops expired tokens once a second, hence the margins.)
#[test]
fn auth_token_ttl_expires_unused_simple_tokens() {
    let rt = wasmraft_tests::runtime();
    let mut seen = Vec::new();
    for flavor in [Flavor::Etcd, Flavor::subject()] {
        let m = start(flavor, &["--auth-token-ttl=2"]);
        let ctl = Etcdctl::new(m.endpoint());
        for args in [&["user", "add", "root:pw", "--interactive=false"][..], &["auth", "enable"]] {
            let out = ctl.run(args);
            assert!(out.success(), "{flavor}: {args:?}: {}", out.render());
        }
        // No automatic re-authentication: the test must see the token's own fate.
        let opts = ConnectOptions::new()
            .with_user("root", "pw")
            .with_timeout(Duration::from_secs(5))
            .with_auto_token_refresh(false);
        let mut client = rt.block_on(Client::connect([m.endpoint()], Some(opts.clone()))).expect("login");
        let mut outcomes = vec![put(&rt, &mut client, "k0")];
        for i in 1..=3 {
            std::thread::sleep(Duration::from_millis(1200));
            outcomes.push(put(&rt, &mut client, &format!("k{i}")));
        }
        std::thread::sleep(Duration::from_millis(3500));
        outcomes.push(put(&rt, &mut client, "late"));
        let mut again = rt.block_on(Client::connect([m.endpoint()], Some(opts))).expect("login again");
        outcomes.push(put(&rt, &mut again, "relogged"));
        let expected = ["ok", "ok", "ok", "ok", "Unauthenticated: etcdserver: invalid auth token", "ok"];
        assert_eq!(outcomes, expected, "{flavor}");
        seen.push(outcomes);
    }
    assert_eq!(seen[0], seen[1], "etcd and wasmraft differ");
}
