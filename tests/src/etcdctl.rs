//! Running etcdctl 3.4 and normalizing its output.
//!
//! The compatibility target is "etcdctl prints the same against wasmraft as against real etcd".
//! Two servers can legitimately differ only in values that are random or positional by nature:
//! the cluster id, member id and raft term in response headers, and — in the warning lines
//! etcdctl's gRPC client logs to stderr — the timestamp and the client target
//! (`endpoint://client-<uuid>/127.0.0.1:<port>`). [`normalize`] blanks exactly those; everything
//! else (revisions, counts, values, error texts, gRPC codes in the warnings, exit codes) has to
//! match byte for byte.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::binaries::etcdctl_bin;

/// A hard limit per etcdctl invocation. etcdctl has its own 2s dial + 5s command timeouts; this
/// only guards the test against a wedged process.
pub const ETCDCTL_HARD_TIMEOUT: Duration = Duration::from_secs(60);

/// One finished etcdctl run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmdOutput {
    /// Exit code; `None` if killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The same output with [`normalize`] applied to both streams.
    pub fn normalized(&self) -> CmdOutput {
        CmdOutput { code: self.code, stdout: normalize(&self.stdout), stderr: normalize(&self.stderr) }
    }

    /// Human-readable rendering for diff reports.
    pub fn render(&self) -> String {
        let code = self.code.map(|c| c.to_string()).unwrap_or_else(|| "signal".into());
        format!(
            "exit={code}\n[stdout]\n{}[stderr]\n{}",
            with_final_newline(&self.stdout),
            with_final_newline(&self.stderr)
        )
    }
}

fn with_final_newline(s: &str) -> String {
    if s.is_empty() || s.ends_with('\n') { s.to_string() } else { format!("{s}⏎(no final newline)\n") }
}

/// etcdctl (`ETCDCTL_API=3`) bound to one endpoint.
#[derive(Clone, Debug)]
pub struct Etcdctl {
    bin: PathBuf,
    endpoint: String,
}

impl Etcdctl {
    pub fn new(endpoint: impl Into<String>) -> Self {
        Etcdctl { bin: etcdctl_bin(), endpoint: endpoint.into() }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Runs `etcdctl --endpoints=<endpoint> <args>`.
    pub fn run(&self, args: &[&str]) -> CmdOutput {
        self.run_with_stdin(args, None)
    }

    /// Runs etcdctl with `stdin` fed to it (e.g. `txn`'s compares and operations).
    ///
    /// The environment is cleared apart from `ETCDCTL_API=3`, so a developer's `ETCDCTL_*`
    /// variables (endpoints, TLS, output format) cannot change what is compared.
    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> CmdOutput {
        let mut cmd = Command::new(&self.bin);
        cmd.env_clear().env("ETCDCTL_API", "3").arg(format!("--endpoints={}", self.endpoint)).args(args);
        run_captured(cmd, stdin, ETCDCTL_HARD_TIMEOUT)
            .unwrap_or_else(|e| panic!("etcdctl {args:?} against {}: {e}", self.endpoint))
    }
}

/// Runs `cmd` (stdout and stderr piped; stdin piped when `stdin` is given, else null) and
/// collects its output. A process still running after `hard_timeout` is SIGKILLed and reported
/// as an error, as is a failure to start it.
pub fn run_captured(mut cmd: Command, stdin: Option<&str>, hard_timeout: Duration) -> Result<CmdOutput, String> {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd.spawn().map_err(|e| format!("spawning {program}: {e}"))?;
    let pid = child.id();
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A failed write (the program exited early) shows up in the exit code and stderr.
        let _ = pipe.write_all(input.as_bytes());
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(hard_timeout) {
        Ok(r) => r.map_err(|e| format!("waiting for {program}: {e}"))?,
        Err(_) => {
            // SAFETY: kill(2) on our own child, which the waiting thread has not reaped.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            return Err(format!("{program} hung for {hard_timeout:?} (killed)"));
        }
    };
    Ok(CmdOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Blanks what legitimately differs between two servers (see the module docs):
///
/// - header ids: `"cluster_id":N`, `"member_id":N`, `"raft_term":N` (json) and
///   `"ClusterID" : N`, `"MemberID" : N`, `"RaftTerm" : N` (fields) become `<id>`;
/// - in etcdctl's JSON log lines: `"ts":"…"` becomes `"ts":"<ts>"` and
///   `"target":"endpoint://client-<uuid>/<host:port>"` becomes `"target":"endpoint://<target>"`;
/// - a capnslog-style timestamp prefix (`2024-01-02 03:04:05.678901 `) at a line start.
pub fn normalize(s: &str) -> String {
    let mut out = s.to_string();
    for key in [
        "\"cluster_id\":",
        "\"member_id\":",
        "\"raft_term\":",
        "\"ClusterID\" : ",
        "\"MemberID\" : ",
        "\"RaftTerm\" : ",
    ] {
        out = replace_after(&out, key, |rest| rest.bytes().take_while(u8::is_ascii_digit).count(), "<id>");
    }
    out = replace_after(&out, "\"ts\":\"", |rest| rest.find('"').unwrap_or(0), "<ts>");
    out = replace_after(&out, "\"target\":\"endpoint://", |rest| rest.find('"').unwrap_or(0), "<target>");
    out.split_inclusive('\n').map(strip_timestamp_prefix).collect()
}

/// `member list` rows and `ETCD_INITIAL_CLUSTER` entries come in member id order, and the ids
/// differ between the two runs: sort them.
pub fn sort_member_order(s: &str) -> String {
    let mut lines: Vec<String> = s.lines().map(str::to_string).collect();
    for l in &mut lines {
        if let Some(v) = l.strip_prefix("ETCD_INITIAL_CLUSTER=\"") {
            let mut entries: Vec<&str> = v.trim_end_matches('"').split(',').collect();
            entries.sort();
            *l = format!("ETCD_INITIAL_CLUSTER=\"{}\"", entries.join(","));
        }
    }
    if lines.iter().all(|l| l.matches(", ").count() == 5) {
        lines.sort();
    }
    lines.into_iter().map(|l| l + "\n").collect()
}

/// Replaces, after every occurrence of `marker`, the `len(rest)` bytes that follow it with
/// `replacement`.
fn replace_after(s: &str, marker: &str, len: impl Fn(&str) -> usize, replacement: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(marker) {
        let after = i + marker.len();
        out.push_str(&rest[..after]);
        let n = len(&rest[after..]);
        if n > 0 {
            out.push_str(replacement);
        }
        rest = &rest[after + n..];
    }
    out.push_str(rest);
    out
}

/// Strips `YYYY-MM-DD HH:MM:SS.ffffff ` from the start of a line (etcd's capnslog format).
fn strip_timestamp_prefix(line: &str) -> &str {
    let b = line.as_bytes();
    let shape = "dddd-dd-dd dd:dd:dd";
    if b.len() < shape.len() {
        return line;
    }
    for (i, c) in shape.bytes().enumerate() {
        let ok = if c == b'd' { b[i].is_ascii_digit() } else { b[i] == c };
        if !ok {
            return line;
        }
    }
    let mut end = shape.len();
    if b.get(end) == Some(&b'.') {
        end += 1;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
    }
    if b.get(end) == Some(&b' ') {
        end += 1;
    }
    &line[end..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_only_ids_timestamps_and_targets() {
        let a = r#"{"header":{"cluster_id":14841639068965178418,"member_id":10276657743932975437,"revision":2,"raft_term":2},"count":1}"#;
        assert_eq!(
            normalize(a),
            "{\"header\":{\"cluster_id\":<id>,\"member_id\":<id>,\"revision\":2,\"raft_term\":<id>},\"count\":1}"
        );
        let w = "{\"level\":\"warn\",\"ts\":\"2026-11-21T04:18:39.249Z\",\"caller\":\"clientv3/retry_interceptor.go:62\",\"msg\":\"retrying of unary invoker failed\",\"target\":\"endpoint://client-7a688606-1d2c-4ad5-b37e-2b367ceed229/127.0.0.1:23790\",\"attempt\":0,\"error\":\"rpc error: code = OutOfRange desc = x\"}\nError: x\n";
        assert_eq!(
            normalize(w),
            "{\"level\":\"warn\",\"ts\":\"<ts>\",\"caller\":\"clientv3/retry_interceptor.go:62\",\"msg\":\"retrying of unary invoker failed\",\"target\":\"endpoint://<target>\",\"attempt\":0,\"error\":\"rpc error: code = OutOfRange desc = x\"}\nError: x\n"
        );
        assert_eq!(
            normalize("\"ClusterID\" : 324952591200643719\n\"Revision\" : 3\n"),
            "\"ClusterID\" : <id>\n\"Revision\" : 3\n"
        );
        assert_eq!(normalize("2026-11-21 04:18:37.985638 I | embed: ready\n"), "I | embed: ready\n");
        // Revisions and values are untouched.
        assert_eq!(normalize("\"revision\":17\nfoo 2026\n"), "\"revision\":17\nfoo 2026\n");
    }
}

/// A long-running etcdctl (`watch`, `lock`, `elect`), its stdout and stderr collected line by
/// line as they come, its stdin open for interactive commands. Killed when dropped.
pub struct Background {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    out: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Etcdctl {
    /// Starts `etcdctl --endpoints=<endpoint> <args>` in the background (same environment rules
    /// as [`Etcdctl::run`]).
    pub fn spawn(&self, args: &[&str]) -> Background {
        let mut child = Command::new(&self.bin)
            .env_clear()
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning etcdctl {args:?}: {e}"));
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let pipes: Vec<Box<dyn std::io::Read + Send>> = [
            child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        .collect();
        for pipe in pipes {
            let out = out.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        let stdin = child.stdin.take();
        Background { child, stdin, out }
    }
}

impl Background {
    /// Everything printed so far.
    pub fn output(&self) -> String {
        self.out.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn line_count(&self) -> usize {
        self.out.lock().unwrap_or_else(|p| p.into_inner()).lines().count()
    }

    /// Types a line on its stdin (interactive `watch -i`).
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("etcdctl's stdin is open");
        writeln!(stdin, "{line}").expect("write to etcdctl");
        stdin.flush().expect("flush etcdctl's stdin");
    }

    /// Waits until it printed at least `lines` lines; panics with `what` and the output after
    /// 20 s.
    pub fn wait_lines(&self, lines: usize, what: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.output();
            if out.lines().count() >= lines {
                return out;
            }
            assert!(std::time::Instant::now() < deadline, "{what}: waited 20 s for {lines} lines, got:\n{out}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits up to 20 s for it to exit by itself; its exit code (None: killed by a signal).
    pub fn wait_exit(&mut self, what: &str) -> Option<i32> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            assert!(std::time::Instant::now() < deadline, "{what}: still running after 20 s:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGINT, as a user's ctrl-c (etcdctl then closes its session, revoking its lease), and
    /// waits for the exit.
    pub fn interrupt(&mut self) -> Option<i32> {
        // SAFETY: kill(2) on our own child, which has not been reaped (wait_exit would have
        // returned, and we would not interrupt an exited process).
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        self.wait_exit("etcdctl after SIGINT")
    }

    /// Kills it and returns everything it printed.
    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.output()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
