//! Request limits set by flag, on etcd 3.4.23 and on wasmraft side by side with etcdctl:
//! `--max-txn-ops` (each of a txn's compare, success and failure lists; the default, 128, is
//! covered by `etcd_client_compat`).

use wasmraft_tests::{Etcdctl, Flavor, Member, MemberConfig};

/// With `--max-txn-ops=2`, a txn with two compares, two puts and two puts passes; three
/// operations in any one list are refused with etcd's error.
#[test]
fn max_txn_ops_limits_each_list_of_a_txn_as_etcd() {
    let txns = [
        "value(\"a\") = \"1\"\nvalue(\"b\") = \"1\"\n\nput a 1\nput b 2\n\nput c 3\nput d 4\n\n",
        "value(\"a\") = \"1\"\nvalue(\"b\") = \"1\"\nvalue(\"c\") = \"1\"\n\nput a 1\n\n\n",
        "\nput a 1\nput b 2\nput c 3\n\n\n",
        "\n\nput a 1\nput b 2\nput c 3\n\n",
    ];
    let mut seen = Vec::new();
    for flavor in [Flavor::Etcd, Flavor::subject()] {
        let m = Member::start_with(MemberConfig::new(flavor).arg("--max-txn-ops=2"));
        let ctl = Etcdctl::new(m.endpoint());
        let outcomes: Vec<(bool, String)> = txns
            .iter()
            .map(|t| {
                let out = ctl.run_with_stdin(&["txn"], Some(t));
                let error = out.stderr.lines().find(|l| l.starts_with("Error:")).unwrap_or_default().to_string();
                (out.success(), error)
            })
            .collect();
        let too_many = "Error: etcdserver: too many operations in txn request".to_string();
        let expected = [(true, String::new()), (false, too_many.clone()), (false, too_many.clone()), (false, too_many)];
        assert_eq!(outcomes, expected, "{flavor}");
        seen.push(outcomes);
    }
    assert_eq!(seen[0], seen[1]);
}
