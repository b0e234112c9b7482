//! etcd's `accessController` (embed/serve.go) in front of the plain HTTP requests of the client
//! listener: `--host-whitelist` refuses requests on a connection without TLS whose `Host` is not
//! listed (421 with etcd's DNS-rebinding text, CVE-2018-5702), `--cors` adds etcd's three
//! `Access-Control-*` headers for an allowed `Origin` (for every origin with the default `*`),
//! and an `OPTIONS` request (a browser's preflight) is answered 200 with no body before any
//! route sees it.
//!
//! gRPC calls pass untouched: etcd serves them on a plain connection from its gRPC server
//! (cmux sends every HTTP/2 connection there), never through this handler, and no browser
//! makes one.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::Either;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http::{HeaderValue, Method, Request, Response, StatusCode, header};

use crate::conn::ClientConnInfo;

/// `--cors` and `--host-whitelist`, as etcd's `AccessController` holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessControl {
    /// Allowed origins; empty or containing `*` allows all.
    pub cors: BTreeSet<String>,
    /// Allowed `Host` names (without port) on connections without TLS; empty or containing `*`
    /// allows all.
    pub host_whitelist: BTreeSet<String>,
}

impl AccessControl {
    /// etcd's defaults: `*` for both.
    pub fn allow_all() -> Self {
        let star = BTreeSet::from(["*".to_string()]);
        AccessControl { cors: star.clone(), host_whitelist: star }
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        self.cors.is_empty() || self.cors.contains("*") || self.cors.contains(origin)
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.host_whitelist.is_empty() || self.host_whitelist.contains("*") || self.host_whitelist.contains(host)
    }
}

/// The layer to put on the client API server, right around the routes.
#[derive(Debug, Clone)]
pub(super) struct AccessLayer(pub(super) Arc<AccessControl>);

impl<S> tower_layer::Layer<S> for AccessLayer {
    type Service = Access<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Access { inner, ac: self.0.clone() }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Access<S> {
    inner: S,
    ac: Arc<AccessControl>,
}

type Answered<E> = std::future::Ready<Result<Response<Body>, E>>;

impl<S, B> Service<Request<B>> for Access<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<CorsFuture<S::Future>, Answered<S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if crate::grpc_metrics::is_grpc(req.headers()) {
            return Either::Left(CorsFuture { inner: self.inner.call(req), origin: None });
        }
        let secure = req.extensions().get::<ClientConnInfo>().is_some_and(|c| c.secure);
        if !secure {
            let host = hostname(&req);
            if !self.ac.host_allowed(&host) {
                tracing::warn!("etcdserver: rejecting HTTP request from {host:?} to prevent DNS rebinding attacks");
                return Either::Right(std::future::ready(Ok(misdirected(&host))));
            }
        }
        let origin = if self.ac.origin_allowed("*") {
            Some(HeaderValue::from_static("*"))
        } else {
            req.headers().get(header::ORIGIN).filter(|o| o.to_str().is_ok_and(|o| self.ac.origin_allowed(o))).cloned()
        };
        if req.method() == Method::OPTIONS {
            let mut resp = Response::new(Body::empty());
            add_cors_headers(&mut resp, origin);
            return Either::Right(std::future::ready(Ok(resp)));
        }
        Either::Left(CorsFuture { inner: self.inner.call(req), origin })
    }
}

pin_project_lite::pin_project! {
    /// The inner service's response, with the CORS headers added when there is an allowed
    /// origin.
    pub(super) struct CorsFuture<F> {
        #[pin]
        inner: F,
        origin: Option<HeaderValue>,
    }
}

impl<F, E> std::future::Future for CorsFuture<F>
where
    F: std::future::Future<Output = Result<Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut resp = std::task::ready!(this.inner.poll(cx))?;
        add_cors_headers(&mut resp, this.origin.take());
        Poll::Ready(Ok(resp))
    }
}

/// etcd's `addCORSHeader`.
fn add_cors_headers(resp: &mut Response<Body>, origin: Option<HeaderValue>) {
    let Some(origin) = origin else { return };
    let h = resp.headers_mut();
    h.append(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"));
    h.append(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.append(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("accept, content-type, authorization"));
}

/// etcd's `httputil.GetHostname`: the `Host` (the URI's authority for HTTP/2) without its port.
fn hostname<B>(req: &Request<B>) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default();
    split_host_port(host).unwrap_or(host).to_string()
}

/// Go's `net.SplitHostPort`'s host, or None where it fails (no port, or brackets out of place).
fn split_host_port(hostport: &str) -> Option<&str> {
    if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return after.starts_with(':').then_some(host);
    }
    let (host, _port) = hostport.rsplit_once(':')?;
    (!host.contains(':')).then_some(host)
}

/// Go's `http.Error(w, errCVE20185702(host), 421)`.
fn misdirected(host: &str) -> Response<Body> {
    let body = format!(
        "\netcd received your request, but the Host header was unrecognized.\n\n\
         To fix this, choose one of the following options:\n\
         - Enable TLS, then any HTTPS request will be allowed.\n\
         - Add the hostname you want to use to the whitelist in settings.\n  \
         - e.g. etcd --host-whitelist {host:?}\n\n\
         This requirement has been added to help prevent \"DNS Rebinding\" attacks (CVE-2018-5702).\n\n"
    );
    let mut resp = Response::new(Body::new(body));
    *resp.status_mut() = StatusCode::MISDIRECTED_REQUEST;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_split_host_port() {
        assert_eq!(split_host_port("127.0.0.1:2379"), Some("127.0.0.1"));
        assert_eq!(split_host_port("[::1]:2379"), Some("::1"));
        assert_eq!(split_host_port("example.com"), None);
        assert_eq!(split_host_port("::1"), None);
    }

    #[test]
    fn etcd_allow_rules() {
        let ac = AccessControl::default();
        assert!(ac.origin_allowed("http://x:1") && ac.host_allowed("x"), "empty allows all");
        let ac = AccessControl {
            cors: BTreeSet::from(["http://a.example:8080".into()]),
            host_whitelist: BTreeSet::from(["localhost".into()]),
        };
        assert!(ac.origin_allowed("http://a.example:8080") && !ac.origin_allowed("http://b.example:8080"));
        assert!(ac.host_allowed("localhost") && !ac.host_allowed("127.0.0.1"));
        assert!(AccessControl::allow_all().host_allowed("anything"));
    }
}
