//! The peer listener's check that a connecting member's certificate names the address it
//! connects from (etcd's `checkCertSAN`, `pkg/transport/listener_tls.go`), which etcd applies on
//! https peer listeners unless `--experimental-peer-skip-client-san-verification`: a certificate
//! stolen from one member cannot be used from another machine.
//!
//! As in etcd: a certificate without IP or DNS SANs passes; one whose IP SANs include the remote
//! IP passes; otherwise its DNS names must match the remote IP by a reverse lookup (wildcards
//! included) or a forward lookup of a non-wildcard name. The certificate chain itself was
//! verified in the handshake; only the names are read here.
//!
//! The SANs are read with a small DER walker rather than a full X.509 parser: the certificate
//! already passed webpki's verification, and only the subjectAltName extension's `dNSName` and
//! `iPAddress` entries are needed.

use std::net::IpAddr;

/// The subjectAltName extension's DNS names and IP addresses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sans {
    pub ips: Vec<IpAddr>,
    pub dns: Vec<String>,
}

/// OID 2.5.29.17 (subjectAltName), DER content bytes.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// The SANs of a DER certificate (empty when it has none or cannot be read).
pub fn sans(cert: &[u8]) -> Sans {
    read_sans(cert).unwrap_or_default()
}

fn read_sans(cert: &[u8]) -> Option<Sans> {
    let (_, certificate, _) = tlv(cert)?;
    let (_, tbs, _) = tlv(certificate)?;
    // TBSCertificate: version [0], serial, signature, issuer, validity, subject, spki,
    // issuerUniqueID [1], subjectUniqueID [2], extensions [3] EXPLICIT.
    let mut fields = tbs;
    let extensions = loop {
        let (tag, value, rest) = tlv(fields)?;
        if tag == 0xa3 {
            break value;
        }
        fields = rest;
    };
    let (_, mut list, _) = tlv(extensions)?;
    while !list.is_empty() {
        let (_, extension, rest) = tlv(list)?;
        list = rest;
        let (tag, oid, mut after) = tlv(extension)?;
        if tag != 0x06 || oid != SUBJECT_ALT_NAME {
            continue;
        }
        let (mut tag, mut value, _) = tlv(after)?;
        if tag == 0x01 {
            // critical BOOLEAN
            (_, _, after) = tlv(after)?;
            (tag, value, _) = tlv(after)?;
        }
        if tag != 0x04 {
            return None;
        }
        return general_names(value);
    }
    Some(Sans::default())
}

/// GeneralNames: dNSName is [2] IA5String, iPAddress is [7] OCTET STRING (4 or 16 bytes).
fn general_names(der: &[u8]) -> Option<Sans> {
    let (_, mut names, _) = tlv(der)?;
    let mut out = Sans::default();
    while !names.is_empty() {
        let (tag, value, rest) = tlv(names)?;
        names = rest;
        match tag {
            0x82 => out.dns.push(String::from_utf8_lossy(value).into_owned()),
            0x87 => match value.len() {
                4 => out.ips.push(IpAddr::from(<[u8; 4]>::try_from(value).ok()?)),
                16 => out.ips.push(IpAddr::from(<[u8; 16]>::try_from(value).ok()?)),
                _ => {}
            },
            _ => {}
        }
    }
    Some(out)
}

/// One DER element: (tag, content, what follows). Low tag numbers and definite lengths only,
/// which is all DER certificates use.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// etcd's `checkCertSAN`: Ok when the certificate's SANs allow a connection from `remote`, else
/// Go's error text.
pub async fn check_cert_san(sans: &Sans, remote: IpAddr) -> Result<(), String> {
    let remote = remote.to_canonical();
    if sans.ips.is_empty() && sans.dns.is_empty() {
        return Ok(());
    }
    if !sans.ips.is_empty() {
        if sans.ips.iter().any(|ip| ip.to_canonical() == remote) {
            return Ok(());
        }
        if sans.dns.is_empty() {
            let valid: Vec<String> = sans.ips.iter().map(IpAddr::to_string).collect();
            return Err(format!("x509: certificate is valid for {}, not {remote}", valid.join(", ")));
        }
    }
    match host_in_dns(remote, &sans.dns).await {
        Ok(()) => Ok(()),
        Err(lookup) => {
            let lookup = lookup.map(|e| format!(" ({e})")).unwrap_or_default();
            Err(format!(
                "tls: {:?} does not match any of DNSNames {}{lookup}",
                remote.to_string(),
                go_quoted(&sans.dns)
            ))
        }
    }
}

/// etcd's `isHostInDNS`: the remote IP's reverse names against the DNS SANs (wildcards as
/// suffixes), then each non-wildcard SAN's forward addresses against the IP. Err carries the
/// last lookup error, if any.
async fn host_in_dns(remote: IpAddr, dns: &[String]) -> Result<(), Option<String>> {
    let (wildcards, names): (Vec<&String>, Vec<&String>) = dns.iter().partition(|d| d.starts_with("*."));
    let mut last_err = None;
    match tokio::task::spawn_blocking(move || reverse_lookup(remote)).await {
        Ok(Ok(name)) => {
            let name = name.trim_end_matches('.');
            if wildcards.iter().any(|w| name.ends_with(&w[1..])) || names.iter().any(|n| n.as_str() == name) {
                return Ok(());
            }
        }
        Ok(Err(e)) => last_err = Some(e),
        Err(e) => last_err = Some(e.to_string()),
    }
    for name in names {
        match tokio::net::lookup_host((name.as_str(), 0)).await {
            Ok(mut addrs) => {
                if addrs.any(|a| a.ip().to_canonical() == remote) {
                    return Ok(());
                }
            }
            Err(e) => last_err = Some(format!("lookup {name}: {e}")),
        }
    }
    Err(last_err)
}

/// The host name `ip` resolves back to (getnameinfo with NI_NAMEREQD: /etc/hosts, then DNS).
fn reverse_lookup(ip: IpAddr) -> Result<String, String> {
    // SAFETY: a zeroed sockaddr_storage is a valid value; it is large and aligned enough for
    // either address family written into it below.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match ip {
        IpAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is at least as large and aligned as sockaddr_in.
            let sin = unsafe { &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr = libc::in_addr { s_addr: u32::from_ne_bytes(v4.octets()) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        IpAddr::V6(v6) => {
            // SAFETY: sockaddr_storage is at least as large and aligned as sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr = libc::in6_addr { s6_addr: v6.octets() };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: the address and the output buffer are valid for the lengths given; getnameinfo
    // NUL-terminates what it writes on success.
    let rc = unsafe {
        libc::getnameinfo(
            (&storage as *const libc::sockaddr_storage).cast::<libc::sockaddr>(),
            len as libc::socklen_t,
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        // SAFETY: gai_strerror returns a static NUL-terminated string for any code.
        let reason = unsafe { std::ffi::CStr::from_ptr(libc::gai_strerror(rc)) };
        return Err(format!("lookup {ip}: {}", reason.to_string_lossy()));
    }
    // SAFETY: NUL-terminated by getnameinfo within the buffer.
    let name = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) };
    Ok(name.to_string_lossy().into_owned())
}

/// A string list as Go's `%q` prints a `[]string`: `["a" "b"]`.
pub fn go_quoted<T: std::fmt::Display>(items: &[T]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{:?}", s.to_string())).collect();
    format!("[{}]", quoted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(names: &[&str]) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("params");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn reads_ip_and_dns_sans() {
        let s = sans(&cert(&["127.0.0.1", "::1", "localhost", "*.example.com"]));
        assert_eq!(s.ips, vec!["127.0.0.1".parse::<IpAddr>().unwrap(), "::1".parse().unwrap()]);
        assert_eq!(s.dns, vec!["localhost".to_string(), "*.example.com".to_string()]);
        assert_eq!(sans(&cert(&[])), Sans::default());
        assert_eq!(sans(b"\x30\x82\xff"), Sans::default());
    }

    #[tokio::test]
    async fn checks_as_etcd_does() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let ok = |names: &[&str]| sans(&cert(names));
        // No SANs at all, a matching IP, an IPv4-mapped remote.
        check_cert_san(&ok(&[]), local).await.unwrap();
        check_cert_san(&ok(&["127.0.0.1"]), local).await.unwrap();
        check_cert_san(&ok(&["127.0.0.1"]), "::ffff:127.0.0.1".parse().unwrap()).await.unwrap();
        // IP SANs only, none matching: Go's VerifyHostname text.
        let e = check_cert_san(&ok(&["10.0.0.1", "10.0.0.2"]), local).await.unwrap_err();
        assert_eq!(e, "x509: certificate is valid for 10.0.0.1, 10.0.0.2, not 127.0.0.1");
        // A DNS name that resolves to the remote address.
        check_cert_san(&ok(&["10.0.0.1", "localhost"]), local).await.unwrap();
        let e = check_cert_san(&ok(&["no-such-host.invalid"]), local).await.unwrap_err();
        assert!(e.starts_with("tls: \"127.0.0.1\" does not match any of DNSNames [\"no-such-host.invalid\"]"), "{e}");
    }
}
