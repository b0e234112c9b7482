//! `--discovery-srv`: the initial cluster from DNS SRV records, as etcd's `GetDNSClusterNames`
//! and `srv.GetCluster` build it, for a member starting without data.
//!
//! Two services are asked, `_etcd-server-ssl._tcp.<domain>` (members at https:// URLs) and
//! `_etcd-server._tcp.<domain>` (http://), each with `-<name>` appended to the service when
//! `--discovery-srv-name` is set. Every record is one member: the record whose target and port
//! resolve to the same address as one of this member's `--initial-advertise-peer-urls` is this
//! member (under `--name`), the others are named `0`, `1`, … in the order DNS gives them (their
//! names do not matter: member IDs come from peer URLs and the cluster token, and each member
//! publishes its own name once up). A member's URL is the record's target (without its trailing
//! dot) and port, with the service's scheme; a record that resolves to this member but under the
//! other scheme is an error. `--initial-cluster-token` is the token, as with a static cluster.
//!
//! etcd 3.4.23 itself only takes the https records: a bug (its http results were appended only
//! when their lookup *failed*) fixed in 3.5 ("Fix cluster peer HTTP SRV discovery"); wasmraft
//! follows the fix: both services' records, an error only when neither yields any
//! (docs/decisions.md).
//!
//! The resolver is hickory's, reading /etc/resolv.conf and /etc/hosts as Go's does, or asking
//! only the server `--wasmraft-discovery-srv-nameserver` names (the tests run one on loopback).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, bail};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use url::Url;

/// The `--discovery-srv*` flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvDiscovery {
    /// --discovery-srv: the domain.
    pub domain: String,
    /// --discovery-srv-name: appended to the service names as `-<name>`.
    pub service_name: String,
    /// --wasmraft-discovery-srv-nameserver: the one DNS server to ask instead of the system's.
    pub nameserver: Option<SocketAddr>,
}

/// One SRV record, as the lookup returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    pub target: String,
    pub port: u16,
}

/// What discovery needs from DNS; a trait so the naming rules are tested without a server.
#[allow(async_fn_in_trait)]
pub trait Lookup {
    /// The records of `_<service>._tcp.<domain>`, in the order to name them; an error when
    /// there are none.
    async fn srv(&self, service: &str, domain: &str) -> Result<Vec<SrvTarget>, String>;
    /// `host:port` resolved to one address (IPv4 first, as Go's `ResolveTCPAddr("tcp", …)`).
    async fn tcp_addr(&self, host: &str, port: u16) -> Result<SocketAddr, String>;
}

impl SrvDiscovery {
    /// None when --discovery-srv is not set.
    pub fn from_flags(domain: &str, service_name: &str, nameserver: Option<&str>) -> anyhow::Result<Option<Self>> {
        let nameserver = match nameserver.filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(match s.parse::<SocketAddr>() {
                Ok(a) => a,
                Err(_) => SocketAddr::new(
                    s.parse::<IpAddr>().with_context(|| {
                        format!("--wasmraft-discovery-srv-nameserver {s:?}: expected an IP address or ip:port")
                    })?,
                    53,
                ),
            }),
        };
        if domain.is_empty() {
            return Ok(None);
        }
        Ok(Some(SrvDiscovery { domain: domain.to_string(), service_name: service_name.to_string(), nameserver }))
    }

    /// The resolver: the system's configuration, or only the configured server.
    fn resolver(&self) -> anyhow::Result<TokioResolver> {
        let builder = match self.nameserver {
            None => TokioResolver::builder_tokio().context("reading the system's DNS configuration")?,
            Some(addr) => {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![ns]),
                    TokioRuntimeProvider::default(),
                )
            }
        };
        builder.build().context("starting the DNS resolver")
    }

    /// The initial cluster (name → peer URLs) for a member called `name` advertising
    /// `advertised` peer URLs, logged as etcd logs it.
    pub async fn initial_cluster(&self, name: &str, advertised: &[Url]) -> anyhow::Result<BTreeMap<String, Vec<Url>>> {
        let dns = HickoryLookup { resolver: self.resolver()?, server: self.nameserver };
        self.initial_cluster_with(&dns, name, advertised).await
    }

    pub async fn initial_cluster_with(
        &self,
        dns: &impl Lookup,
        name: &str,
        advertised: &[Url],
    ) -> anyhow::Result<BTreeMap<String, Vec<Url>>> {
        let suffix = if self.service_name.is_empty() { String::new() } else { format!("-{}", self.service_name) };
        let mut errors = Vec::new();
        let mut found = Vec::new();
        let mut temp_names = 0;
        for (scheme, service) in
            [("https", format!("etcd-server-ssl{suffix}")), ("http", format!("etcd-server{suffix}"))]
        {
            match get_cluster(dns, scheme, &service, name, &self.domain, advertised, &mut temp_names).await {
                Ok(entries) => found.extend(entries),
                Err(e) => errors.push(e),
            }
            tracing::info!(
                "embed: get cluster for {service} SRV (service-scheme {scheme}, discovery-srv {}): found {}",
                self.domain,
                found.iter().map(|(n, u)| format!("{n}={u}")).collect::<Vec<_>>().join(",")
            );
        }
        for e in &errors {
            tracing::warn!("embed: failed to resolve during SRV discovery: {e}");
        }
        if found.is_empty() {
            bail!("{}", errors.join("\n"));
        }
        let mut cluster: BTreeMap<String, Vec<Url>> = BTreeMap::new();
        for (n, u) in found {
            tracing::info!("embed: got bootstrap from DNS for etcd-server at {n}={u}");
            let url = Url::parse(&u).with_context(|| format!("SRV record gives an invalid URL {u:?}"))?;
            cluster.entry(n).or_default().push(url);
        }
        let Some(mine) = cluster.get(name) else {
            bail!("cannot find local etcd member {name:?} in SRV records");
        };
        // etcd's advertiseMatchesCluster, by resolved address: every advertised URL must be one
        // of this member's records (each record of ours already resolved to an advertised one).
        for u in advertised {
            let addr = resolve_url(dns, u).await?;
            let mut listed = false;
            for m in mine {
                if resolve_url(dns, m).await.ok() == Some(addr) {
                    listed = true;
                }
            }
            if !listed {
                let urls = |v: &[Url]| v.iter().map(crate::config::trim_url).collect::<Vec<_>>().join(",");
                bail!(
                    "--initial-cluster has {name}={} but missing from --initial-advertise-peer-urls={}",
                    urls(mine),
                    urls(advertised)
                );
            }
        }
        Ok(cluster)
    }
}

/// etcd's `srv.GetCluster` for one service: `name=scheme://target:port` entries.
async fn get_cluster(
    dns: &impl Lookup,
    scheme: &str,
    service: &str,
    name: &str,
    domain: &str,
    advertised: &[Url],
    temp_names: &mut usize,
) -> Result<Vec<(String, String)>, String> {
    let fail = |e: String| format!("error querying DNS SRV records for _{service} {e}");
    let mut own: Vec<(SocketAddr, &Url)> = Vec::new();
    for u in advertised {
        own.push((resolve_url(dns, u).await.map_err(|e| fail(e.to_string()))?, u));
    }
    let records = dns.srv(service, domain).await.map_err(fail)?;
    let mut entries = Vec::new();
    let mut last_error = None;
    for r in records {
        let addr = match dns.tcp_addr(&r.target, r.port).await {
            Ok(a) => a,
            Err(e) => {
                last_error = Some(e);
                continue;
            }
        };
        let host = r.target.trim_end_matches('.');
        let url_host = if host.contains(':') { format!("[{host}]:{}", r.port) } else { format!("{host}:{}", r.port) };
        let mine = own.iter().find(|(a, _)| *a == addr).map(|(_, u)| *u);
        match mine {
            Some(u) if u.scheme() != scheme => {
                last_error = Some(format!(
                    "bootstrap at {scheme}://{url_host} from DNS for {service} has scheme mismatch with expected peer {}",
                    crate::config::trim_url(u)
                ));
            }
            Some(_) => entries.push((name.to_string(), format!("{scheme}://{url_host}"))),
            None => {
                entries.push((temp_names.to_string(), format!("{scheme}://{url_host}")));
                *temp_names += 1;
            }
        }
    }
    if entries.is_empty() {
        return Err(fail(last_error.unwrap_or_else(|| "no usable records".into())));
    }
    Ok(entries)
}

async fn resolve_url(dns: &impl Lookup, u: &Url) -> anyhow::Result<SocketAddr> {
    let host = u.host_str().with_context(|| format!("{u}: no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = u.port_or_known_default().with_context(|| format!("{u}: no port"))?;
    dns.tcp_addr(host, port).await.map_err(|e| anyhow::anyhow!(e))
}

/// The real thing: hickory's resolver.
struct HickoryLookup {
    resolver: TokioResolver,
    server: Option<SocketAddr>,
}

impl HickoryLookup {
    /// Where the lookup went, as Go's errors say (`on 127.0.0.1:53`).
    fn on(&self) -> String {
        self.server.map(|s| format!(" on {s}")).unwrap_or_default()
    }
}

impl Lookup for HickoryLookup {
    async fn srv(&self, service: &str, domain: &str) -> Result<Vec<SrvTarget>, String> {
        let domain = domain.trim_end_matches('.');
        let query = format!("_{service}._tcp.{domain}.");
        let lookup = self.resolver.srv_lookup(query.as_str()).await.map_err(|e| {
            let why = if e.is_no_records_found() { "no such host".to_string() } else { e.to_string() };
            format!("lookup {query}{}: {why}", self.on())
        })?;
        let mut records: Vec<_> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(srv) => Some(srv.clone()),
                _ => None,
            })
            .collect();
        // Go's order: by priority, then (randomly, by weight; here simply) heavier first.
        records.sort_by_key(|s| (s.priority, std::cmp::Reverse(s.weight)));
        if records.is_empty() {
            return Err(format!("lookup {query}{}: no such host", self.on()));
        }
        Ok(records.into_iter().map(|s| SrvTarget { target: s.target.to_string(), port: s.port }).collect())
    }

    async fn tcp_addr(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let ips = self.resolver.lookup_ip(host).await.map_err(|e| {
            let why = if e.is_no_records_found() { "no such host".to_string() } else { e.to_string() };
            format!("lookup {host}{}: {why}", self.on())
        })?;
        let all: Vec<IpAddr> = ips.iter().collect();
        let ip = all
            .iter()
            .find(|ip| ip.is_ipv4())
            .or(all.first())
            .copied()
            .ok_or_else(|| format!("lookup {host}{}: no such host", self.on()))?;
        Ok(SocketAddr::new(ip, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixed records; every name resolves to 127.0.0.1.
    struct Fake {
        https: Vec<SrvTarget>,
        http: Vec<SrvTarget>,
    }

    impl Lookup for Fake {
        async fn srv(&self, service: &str, domain: &str) -> Result<Vec<SrvTarget>, String> {
            let r = if service.starts_with("etcd-server-ssl") { &self.https } else { &self.http };
            if r.is_empty() { Err(format!("lookup _{service}._tcp.{domain}.: no such host")) } else { Ok(r.clone()) }
        }
        async fn tcp_addr(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
            match host {
                "localhost" | "localhost." | "127.0.0.1" | "m.example.test" | "m.example.test." => {
                    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
                }
                _ => Err(format!("lookup {host}: no such host")),
            }
        }
    }

    fn srv(target: &str, port: u16) -> SrvTarget {
        SrvTarget { target: target.into(), port }
    }

    fn disc() -> SrvDiscovery {
        SrvDiscovery { domain: "example.test".into(), service_name: String::new(), nameserver: None }
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().build().map(|rt| rt.block_on(f)).expect("runtime")
    }

    #[test]
    fn own_record_by_address_others_numbered() {
        let dns =
            Fake { https: vec![], http: vec![srv("localhost.", 1), srv("m.example.test.", 2), srv("localhost.", 3)] };
        let me = [Url::parse("http://127.0.0.1:2").unwrap()];
        let c = run(disc().initial_cluster_with(&dns, "m2", &me)).unwrap();
        let s: Vec<String> = c.iter().map(|(n, u)| format!("{n}={}", crate::config::trim_url(&u[0]))).collect();
        assert_eq!(s, ["0=http://localhost:1", "1=http://localhost:3", "m2=http://m.example.test:2"]);
    }

    #[test]
    fn errors_are_etcds() {
        let none = Fake { https: vec![], http: vec![] };
        let me = [Url::parse("http://127.0.0.1:2").unwrap()];
        let e = run(disc().initial_cluster_with(&none, "m", &me)).unwrap_err().to_string();
        assert!(e.starts_with("error querying DNS SRV records for _etcd-server-ssl lookup _etcd-server-ssl._tcp.example.test.: no such host\nerror querying DNS SRV records for _etcd-server "), "{e}");
        let others = Fake { https: vec![], http: vec![srv("localhost.", 7)] };
        let e = run(disc().initial_cluster_with(&others, "m", &me)).unwrap_err().to_string();
        assert_eq!(e, "cannot find local etcd member \"m\" in SRV records");
        let wrong_scheme = Fake { https: vec![srv("localhost.", 2)], http: vec![srv("localhost.", 7)] };
        let e = run(disc().initial_cluster_with(&wrong_scheme, "m", &me)).unwrap_err().to_string();
        assert_eq!(e, "cannot find local etcd member \"m\" in SRV records", "the https record of ours is refused");
    }

    #[test]
    fn service_name_suffix() {
        struct Names;
        impl Lookup for Names {
            async fn srv(&self, service: &str, _: &str) -> Result<Vec<SrvTarget>, String> {
                if service == "etcd-server-ssl-prod" {
                    Ok(vec![srv("localhost.", 2)])
                } else {
                    Err(service.to_string())
                }
            }
            async fn tcp_addr(&self, _: &str, port: u16) -> Result<SocketAddr, String> {
                Ok(SocketAddr::from(([127, 0, 0, 1], port)))
            }
        }
        let d = SrvDiscovery { service_name: "prod".into(), ..disc() };
        let me = [Url::parse("https://127.0.0.1:2").unwrap()];
        let c = run(d.initial_cluster_with(&Names, "m", &me)).unwrap();
        assert_eq!(crate::config::trim_url(&c["m"][0]), "https://localhost:2");
    }

    #[test]
    fn flags() {
        assert_eq!(SrvDiscovery::from_flags("", "", None).unwrap(), None);
        let d = SrvDiscovery::from_flags("example.test", "x", Some("127.0.0.1:5353")).unwrap().unwrap();
        assert_eq!(d.nameserver, Some(SocketAddr::from(([127, 0, 0, 1], 5353))));
        let d = SrvDiscovery::from_flags("example.test", "", Some("127.0.0.1")).unwrap().unwrap();
        assert_eq!(d.nameserver, Some(SocketAddr::from(([127, 0, 0, 1], 53))));
        assert!(SrvDiscovery::from_flags("example.test", "", Some("nope")).is_err());
    }
}
