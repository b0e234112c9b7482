//! Network faults between wasmraft members, through the transport's test-only fault hook:
//! `PUT /wasmraft/faults` on a member's peer URL (members started with
//! `--wasmraft-fault-injection`; see transport/src/fault.rs) sets what it does with its traffic
//! to each other member: refuse it (a cut, both ways), drop it silently (a blackhole, one way)
//! or hold it back (a delay, one way). [`Partitioner::split`] cuts both members of every pair,
//! so each side sees the other as a dead network; [`Partitioner::set_links`] makes blackholes,
//! one-way partitions and slow links.
//!
//! Plain HTTP/1.1 over a `TcpStream` (a few lines) rather than an HTTP client dependency.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::Cluster;

/// The admin path on the peer URL.
pub const FAULTS_PATH: &str = "/wasmraft/faults";

/// What a member does with its traffic to another member (the hook's rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Refused both ways, raft told the peer is unreachable.
    Cut,
    /// The member's messages to the peer vanish silently.
    Drop,
    /// The member's messages to the peer arrive this many milliseconds late.
    Delay(u64),
}

impl Link {
    /// The hook's form of the rule for member `id`.
    fn spec(self, id: u64) -> String {
        match self {
            Link::Cut => format!("{id:x}"),
            Link::Drop => format!("{id:x}:drop"),
            Link::Delay(ms) => format!("{id:x}:delay={ms}"),
        }
    }
}

/// What a partition needs to know about the members: their peer URLs and member ids.
#[derive(Clone, Debug)]
pub struct Partitioner {
    peer_urls: Vec<String>,
    ids: Vec<u64>,
}

impl Partitioner {
    /// Reads every member's id (Maintenance.Status); every member must be running.
    pub fn new(cluster: &Cluster) -> Result<Partitioner, String> {
        let ids = (0..cluster.size())
            .map(|i| cluster.status(i).map(|s| s.member_id))
            .collect::<Result<Vec<u64>, String>>()?;
        let peer_urls = cluster.members().iter().map(|m| m.peer_url()).collect();
        Ok(Partitioner { peer_urls, ids })
    }

    pub fn member_id(&self, i: usize) -> u64 {
        self.ids[i]
    }

    /// Cuts every member of `a` off from every member of `b` (both directions). Members in
    /// neither keep talking to everyone. Replaces earlier rules on every member.
    pub fn split(&self, a: &[usize], b: &[usize]) -> Result<(), String> {
        let mut rules = self.no_rules();
        for &x in a {
            for &y in b {
                if x != y {
                    rules[x].insert(y, Link::Cut);
                    rules[y].insert(x, Link::Cut);
                }
            }
        }
        self.apply(&rules)
    }

    /// Every member of `from` treats its traffic to every member of `to` as `link` says (one
    /// way: `to`'s traffic to `from` is untouched unless `both_ways`). Replaces earlier rules on
    /// every member.
    pub fn set_links(&self, link: Link, from: &[usize], to: &[usize], both_ways: bool) -> Result<(), String> {
        let mut rules = self.no_rules();
        for &x in from {
            for &y in to {
                if x != y {
                    rules[x].insert(y, link);
                    if both_ways {
                        rules[y].insert(x, link);
                    }
                }
            }
        }
        self.apply(&rules)
    }

    fn no_rules(&self) -> Vec<BTreeMap<usize, Link>> {
        vec![BTreeMap::new(); self.ids.len()]
    }

    /// Sets member `i`'s rules to `rules[i]` (by member index), on every member; `Err` lists the
    /// members that did not take them (the others did).
    fn apply(&self, rules: &[BTreeMap<usize, Link>]) -> Result<(), String> {
        let failed: Vec<String> = rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let by_id: BTreeMap<u64, Link> = r.iter().map(|(&p, &l)| (self.ids[p], l)).collect();
                self.set_rules(i, &by_id).err()
            })
            .collect();
        if failed.is_empty() { Ok(()) } else { Err(failed.join("; ")) }
    }

    /// Heals every member that answers; `Err` lists those that did not (e.g. killed ones, whose
    /// rules ended with their process anyway).
    pub fn heal(&self) -> Result<(), String> {
        let failed: Vec<String> = (0..self.ids.len()).filter_map(|i| self.set_cut(i, &[]).err()).collect();
        if failed.is_empty() { Ok(()) } else { Err(failed.join("; ")) }
    }

    /// Member `i` is cut off from exactly `ids` (empty: healed), with no other rule.
    pub fn set_cut(&self, i: usize, ids: &[u64]) -> Result<(), String> {
        self.set_rules(i, &ids.iter().map(|&id| (id, Link::Cut)).collect())
    }

    /// Member `i`'s rules become exactly `rules` (by member id); checked against its answer.
    pub fn set_rules(&self, i: usize, rules: &BTreeMap<u64, Link>) -> Result<(), String> {
        // The hook answers the rules ordered by id, as a BTreeMap iterates them.
        let want = rules.iter().map(|(&id, &l)| l.spec(id)).collect::<Vec<_>>().join(",");
        let (code, answer) = http_request(&self.peer_urls[i], "PUT", FAULTS_PATH, &want)?;
        if code != 200 || answer.trim_end() != want {
            return Err(format!(
                "PUT {FAULTS_PATH} on member {i} ({}): {code} {answer:?} (wanted {want:?}); \
                 was it started with --wasmraft-fault-injection?",
                self.peer_urls[i]
            ));
        }
        Ok(())
    }

    /// The ids member `i` is cut off from, as it reports them (other rules left out).
    pub fn cut_of(&self, i: usize) -> Result<Vec<u64>, String> {
        let (code, answer) = http_request(&self.peer_urls[i], "GET", FAULTS_PATH, "")?;
        if code != 200 {
            return Err(format!("GET {FAULTS_PATH} on member {i}: {code} {answer:?}"));
        }
        answer
            .trim()
            .split(',')
            .filter(|s| !s.is_empty() && !s.contains(':'))
            .map(|s| u64::from_str_radix(s, 16).map_err(|e| format!("{s:?}: {e}")))
            .collect()
    }
}

/// One HTTP/1.1 request with `Connection: close`; (status, body).
pub fn http_request(base: &str, method: &str, path: &str, body: &str) -> Result<(u16, String), String> {
    let host = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("{base}: only http peer URLs are supported"))?
        .trim_end_matches('/');
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let timeout = Duration::from_secs(3);
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{host}: {e}"))?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| format!("{host}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("{host}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("{host}: no HTTP answer: {text:?}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{host}: bad status line: {head:?}"))?;
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    Ok((code, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn dechunks() {
        assert_eq!(super::dechunk("3\r\nab,\r\n2\r\ncd\r\n0\r\n\r\n"), "ab,cd");
    }
}
