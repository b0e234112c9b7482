//! Saving a history and checking it again later gives the same verdict.

use wasmraft_lincheck::{Budget, History, check};

use crate::generate::{Rng, Shape, linearizable_history};

#[test]
fn a_history_survives_a_round_trip() {
    let mut rng = Rng::new(0x5eed_0004);
    let shape = Shape { ops: 200, processes: 4, keys: 3, gap: 5, window: 10, unknown_percent: 10, failed_percent: 10 };
    let history = linearizable_history(&mut rng, &shape);
    let json = history.to_json().expect("serializable");
    let loaded = History::from_json(&json).expect("parses");
    assert_eq!(loaded, history);
    let verdict = |h: &History| check(h, Budget::default()).expect("valid").result;
    assert_eq!(verdict(&loaded), verdict(&history));
}

#[test]
fn malformed_json_is_an_error() {
    assert!(History::from_json("{\"operations\": [{\"process\": 1}]}").is_err());
    assert!(History::from_json("not json").is_err());
}
