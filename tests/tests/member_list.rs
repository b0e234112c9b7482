//! `etcdctl member list` against a member of each kind: the member's id (derived from its peer
//! URL and the cluster token, as etcd derives it), "started" once it has published itself
//! through the log, its name, peer URL and client URL.

use wasmraft_tests::etcdctl::Etcdctl;
use wasmraft_tests::member::{Flavor, Member, MemberConfig};

fn member_list_line(flavor: Flavor) -> (String, String) {
    let member = Member::start_with(MemberConfig::new(flavor).name("m1"));
    let out = Etcdctl::new(member.endpoint()).run(&["member", "list"]);
    assert!(out.success(), "member list failed against {flavor:?}: {}", out.render());
    let expected_tail = format!(", started, m1, {}, {}, false", member.peer_url(), member.endpoint());
    let line = out.stdout.trim().to_string();
    (line, expected_tail)
}

#[test]
fn member_list_shows_the_published_member_like_etcd() {
    let (etcd_line, etcd_tail) = member_list_line(Flavor::Etcd);
    let (ours, our_tail) = member_list_line(Flavor::subject());
    assert!(etcd_line.ends_with(&etcd_tail), "etcd printed {etcd_line:?}, expected it to end with {etcd_tail:?}");
    assert!(ours.ends_with(&our_tail), "wasmraft printed {ours:?}, expected it to end with {our_tail:?}");
    // One line, "id, started, name, peer, client, learner".
    assert_eq!(ours.lines().count(), 1);
    let id = ours.split(", ").next().unwrap_or_default();
    // etcdctl prints the id with `%x`: up to 16 hex digits, fewer when it starts with zeros.
    assert!((1..=16).contains(&id.len()), "a member id of at most 16 hex digits: {ours:?}");
    assert!(u64::from_str_radix(id, 16).is_ok_and(|v| v != 0), "{ours:?}");
}
