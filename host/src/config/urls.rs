//! URL lists as etcd's flags take them: comma-separated, `http`/`https` with `host:port`, and
//! `--initial-cluster`'s `name=url` pairs.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use url::Url;

/// A URL as etcd prints and hashes it: no trailing slash.
pub fn trim_url(u: &Url) -> String {
    u.as_str().trim_end_matches('/').to_string()
}

/// A URL's `host:port`, as Go's `url.URL.Host` prints it.
pub(crate) fn host_port(u: &Url) -> String {
    match (u.host_str(), u.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        _ => trim_url(u),
    }
}

pub fn parse_urls(flag: &str, value: &str) -> anyhow::Result<Vec<Url>> {
    let mut out = Vec::new();
    for part in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let url = Url::parse(part).with_context(|| format!("invalid value {part:?} for flag {flag}"))?;
        match url.scheme() {
            "http" | "https" | "unix" | "unixs" => {}
            _ => bail!("{flag}: URL scheme must be http, https, unix, or unixs: {part}"),
        }
        if url.host_str().is_none() || url.port().is_none() {
            bail!("{flag}: URL address does not have the form \"host:port\": {part}");
        }
        out.push(url);
    }
    if out.is_empty() {
        bail!("{flag} must not be empty");
    }
    Ok(out)
}

/// Parses `name1=url1,name1=url2,name2=url3`: a name may appear several times, once per URL.
pub fn parse_initial_cluster(value: &str) -> anyhow::Result<BTreeMap<String, Vec<Url>>> {
    let mut out: BTreeMap<String, Vec<Url>> = BTreeMap::new();
    for part in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((name, url)) = part.split_once('=') else {
            bail!("--initial-cluster: {part:?} is not of the form name=url");
        };
        let url = parse_urls("--initial-cluster", url)?.remove(0);
        let urls = out.entry(name.to_string()).or_default();
        if urls.contains(&url) {
            bail!("--initial-cluster: duplicate URL {url} for member {name:?}");
        }
        urls.push(url);
    }
    if out.is_empty() {
        bail!("--initial-cluster must not be empty");
    }
    Ok(out)
}
