//! Free loopback ports.
//!
//! Members are real processes that bind fixed ports given on their command line, so the test has
//! to choose the ports. Two rules make that robust:
//!
//! - Ports are taken from *below* Linux's ephemeral range (32768..61000 by default). A port
//!   from the ephemeral range can be grabbed by any outgoing connection (a client socket of this
//!   very test) while a member is down for a restart, and the restart would then fail with
//!   "address in use". Below that range only explicit binds compete.
//! - Every port handed out is remembered for the life of the process, so two tests running in
//!   parallel threads never get the same port, even when the first has not bound it yet.
//!
//! Other processes (another test binary run in parallel, e.g. by nextest) are protected only by
//! the bind probe plus a per-process random starting point; collisions there are unlikely, not
//! impossible.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

const LOW: u16 = 15_000;
const HIGH: u16 = 32_000;

struct Allocator {
    next: u16,
    handed_out: HashSet<u16>,
}

static ALLOC: Mutex<Option<Allocator>> = Mutex::new(None);

/// Returns a loopback TCP port that is bindable right now and has never been returned before in
/// this process. Panics if the whole range is exhausted (it never should be).
pub fn free_port() -> u16 {
    let mut guard = ALLOC.lock().unwrap_or_else(|e| e.into_inner());
    let alloc = guard.get_or_insert_with(|| {
        // Start at a point that differs between processes so that parallel test binaries do not
        // all probe the same first ports.
        let seed = std::process::id() as u64
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
        let span = (HIGH - LOW) as u64;
        let mixed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
        Allocator { next: LOW + (mixed % span) as u16, handed_out: HashSet::new() }
    });
    for _ in 0..(HIGH - LOW) {
        let port = alloc.next;
        alloc.next = if alloc.next + 1 >= HIGH { LOW } else { alloc.next + 1 };
        if alloc.handed_out.contains(&port) {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            alloc.handed_out.insert(port);
            return port;
        }
    }
    panic!("no free loopback port in {LOW}..{HIGH}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len(), "duplicate port handed out: {ports:?}");
        for p in ports {
            assert!((LOW..HIGH).contains(&p));
            TcpListener::bind((Ipv4Addr::LOCALHOST, p)).expect("port handed out is bindable");
        }
    }
}
