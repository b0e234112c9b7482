//! URL picker (`urlpick.go`): a member may advertise several peer URLs; every role uses the
//! picked one and moves to the next when it proves unreachable.

use std::sync::Mutex;

use crate::error::TransportError;

/// Parses and normalizes peer URLs (`http://host:port`, `https://host:port`, or etcd's Unix
/// socket URLs `unix://name:port` and `unixs://name:port`; no path).
pub(crate) fn parse_urls(urls: &[String]) -> Result<Vec<String>, TransportError> {
    if urls.is_empty() {
        return Err(TransportError::InvalidUrl("no peer URLs".into()));
    }
    urls.iter()
        .map(|s| {
            let u = url::Url::parse(s.trim()).map_err(|e| TransportError::InvalidUrl(format!("{s}: {e}")))?;
            let scheme = u.scheme();
            if !matches!(scheme, "http" | "https" | "unix" | "unixs") {
                return Err(TransportError::InvalidUrl(format!("{s}: URL scheme must be http, https, unix, or unixs")));
            }
            let host = u.host_str().ok_or_else(|| TransportError::InvalidUrl(format!("{s}: no host")))?;
            let host =
                if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_string() };
            Ok(match u.port() {
                Some(p) => format!("{scheme}://{host}:{p}"),
                None => format!("{scheme}://{host}"),
            })
        })
        .collect()
}

#[derive(Debug)]
pub(crate) struct UrlPicker {
    inner: Mutex<(Vec<String>, usize)>,
}

impl UrlPicker {
    /// `urls` must be non-empty (see [`parse_urls`]).
    pub(crate) fn new(urls: Vec<String>) -> Self {
        UrlPicker { inner: Mutex::new((urls, 0)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<String>, usize)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn update(&self, urls: Vec<String>) {
        *self.lock() = (urls, 0);
    }

    pub(crate) fn pick(&self) -> String {
        let g = self.lock();
        g.0.get(g.1).cloned().unwrap_or_default()
    }

    /// Moves on to the next URL if `u` is still the picked one.
    pub(crate) fn unreachable(&self, u: &str) {
        let mut g = self.lock();
        if g.0.get(g.1).is_some_and(|p| p == u) {
            g.1 = (g.1 + 1) % g.0.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_round_robin_on_unreachable() {
        let urls = parse_urls(&["http://127.0.0.1:1/".into(), "http://[::1]:2".into()]).unwrap_or_default();
        assert_eq!(urls, vec!["http://127.0.0.1:1".to_string(), "http://[::1]:2".to_string()]);
        let p = UrlPicker::new(urls);
        assert_eq!(p.pick(), "http://127.0.0.1:1");
        p.unreachable("http://127.0.0.1:1");
        assert_eq!(p.pick(), "http://[::1]:2");
        p.unreachable("http://127.0.0.1:1"); // stale report: no move
        assert_eq!(p.pick(), "http://[::1]:2");
        p.unreachable("http://[::1]:2");
        assert_eq!(p.pick(), "http://127.0.0.1:1");
        assert_eq!(parse_urls(&["https://a:1/".into()]).ok(), Some(vec!["https://a:1".to_string()]));
        assert_eq!(parse_urls(&["unix://etcd.unix:1".into()]).ok(), Some(vec!["unix://etcd.unix:1".to_string()]));
        assert!(parse_urls(&["ftp://a:1".into()]).is_err());
        assert!(parse_urls(&[]).is_err());
    }
}
