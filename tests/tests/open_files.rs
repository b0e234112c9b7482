//! A member raises its soft limit on open files to the hard limit at start, as etcd's Go runtime
//! does: started with the soft limit a service manager gives by default, it must still be able
//! to hold many client, watch and peer connections.

use wasmraft_tests::{Flavor, Member, MemberConfig};

fn max_open_files(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("reading the member's limits");
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("a Max open files line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    // "Max open files <soft> <hard> files"
    (fields[3].to_string(), fields[4].to_string())
}

#[test]
fn a_member_started_with_a_low_soft_limit_raises_it_to_the_hard_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the struct it is given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    let hard = limit.rlim_max;
    let low = 512.min(hard);
    // This test binary's own limit, which the member inherits (this file holds no other test).
    limit.rlim_cur = low;
    // SAFETY: setrlimit reads the struct; lowering the soft limit needs no privilege.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);

    let member = Member::start_with(MemberConfig::new(Flavor::Wasmraft));
    let pid = member.pid().expect("the member's pid");
    let hard_text = if hard == libc::RLIM_INFINITY { "unlimited".to_string() } else { hard.to_string() };
    assert_eq!(max_open_files(pid), (hard_text.clone(), hard_text), "the member's open files limit");
    if low < hard {
        assert!(
            member.log().contains(&format!("raised the open files limit from {low} to {hard}")),
            "the member says so"
        );
    }
}
