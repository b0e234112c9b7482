use std::collections::BTreeMap;

use wasmraft_guest_sdk::testing::Harness;
use wasmraft_ledger_guest::Ledger;

fn apply(h: &mut Harness<Ledger>, cmd: &str) -> Result<String, String> {
    h.apply(cmd.as_bytes()).map(|r| String::from_utf8(r).unwrap())
}

fn query(h: &Harness<Ledger>, q: &str) -> Result<String, String> {
    h.query(q.as_bytes()).map(|r| String::from_utf8(r).unwrap())
}

#[test]
fn open_transfer_balance_total() {
    let mut h = Harness::<Ledger>::new();
    assert_eq!(apply(&mut h, "open alice 100").unwrap(), "100");
    assert_eq!(apply(&mut h, "open bob 5").unwrap(), "5");
    assert_eq!(apply(&mut h, "transfer alice bob 40").unwrap(), "60 45");
    assert_eq!(query(&h, "balance alice").unwrap(), "60");
    assert_eq!(query(&h, "balance bob").unwrap(), "45");
    assert_eq!(query(&h, "total").unwrap(), "105");
    assert_eq!(query(&h, "accounts").unwrap(), "alice 60\nbob 45\n");
    let events: Vec<&[u8]> = h.events().iter().map(|(_, e)| e.as_slice()).collect();
    assert_eq!(events, [&b"open alice 100"[..], b"open bob 5", b"transfer alice bob 40"]);
}

#[test]
fn refusals_are_clear_and_change_nothing() {
    let mut h = Harness::<Ledger>::new();
    apply(&mut h, "open alice 10").unwrap();
    apply(&mut h, "open bob 0").unwrap();
    let before = h.store().data.clone();
    let cases = [
        ("open alice 1", "ledger: account alice already exists"),
        ("transfer alice bob 11", "ledger: insufficient funds: alice has 10, transfer needs 11"),
        ("transfer bob alice 1", "ledger: insufficient funds: bob has 0, transfer needs 1"),
        ("transfer alice carol 1", "ledger: unknown account carol"),
        ("transfer carol alice 1", "ledger: unknown account carol"),
        ("transfer alice alice 1", "ledger: cannot transfer from alice to itself"),
        ("transfer alice bob 0", "ledger: transfer amount must be positive"),
        ("transfer alice bob -1", "ledger: amount \"-1\" is not a non-negative decimal integer"),
        ("open carol -5", "ledger: amount \"-5\" is not a non-negative decimal integer"),
    ];
    for (cmd, want) in cases {
        assert_eq!(apply(&mut h, cmd).unwrap_err(), want, "{cmd}");
    }
    assert!(apply(&mut h, "withdraw alice 1").unwrap_err().starts_with("ledger: unknown command"));
    assert_eq!(h.store().data, before);
    assert_eq!(h.events().len(), 2);
    assert_eq!(query(&h, "balance carol").unwrap_err(), "ledger: unknown account carol");
    assert!(query(&h, "sum").is_err());
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

/// Many transfers, from many clients, in the order the log commits them: after every entry the
/// total is what the accounts were opened with, no balance is negative, and the guest agrees with
/// a model of the ledger kept by the test.
#[test]
fn invariant_holds_across_2000_random_transfers() {
    let mut h = Harness::<Ledger>::new();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let accounts: Vec<String> = (0..12).map(|i| format!("acct{i:02}")).collect();
    let mut model: BTreeMap<String, u64> = BTreeMap::new();
    for a in &accounts {
        let initial = rng.below(1000);
        apply(&mut h, &format!("open {a} {initial}")).unwrap();
        model.insert(a.clone(), initial);
    }
    let total: u64 = model.values().sum();
    let (mut ok, mut refused) = (0, 0);
    for step in 0..2000 {
        // Mostly known accounts, sometimes an unknown one; amounts often more than the balance.
        let pick = |rng: &mut Rng| {
            let i = rng.below(accounts.len() as u64 + 1) as usize;
            accounts.get(i).cloned().unwrap_or_else(|| "nobody".into())
        };
        let (from, to) = (pick(&mut rng), pick(&mut rng));
        let amount = rng.below(400);
        let result = apply(&mut h, &format!("transfer {from} {to} {amount}"));

        let expect_ok =
            from != to && amount > 0 && model.contains_key(&to) && model.get(&from).is_some_and(|&b| b >= amount);
        assert_eq!(result.is_ok(), expect_ok, "step {step}: transfer {from} {to} {amount}: {result:?}");
        if expect_ok {
            *model.get_mut(&from).unwrap() -= amount;
            *model.get_mut(&to).unwrap() += amount;
            assert_eq!(result.unwrap(), format!("{} {}", model[&from], model[&to]));
            ok += 1;
        } else {
            assert!(result.unwrap_err().starts_with("ledger: "));
            refused += 1;
        }

        // The invariant, from the guest's own queries and from the raw store.
        assert_eq!(query(&h, "total").unwrap(), total.to_string(), "step {step}");
        let mut sum: i128 = 0;
        for (k, v) in &h.store().data {
            let balance: i128 = std::str::from_utf8(v).unwrap().parse().unwrap();
            assert!(balance >= 0, "step {step}: {} is negative", String::from_utf8_lossy(k));
            sum += balance;
        }
        assert_eq!(sum, i128::from(total), "step {step}");
        let listed: String = model.iter().map(|(a, b)| format!("{a} {b}\n")).collect();
        assert_eq!(query(&h, "accounts").unwrap(), listed, "step {step}");
    }
    assert!(ok > 500 && refused > 200, "exercise both paths: {ok} ok, {refused} refused");
}
