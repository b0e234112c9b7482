use wasmraft_counter_guest::Counter;
use wasmraft_guest_sdk::testing::Harness;

fn events(h: &Harness<Counter>) -> Vec<String> {
    h.events().iter().map(|(_, e)| String::from_utf8(e.clone()).unwrap()).collect()
}

#[test]
fn add_sub_get_return_new_value() {
    let mut h = Harness::<Counter>::new();
    assert_eq!(h.query(b"get").unwrap(), b"0");
    assert_eq!(h.apply(b"add 5").unwrap(), b"5");
    assert_eq!(h.apply(b"add 10").unwrap(), b"15");
    assert_eq!(h.apply(b"sub 20").unwrap(), b"-5");
    assert_eq!(h.query(b"get").unwrap(), b"-5");
    assert_eq!(h.query(b"").unwrap(), b"-5");
}

#[test]
fn one_event_per_change_with_entry_index() {
    let mut h = Harness::<Counter>::new();
    h.apply_all([&b"add 2"[..], b"sub 1", b"add 0"]).unwrap();
    assert_eq!(events(&h), ["0 -> 2", "2 -> 1", "1 -> 1"]);
    let indexes: Vec<u64> = h.events().iter().map(|(i, _)| *i).collect();
    assert_eq!(indexes, [1, 2, 3]);
}

#[test]
fn bad_commands_are_errors_and_change_nothing() {
    let mut h = Harness::<Counter>::new();
    h.apply(b"add 3").unwrap();
    for bad in [&b"add"[..], b"add x", b"add -1", b"mul 2", b"", b"add 1 2", b"\xff"] {
        let err = h.apply(bad).unwrap_err();
        assert!(err.starts_with("counter: "), "{err}");
    }
    assert_eq!(h.query(b"get").unwrap(), b"3");
    assert_eq!(h.events().len(), 1);
    assert!(h.query(b"put").is_err());
}

#[test]
fn overflow_is_refused() {
    let mut h = Harness::<Counter>::new();
    h.apply(format!("add {}", i64::MAX).as_bytes()).unwrap();
    let err = h.apply(b"add 1").unwrap_err();
    assert!(err.contains("overflow"), "{err}");
    assert_eq!(h.query(b"get").unwrap(), i64::MAX.to_string().as_bytes());
    assert!(h.apply(b"add 9223372036854775808").is_err());
}
