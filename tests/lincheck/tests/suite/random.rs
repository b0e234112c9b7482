//! Generated histories: linearizable by construction, then mutated and cross-checked against
//! the brute-force checker.

use wasmraft_lincheck::{Budget, CheckResult, check};

use crate::brute;
use crate::generate::{Rng, Shape, linearizable_history, mutate};

fn small(rng: &mut Rng) -> Shape {
    Shape {
        ops: 2 + rng.below(6) as usize,
        processes: 2 + rng.below(3),
        keys: 1 + rng.below(2) as usize,
        gap: 4,
        window: 6,
        unknown_percent: 20,
        failed_percent: 5,
    }
}

#[test]
fn generated_histories_are_linearizable() {
    let mut rng = Rng::new(0x5eed_0001);
    for case in 0..300 {
        let shape = Shape {
            ops: 10 + rng.below(150) as usize,
            processes: 1 + rng.below(8),
            keys: 1 + rng.below(4) as usize,
            gap: rng.below(30),
            window: 1 + rng.below(40),
            unknown_percent: rng.below(15),
            failed_percent: rng.below(10),
        };
        let history = linearizable_history(&mut rng, &shape);
        let report = check(&history, Budget::default()).expect("generated histories are valid");
        assert_eq!(report.result, CheckResult::Linearizable, "case {case}:\n{report}");
    }
}

#[test]
fn agrees_with_brute_force_on_small_histories() {
    let mut rng = Rng::new(0x5eed_0002);
    let (mut cases, mut violations) = (0, 0);
    for case in 0..3000 {
        let shape = small(&mut rng);
        let original = linearizable_history(&mut rng, &shape);
        assert!(brute::linearizable(&original), "case {case}: the generator made a bad history: {original:?}");
        let Some(history) = mutate(&mut rng, &original) else { continue };
        let expected = brute::linearizable(&history);
        let report = check(&history, Budget::default()).expect("mutation keeps histories valid");
        match (&report.result, expected) {
            (CheckResult::Linearizable, true) => {}
            (CheckResult::NotLinearizable(_), false) => violations += 1,
            (got, _) => {
                panic!("case {case}: brute force says linearizable={expected}, checker says {got}\n{history:?}")
            }
        }
        cases += 1;
    }
    eprintln!("{cases} cases, {violations} violations");
    // The comparison must be meaningful: many mutations break linearizability, many do not.
    assert!(cases > 2500, "{cases} cases");
    assert!(violations > cases / 5 && violations < cases * 9 / 10, "{violations} violations in {cases} cases");
}
