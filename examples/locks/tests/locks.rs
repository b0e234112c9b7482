use std::collections::BTreeMap;

use wasmraft_guest_sdk::ApplyContext;
use wasmraft_guest_sdk::testing::Harness;
use wasmraft_locks_guest::Locks;

const T0: u64 = 1_700_000_000_000;

/// Applies `cmd` as the next entry, proposed at `time`.
fn at(h: &mut Harness<Locks>, time: u64, cmd: &str) -> Result<String, String> {
    let ctx = ApplyContext { index: h.index() + 1, term: 1, time_unix_ms: time };
    h.apply_with(ctx, cmd.as_bytes()).map(|r| String::from_utf8(r).unwrap())
}

fn token_of(granted: &str) -> u64 {
    granted.split(' ').nth(1).unwrap().parse().unwrap()
}

fn query(h: &Harness<Locks>, q: &str) -> String {
    String::from_utf8(h.query(q.as_bytes()).unwrap()).unwrap()
}

#[test]
fn mutex_refuses_second_holder_until_release() {
    let mut h = Harness::<Locks>::new();
    assert_eq!(at(&mut h, T0, "acquire db alice 1000").unwrap(), format!("token 1 expires {}", T0 + 1000));
    let err = at(&mut h, T0 + 1, "acquire db bob 1000").unwrap_err();
    assert_eq!(err, format!("locks: lock db is held: all 1 permit(s) taken by alice (token 1, until {})", T0 + 1000));
    assert_eq!(at(&mut h, T0 + 2, "release db alice 1").unwrap(), "released 1");
    assert_eq!(token_of(&at(&mut h, T0 + 3, "acquire db bob 1000").unwrap()), 2);
    assert_eq!(query(&h, "token db"), "2");
    assert_eq!(query(&h, "token other"), "0");
    let events: Vec<String> = h.events().iter().map(|(_, e)| String::from_utf8(e.clone()).unwrap()).collect();
    assert_eq!(
        events,
        [
            format!("acquired db alice 1 {}", T0 + 1000),
            "released db alice 1".into(),
            format!("acquired db bob 2 {}", T0 + 1003)
        ]
    );
}

#[test]
fn lease_expires_by_proposer_time_only() {
    let mut h = Harness::<Locks>::new();
    at(&mut h, T0, "acquire job alice 500").unwrap();
    // Still held one millisecond before expiry, by the proposer's clock.
    assert!(at(&mut h, T0 + 499, "acquire job bob 500").unwrap_err().contains("held"));
    // At the expiry instant the permit is reclaimed and bob gets a newer token.
    assert_eq!(at(&mut h, T0 + 500, "acquire job bob 500").unwrap(), format!("token 2 expires {}", T0 + 1000));
    assert!(h.events().iter().any(|(_, e)| e == b"expired job alice 1"));
    // alice, waking up late, can neither release nor sneak back in with her old token.
    let err = at(&mut h, T0 + 600, "release job alice 1").unwrap_err();
    assert_eq!(err, "locks: alice holds no permit of lock job");
    // (A refused entry is rolled back whole, its clock advance included.)
    assert_eq!(query(&h, "holders job"), format!("permits=1 token=2 clock={}\nbob 2 {}\n", T0 + 500, T0 + 1000));
}

#[test]
fn proposer_clock_going_backwards_does_not_revive_leases() {
    let mut h = Harness::<Locks>::new();
    at(&mut h, T0, "acquire x alice 100").unwrap();
    at(&mut h, T0 + 200, "acquire y carol 10000").unwrap(); // the clock has reached T0 + 200
    // A new leader whose clock lags proposes at T0 + 50: alice's lease is still expired.
    assert_eq!(token_of(&at(&mut h, T0 + 50, "acquire x bob 100").unwrap()), 2);
    let err = at(&mut h, T0 + 60, "release x alice 1").unwrap_err();
    assert!(err.contains("holds no permit"), "{err}");
    // And bob's lease runs from the guest's clock (T0 + 200), not the lagging proposer time.
    assert!(query(&h, "holders x").contains(&format!("bob 2 {}", T0 + 300)));
}

#[test]
fn release_needs_the_current_token_and_a_live_lease() {
    let mut h = Harness::<Locks>::new();
    at(&mut h, T0, "acquire db alice 100").unwrap();
    at(&mut h, T0 + 1, "release db alice 1").unwrap();
    at(&mut h, T0 + 2, "acquire db alice 100").unwrap(); // token 2
    assert_eq!(
        at(&mut h, T0 + 3, "release db alice 1").unwrap_err(),
        "locks: stale fencing token 1 for lock db: alice holds token 2"
    );
    assert_eq!(at(&mut h, T0 + 4, "release db bob 2").unwrap_err(), "locks: bob holds no permit of lock db");
    assert_eq!(
        at(&mut h, T0 + 102, "release db alice 2").unwrap_err(),
        format!("locks: alice's lease on lock db (token 2) expired at {}, now is {}", T0 + 102, T0 + 102)
    );
}

#[test]
fn renewing_keeps_the_token_and_extends_the_lease() {
    let mut h = Harness::<Locks>::new();
    at(&mut h, T0, "acquire db alice 100").unwrap();
    assert_eq!(at(&mut h, T0 + 90, "acquire db alice 100").unwrap(), format!("token 1 expires {}", T0 + 190));
    assert!(at(&mut h, T0 + 150, "acquire db bob 100").unwrap_err().contains("held"));
    assert_eq!(at(&mut h, T0 + 160, "release db alice 1").unwrap(), "released 1");
}

#[test]
fn semaphore_grants_n_permits_each_with_its_own_token() {
    let mut h = Harness::<Locks>::new();
    for (i, who) in ["a", "b", "c"].iter().enumerate() {
        assert_eq!(token_of(&at(&mut h, T0, &format!("acquire pool {who} 1000 3")).unwrap()), i as u64 + 1);
    }
    let err = at(&mut h, T0 + 1, "acquire pool d 1000 3").unwrap_err();
    assert!(err.starts_with("locks: lock pool is held: all 3 permit(s) taken by a (token 1"), "{err}");
    // The capacity is fixed while anyone holds a permit.
    assert_eq!(
        at(&mut h, T0 + 1, "acquire pool d 1000 4").unwrap_err(),
        "locks: lock pool has 3 permit(s) while held; acquire asked for 4"
    );
    at(&mut h, T0 + 2, "release pool b 2").unwrap();
    assert_eq!(token_of(&at(&mut h, T0 + 3, "acquire pool d 1000 3").unwrap()), 4);
    let holders = query(&h, "holders pool");
    assert!(holders.starts_with("permits=3 token=4 "), "{holders}");
    assert_eq!(holders.lines().count(), 4);
}

#[test]
fn malformed_commands_are_refused_and_change_nothing() {
    let mut h = Harness::<Locks>::new();
    at(&mut h, T0, "acquire db alice 100").unwrap();
    let before = h.store().data.clone();
    for bad in [
        "acquire db bob",
        "acquire db bob x",
        "acquire db bob 0",
        "acquire db bob 10 0",
        "release db alice",
        "release db alice one",
        "lock db",
        "",
        "acquire db bob 18446744073709551615",
    ] {
        let err = at(&mut h, T0 + 1, bad).unwrap_err();
        assert!(err.starts_with("locks: "), "{bad}: {err}");
    }
    assert_eq!(h.store().data, before);
    assert!(h.query(b"nope").is_err());
}

/// A deterministic xorshift64 generator for the test (the guest has no randomness).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn fencing_tokens_never_go_backwards() {
    let mut h = Harness::<Locks>::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let names = ["a", "b", "c"];
    let holders = ["p", "q", "r", "s"];
    let mut time = T0;
    // Per name: the highest token granted so far. Per (name, holder): the token it holds.
    let mut highest: BTreeMap<&str, u64> = BTreeMap::new();
    let mut held: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut grants = 0;
    for _ in 0..3000 {
        // Time mostly moves forward, sometimes jumps, sometimes a lagging proposer goes back.
        time = match rng.below(10) {
            0 => time.saturating_sub(rng.below(300)),
            1 => time + rng.below(2000),
            _ => time + rng.below(20),
        };
        let name = names[rng.below(3) as usize];
        let holder = holders[rng.below(4) as usize];
        if rng.below(3) == 0 {
            let token = held.get(&(name, holder)).copied().unwrap_or(0);
            let token = if rng.below(5) == 0 { token.saturating_sub(1) } else { token };
            if at(&mut h, time, &format!("release {name} {holder} {token}")).is_ok() {
                held.remove(&(name, holder));
            }
        } else {
            let permits = if name == "c" { 2 } else { 1 };
            let ttl = 1 + rng.below(500);
            if let Ok(granted) = at(&mut h, time, &format!("acquire {name} {holder} {ttl} {permits}")) {
                let token = token_of(&granted);
                let top = highest.entry(name).or_insert(0);
                match held.get(&(name, holder)) {
                    // A renewal keeps the holder's token.
                    Some(&mine) if mine == token => {}
                    _ => {
                        assert!(token > *top, "token {token} for {name} after {top}");
                        *top = token;
                        grants += 1;
                    }
                }
                held.insert((name, holder), token);
            }
        }
        for n in names {
            let issued: u64 = query(&h, &format!("token {n}")).parse().unwrap();
            assert_eq!(issued, highest.get(n).copied().unwrap_or(0));
        }
    }
    assert!(grants > 100, "the run exercised too few grants: {grants}");
}
