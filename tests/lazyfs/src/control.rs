//! The control socket: one command per line, one answer line (`ok ...` or `err ...`).
//!
//! ```text
//! cut                 power cut: drop everything not synced; the disk answers EIO until `on`
//! cut torn SEED       the same, but the last unsynced write survives in part
//! on                  power back
//! fault write|fsync enospc|eio PATTERN [after_bytes=N] [after_ops=N]
//! slow PATTERN MS     every fsync of a matching path takes MS milliseconds more
//! clear               no faults, no slow fsyncs
//! stats               counters
//! save                write the durable image to the backing directory
//! ```

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::faults::{FaultOp, FaultRule, SlowRule};
use crate::tree::State;

pub fn serve(listener: UnixListener, state: Arc<Mutex<State>>, backing: PathBuf) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let state = state.clone();
        let backing = backing.clone();
        std::thread::spawn(move || handle(conn, &state, &backing));
    }
}

fn handle(conn: UnixStream, state: &Mutex<State>, backing: &Path) {
    let Ok(mut out) = conn.try_clone() else { return };
    for line in BufReader::new(conn).lines() {
        let Ok(line) = line else { return };
        let answer = match execute(line.trim(), state, backing) {
            Ok(s) => format!("ok {s}\n"),
            Err(e) => format!("err {e}\n"),
        };
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn num(s: &str, what: &str) -> Result<u64, String> {
    s.parse().map_err(|e| format!("{what} {s:?}: {e}"))
}

pub fn execute(line: &str, state: &Mutex<State>, backing: &Path) -> Result<String, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    match words.as_slice() {
        ["cut"] => Ok(format!("kept={}", s.power_cut(None))),
        ["cut", "torn", seed] => Ok(format!("kept={}", s.power_cut(Some(num(seed, "seed")?)))),
        ["on"] => {
            s.power_on();
            Ok(String::new())
        }
        ["fault", op, err, pattern, opts @ ..] => {
            let op = match *op {
                "write" => FaultOp::Write,
                "fsync" => FaultOp::Fsync,
                o => return Err(format!("unknown operation {o:?} (write, fsync)")),
            };
            let errno = match *err {
                "enospc" => libc::ENOSPC,
                "eio" => libc::EIO,
                e => return Err(format!("unknown error {e:?} (enospc, eio)")),
            };
            let (mut after_bytes, mut after_ops) = (0, 0);
            for o in opts {
                match o.split_once('=') {
                    Some(("after_bytes", v)) => after_bytes = num(v, "after_bytes")?,
                    Some(("after_ops", v)) => after_ops = num(v, "after_ops")?,
                    _ => return Err(format!("unknown option {o:?} (after_bytes=N, after_ops=N)")),
                }
            }
            s.faults.rules.push(FaultRule::new(op, errno, pattern.to_string(), after_bytes, after_ops));
            Ok(String::new())
        }
        ["slow", pattern, ms] => {
            let delay = Duration::from_millis(num(ms, "ms")?);
            s.faults.slow.push(SlowRule { pattern: pattern.to_string(), delay });
            Ok(String::new())
        }
        ["clear"] => {
            s.faults.rules.clear();
            s.faults.slow.clear();
            Ok(String::new())
        }
        ["stats"] => Ok(format!(
            "writes={} bytes={} fsyncs={} dir_fsyncs={} cuts={} torn_bytes_kept={} fault_hits={} powered_off={}",
            s.stats.writes,
            s.stats.bytes,
            s.stats.fsyncs,
            s.stats.dir_fsyncs,
            s.stats.cuts,
            s.stats.torn_bytes_kept,
            s.faults.hits(),
            s.powered_off
        )),
        ["save"] => {
            s.save(backing).map(|()| String::new()).map_err(|e| format!("saving into {}: {e}", backing.display()))
        }
        _ => Err(format!("unknown command {line:?}")),
    }
}
