//! A tiny authoritative DNS server on loopback UDP, for `--discovery-srv` tests: it answers SRV
//! and A queries from a fixed table (AAAA with no records, anything else NXDOMAIN), enough for
//! a stub resolver. It runs on its own thread until dropped.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const TYPE_SRV: u16 = 33;

/// The records served: names are lowercase and fully qualified (trailing dot).
#[derive(Debug, Clone, Default)]
pub struct Zone {
    /// name → (priority, weight, port, target)
    pub srv: BTreeMap<String, Vec<(u16, u16, u16, String)>>,
    pub a: BTreeMap<String, [u8; 4]>,
}

pub struct DnsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DnsServer {
    pub fn start(zone: Zone) -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the test DNS server");
        socket.set_read_timeout(Some(Duration::from_millis(100))).expect("set_read_timeout");
        let addr = socket.local_addr().expect("local_addr");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stopped.load(Ordering::SeqCst) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
                if let Some(answer) = answer(&zone, &buf[..n]) {
                    let _ = socket.send_to(&answer, from);
                }
            }
        });
        DnsServer { addr, stop, thread: Some(thread) }
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The response to one query (None for what is not a query we can read).
fn answer(zone: &Zone, q: &[u8]) -> Option<Vec<u8>> {
    if q.len() < 12 || q[2] & 0x80 != 0 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    // The question: labels, then type and class.
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*q.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let question = q.get(12..i + 4)?;
    let name = format!("{}.", labels.join("."));

    let mut answers: Vec<(u16, Vec<u8>)> = Vec::new();
    let known = zone.srv.contains_key(&name) || zone.a.contains_key(&name);
    match qtype {
        TYPE_SRV => {
            for (prio, weight, port, target) in zone.srv.get(&name).into_iter().flatten() {
                let mut rdata = Vec::new();
                rdata.extend_from_slice(&prio.to_be_bytes());
                rdata.extend_from_slice(&weight.to_be_bytes());
                rdata.extend_from_slice(&port.to_be_bytes());
                for label in target.trim_end_matches('.').split('.') {
                    rdata.push(label.len() as u8);
                    rdata.extend_from_slice(label.as_bytes());
                }
                rdata.push(0);
                answers.push((TYPE_SRV, rdata));
            }
        }
        TYPE_A => {
            if let Some(ip) = zone.a.get(&name) {
                answers.push((TYPE_A, ip.to_vec()));
            }
        }
        TYPE_AAAA => {}
        _ => {}
    }
    let rcode = if known { 0 } else { 3 };
    let mut r = Vec::new();
    r.extend_from_slice(&q[0..2]);
    // QR, AA, RD copied; RA; rcode.
    r.push(0x84 | (q[2] & 0x01));
    r.push(0x80 | rcode);
    r.extend_from_slice(&1u16.to_be_bytes());
    r.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(question);
    for (kind, rdata) in answers {
        r.extend_from_slice(&[0xc0, 12]); // the question's name
        r.extend_from_slice(&kind.to_be_bytes());
        r.extend_from_slice(&1u16.to_be_bytes());
        r.extend_from_slice(&60u32.to_be_bytes());
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(&rdata);
    }
    Some(r)
}
