//! Peer prober (`probing_status.go` and xiang90/probing, the client side): for every peer, a
//! `GET <url>/raft/probing` every `probe_interval` (etcd: `ConnReadTimeout - 1s`, 4 s), keeping
//! a smoothed round-trip time, health, loss and the clock difference the answer's `Now` implies;
//! and a monitor that logs etcd's warnings — `prober detected unhealthy status` (first check
//! after 5 s, then every 5 s while unhealthy, every 30 s while healthy) and `prober found high
//! clock drift` (difference over 1 s). The answer it parses is written here too (xiang90/probing's
//! handler, which the peer port's router serves), so both ends of the format stay in one file.
//!
//! As etcd: the first probe goes out one interval after the peer is added; a failed probe moves
//! on to the peer's next URL (the prober's own pin, not the roles' URL picker); the status
//! starts unhealthy; `update_peer` restarts the prober (status reset); removing the peer or
//! stopping the transport ends it (the tasks are owned by the peer and aborted on drop).
//! Remotes are not probed (etcd 3.4's `AddRemote` does not add them to the prober).
//!
//! Differences, on purpose: etcd runs two probers per peer (one per round tripper,
//! `ROUND_TRIPPER_SNAPSHOT` and `ROUND_TRIPPER_RAFT_MESSAGE`) that probe the same URLs; we
//! have one HTTP client, so one prober, named `ROUND_TRIPPER_RAFT_MESSAGE` in the logs. Each
//! probe is bounded by `conn_read_timeout` (etcd's snapshot round tripper has no read timeout,
//! so a hung peer could keep its last status forever). The first RTT sample is taken as the
//! SRTT (the xiang90/probing version etcd 3.4 pins averages it with 0, later fixed upstream).
//! An answer without `Now` counts as healthy with no clock difference (etcd would compute one
//! against the zero time and warn about drift).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Method, Request, Response, StatusCode};
use tokio::task::JoinHandle;

use crate::body::ChannelBody;
use crate::ctx::Ctx;
use crate::util::{PROBING_PREFIX, id_str, read_small_body};

/// etcd's `RoundTripperNameRaftMessage`, the name in the prober's log lines.
pub const ROUND_TRIPPER_NAME: &str = "ROUND_TRIPPER_RAFT_MESSAGE";
/// etcd's `statusErrorInterval`: first check, and re-checks while unhealthy.
const STATUS_ERROR_INTERVAL: Duration = Duration::from_secs(5);
/// etcd's `statusMonitoringInterval`: re-checks while healthy.
const STATUS_MONITORING_INTERVAL: Duration = Duration::from_secs(30);
/// xiang90/probing's smoothing factor α.
const ALPHA: f64 = 0.125;
/// etcd warns when the clock difference exceeds this.
const MAX_CLOCK_DIFF: Duration = Duration::from_secs(1);

/// The prober's view of one peer (xiang90/probing's `Status`), for logs and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeStatus {
    /// Whether the last probe succeeded (false until the first one does).
    pub healthy: bool,
    /// Smoothed round-trip time (`SRTT = (1-α)·SRTT + α·RTT`, α = 1/8); zero before any success.
    pub srtt: Duration,
    /// Round-trip time of the last successful probe.
    pub last_rtt: Option<Duration>,
    /// Local clock minus the peer's `Now`, less half the SRTT, in seconds (positive: our clock
    /// is ahead). `None` until a success with a `Now`.
    pub clock_diff_secs: Option<f64>,
    /// Probes made and probes failed.
    pub total: u64,
    pub loss: u64,
    /// Why the last probe failed (cleared by a success).
    pub last_error: Option<String>,
    /// The URL of the last probe.
    pub last_url: Option<String>,
}

impl ProbeStatus {
    fn new() -> Self {
        ProbeStatus {
            healthy: false,
            srtt: Duration::ZERO,
            last_rtt: None,
            clock_diff_secs: None,
            total: 0,
            loss: 0,
            last_error: None,
            last_url: None,
        }
    }

    fn record(&mut self, url: &str, rtt: Duration, remote_now: Option<SystemTime>) {
        self.total += 1;
        self.healthy = true;
        let last = if self.srtt.is_zero() { rtt } else { self.srtt };
        self.srtt = Duration::from_secs_f64((1.0 - ALPHA) * last.as_secs_f64() + ALPHA * rtt.as_secs_f64());
        self.last_rtt = Some(rtt);
        self.clock_diff_secs = remote_now.map(|t| {
            let now = SystemTime::now();
            let d = match now.duration_since(t) {
                Ok(d) => d.as_secs_f64(),
                Err(e) => -e.duration().as_secs_f64(),
            };
            d - self.srtt.as_secs_f64() / 2.0
        });
        self.last_error = None;
        self.last_url = Some(url.to_string());
    }

    fn record_failure(&mut self, url: &str, err: String) {
        self.total += 1;
        self.loss += 1;
        self.healthy = false;
        self.last_error = Some(err);
        self.last_url = Some(url.to_string());
    }
}

/// A running prober for one peer: the probe loop and the monitor, aborted on drop.
pub(crate) struct Prober {
    status: Arc<Mutex<ProbeStatus>>,
    tasks: [JoinHandle<()>; 2],
}

impl Prober {
    /// etcd's `addPeerToProber`. `urls` must be non-empty.
    pub(crate) fn start(ctx: Arc<Ctx>, id: u64, urls: Vec<String>) -> Prober {
        let status = Arc::new(Mutex::new(ProbeStatus::new()));
        let probe = tokio::spawn(probe_loop(ctx.clone(), urls, status.clone()));
        let monitor = tokio::spawn(monitor(id, status.clone()));
        Prober { status, tasks: [probe, monitor] }
    }

    pub(crate) fn status(&self) -> ProbeStatus {
        lock(&self.status).clone()
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn lock(s: &Mutex<ProbeStatus>) -> std::sync::MutexGuard<'_, ProbeStatus> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

async fn probe_loop(ctx: Arc<Ctx>, urls: Vec<String>, status: Arc<Mutex<ProbeStatus>>) {
    if urls.is_empty() {
        return;
    }
    let every = ctx.cfg.probe_interval.max(Duration::from_millis(1));
    // A Go ticker: first tick one interval from now; ticks missed by a slow probe are dropped.
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut pinned = 0usize;
    loop {
        ticker.tick().await;
        let url = format!("{}{PROBING_PREFIX}", urls[pinned]);
        let start = Instant::now();
        match probe_once(&ctx, &url).await {
            Ok(now) => lock(&status).record(&url, start.elapsed(), now),
            Err(e) => {
                lock(&status).record_failure(&url, e);
                pinned = (pinned + 1) % urls.len();
            }
        }
    }
}

/// One `GET /raft/probing`: the peer's `Now` on a 200 with `"OK":true`.
async fn probe_once(ctx: &Ctx, url: &str) -> Result<Option<SystemTime>, String> {
    let req = Request::builder().method(Method::GET).uri(url).body(ChannelBody::empty()).map_err(|e| e.to_string())?;
    let timeout = ctx.cfg.conn_read_timeout;
    let work = async {
        let resp = ctx.client.request(req).await.map_err(|e| {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(c) = src {
                s = format!("{s}: {c}");
                src = c.source();
            }
            s
        })?;
        let code = resp.status();
        let body = read_small_body(resp.into_body(), timeout).await.map_err(|e| e.to_string())?;
        if code != StatusCode::OK {
            return Err(format!("got unexpected HTTP status code {code} from {url}"));
        }
        let h = parse_health(&body)?;
        if !h.ok {
            return Err(format!("{url} answered \"OK\": false"));
        }
        Ok(h.now)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(format!("probe timed out after {timeout:?}")),
    }
}

/// etcd's `monitorProbingStatus`.
async fn monitor(id: u64, status: Arc<Mutex<ProbeStatus>>) {
    let mut interval = STATUS_ERROR_INTERVAL;
    loop {
        tokio::time::sleep(interval).await;
        let s = lock(&status).clone();
        if !s.healthy {
            tracing::warn!(
                round_tripper_name = ROUND_TRIPPER_NAME,
                remote_peer_id = %id_str(id),
                rtt = ?s.srtt,
                error = s.last_error.as_deref().unwrap_or(""),
                "prober detected unhealthy status"
            );
            interval = STATUS_ERROR_INTERVAL;
        } else {
            interval = STATUS_MONITORING_INTERVAL;
        }
        if let Some(d) = s.clock_diff_secs
            && d > MAX_CLOCK_DIFF.as_secs_f64()
        {
            tracing::warn!(
                round_tripper_name = ROUND_TRIPPER_NAME,
                remote_peer_id = %id_str(id),
                clock_drift = ?Duration::from_secs_f64(d),
                rtt = ?s.srtt,
                error = s.last_error.as_deref().unwrap_or(""),
                "prober found high clock drift"
            );
        }
    }
}

// ---------------------------------------------------------------- the answer

#[derive(Debug, PartialEq)]
pub(crate) struct Health {
    pub ok: bool,
    pub now: Option<SystemTime>,
}

/// Decodes xiang90/probing's `Health` as Go's `encoding/json` would: one object, keys matched
/// case-insensitively, unknown keys (of any shape) ignored, trailing data after the object
/// ignored (a `json.Decoder` reads one value).
pub(crate) fn parse_health(b: &[u8]) -> Result<Health, String> {
    let s = std::str::from_utf8(b).map_err(|_| "probing: answer is not UTF-8".to_string())?;
    let mut p = JsonScan { s, i: 0 };
    let mut h = Health { ok: false, now: None };
    p.ws();
    p.expect('{')?;
    p.ws();
    if p.peek() == Some('}') {
        return Ok(h);
    }
    loop {
        p.ws();
        let key = p.string()?;
        p.ws();
        p.expect(':')?;
        p.ws();
        if key.eq_ignore_ascii_case("OK") {
            h.ok = match p.literal()? {
                "true" => true,
                "false" | "null" => false,
                other => return Err(format!("probing: OK is {other}")),
            };
        } else if key.eq_ignore_ascii_case("Now") {
            if p.peek() == Some('"') {
                let t = p.string()?;
                h.now = Some(parse_rfc3339(&t).ok_or_else(|| format!("probing: bad time {t:?}"))?);
            } else {
                match p.literal()? {
                    "null" => {}
                    other => return Err(format!("probing: Now is {other}")),
                }
            }
        } else {
            p.skip_value(0)?;
        }
        p.ws();
        match p.next() {
            Some(',') => continue,
            Some('}') => return Ok(h),
            _ => return Err("probing: malformed answer".into()),
        }
    }
}

struct JsonScan<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> JsonScan<'a> {
    fn peek(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += c.len_utf8();
        Some(c)
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.i += 1;
        }
    }
    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.next() == Some(c) { Ok(()) } else { Err(format!("probing: malformed answer (expected {c:?})")) }
    }
    /// A string (escapes other than `\uXXXX` surrogates kept simple).
    fn string(&mut self) -> Result<String, String> {
        self.expect('"')?;
        let mut out = String::new();
        loop {
            match self.next() {
                None => return Err("probing: unterminated string".into()),
                Some('"') => return Ok(out),
                Some('\\') => match self.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('b') => out.push('\u{8}'),
                    Some('f') => out.push('\u{c}'),
                    Some('u') => {
                        let hex = self.s.get(self.i..self.i + 4).ok_or("probing: bad escape")?;
                        let v = u32::from_str_radix(hex, 16).map_err(|_| "probing: bad escape")?;
                        self.i += 4;
                        out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                    }
                    Some(c) => out.push(c),
                    None => return Err("probing: unterminated string".into()),
                },
                Some(c) => out.push(c),
            }
        }
    }
    /// A bare literal: true, false, null or a number.
    fn literal(&mut self) -> Result<&'a str, String> {
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.')) {
            self.i += 1;
        }
        if self.i == start {
            return Err("probing: malformed answer (expected a value)".into());
        }
        Ok(&self.s[start..self.i])
    }
    fn skip_value(&mut self, depth: usize) -> Result<(), String> {
        if depth > 64 {
            return Err("probing: answer nested too deeply".into());
        }
        match self.peek() {
            Some('"') => self.string().map(|_| ()),
            Some(open @ ('{' | '[')) => {
                let close = if open == '{' { '}' } else { ']' };
                self.i += 1;
                self.ws();
                if self.peek() == Some(close) {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    if open == '{' {
                        self.string()?;
                        self.ws();
                        self.expect(':')?;
                        self.ws();
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.next() {
                        Some(',') => continue,
                        Some(c) if c == close => return Ok(()),
                        _ => return Err("probing: malformed answer".into()),
                    }
                }
            }
            _ => self.literal().map(|_| ()),
        }
    }
}

/// Go's `time.Time.UnmarshalJSON` (RFC 3339, any fraction, `Z` or `±hh:mm`).
pub(crate) fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i];
        if digits.is_empty() {
            return None;
        }
        let mut d: String = digits.chars().take(9).collect();
        while d.len() < 9 {
            d.push('0');
        }
        nanos = d.parse().ok()?;
    }
    let offset_secs = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            let v = h * 3600 + m * 60;
            if *c == b'-' { -v } else { v }
        }
        _ => return None,
    };
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_secs;
    let total = Duration::new(secs.unsigned_abs(), 0);
    if secs >= 0 {
        UNIX_EPOCH.checked_add(total)?.checked_add(Duration::from_nanos(nanos as u64))
    } else {
        UNIX_EPOCH.checked_sub(total)?.checked_add(Duration::from_nanos(nanos as u64))
    }
}

// ---------------------------------------------------------------- server side

/// xiang90/probing's handler: `{"OK":true,"Now":<RFC 3339 time>}` plus a newline.
pub(crate) fn handler() -> Response<ChannelBody> {
    let mut r = Response::new(ChannelBody::full(probing_body()));
    r.headers_mut().insert("Content-Type", HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn probing_body() -> String {
    format!("{{\"OK\":true,\"Now\":\"{}\"}}\n", rfc3339_now())
}

fn rfc3339_now() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut frac = format!("{:09}", d.subsec_nanos());
    while frac.ends_with('0') {
        frac.pop();
    }
    let frac = if frac.is_empty() { String::new() } else { format!(".{frac}") };
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{frac}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_probing_answers_as_go_does() {
        let h = parse_health(b"{\"OK\":true,\"Now\":\"2024-05-01T12:00:00.123456789Z\"}\n");
        let want = UNIX_EPOCH + Duration::new(1_714_564_800, 123_456_789);
        assert_eq!(h, Ok(Health { ok: true, now: Some(want) }));
        // A local time with an offset (etcd encodes time.Now() in its local zone).
        let h = parse_health(b"{\"OK\":true,\"Now\":\"2024-05-01T14:00:00.123456789+02:00\"}");
        assert_eq!(h.map(|h| h.now), Ok(Some(want)));
        let h = parse_health(b"{\"Now\":\"2024-05-01T07:30:00.123456789-04:30\",\"ok\":true}");
        assert_eq!(h.map(|h| (h.ok, h.now)), Ok((true, Some(want))));
        // Unknown keys of any shape are ignored; OK false is a failure upstream.
        let h = parse_health(b" { \"x\": [1, {\"y\": \"}\"}], \"OK\" : false } trailing");
        assert_eq!(h, Ok(Health { ok: false, now: None }));
        assert!(parse_health(b"").is_err());
        assert!(parse_health(b"404 page not found\n").is_err());
        assert!(parse_health(b"{\"OK\":true,\"Now\":\"yesterday\"}").is_err());
        assert!(parse_health(b"{\"OK\":true").is_err());
        // Our own handler's answer round-trips.
        let ours = probing_body();
        let h = parse_health(ours.as_bytes()).expect("ours");
        assert!(h.ok);
        let d = SystemTime::now().duration_since(h.now.expect("now")).unwrap_or_default();
        assert!(d < Duration::from_secs(60), "{ours}");
    }

    #[test]
    fn rfc3339_edges() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.5Z"), Some(UNIX_EPOCH - Duration::from_millis(500)));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00+00:00"), Some(UNIX_EPOCH + Duration::from_secs(951_782_400)));
        assert_eq!(parse_rfc3339("2000-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2000-01-01T00:00:00"), None);
        assert_eq!(parse_rfc3339("2000-01-01T00:00:00.Z"), None);
        assert_eq!(parse_rfc3339("2000-01-01T00:00:00+0100"), None);
    }

    #[test]
    fn srtt_smooths_and_failures_count() {
        let mut s = ProbeStatus::new();
        s.record("u", Duration::from_millis(80), None);
        assert_eq!(s.srtt, Duration::from_millis(80));
        s.record("u", Duration::from_millis(160), Some(SystemTime::now()));
        assert_eq!(s.srtt, Duration::from_millis(90));
        assert!(s.clock_diff_secs.is_some_and(|d| d.abs() < 1.0));
        s.record_failure("u", "boom".into());
        assert_eq!((s.healthy, s.total, s.loss), (false, 3, 1));
        assert_eq!(s.srtt, Duration::from_millis(90));
        assert_eq!(s.last_error.as_deref(), Some("boom"));
    }

    #[test]
    fn rfc3339_shape() {
        let s = rfc3339_now();
        assert!(s.len() >= 20 && s.ends_with('Z') && &s[4..5] == "-" && &s[10..11] == "T", "{s}");
    }
}
