//! A small blocking HTTP(S) client for the broker's JSON API (the sidecar, the admin CLI,
//! simulated hosts, tests). HTTPS trusts only the CA certificates it is given: a sidecar pins
//! its broker's CA rather than the whole web PKI.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::tls::{PemItem, RootCerts, TlsConfig, TlsProvider};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use serde_json::Value;

/// A request failed before an HTTP status came back.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClientError(pub String);

/// A response: status and JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Parsed body.
    pub body: Value,
}

impl Reply {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The `error.code` of an error body.
    pub fn code(&self) -> Option<&str> {
        self.body.get("error")?.get("code")?.as_str()
    }
}

/// A body to send.
#[derive(Debug, Clone)]
pub enum Body {
    /// No body.
    Empty,
    /// JSON.
    Json(Value),
    /// `application/x-www-form-urlencoded`.
    Form(Vec<(String, String)>),
    /// Raw bytes with a content type.
    Raw(&'static str, Vec<u8>),
}

/// Resolves a host that is an IP address (loopback, and most broker URLs) to itself. ureq's
/// own resolver, used for names, runs every lookup on a new thread it can abandon at the
/// timeout, before every request, pooled connection or not: that thread was a sixth of a
/// simulated host's CPU under load.
#[derive(Debug)]
struct LiteralFirst;

impl Resolver for LiteralFirst {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let literal = uri.authority().and_then(|authority| {
            let host = authority.host();
            let ip: IpAddr = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host)
                .parse()
                .ok()?;
            let port = authority.port_u16().or(match uri.scheme_str() {
                Some("http") => Some(80),
                Some("https") => Some(443),
                _ => None,
            })?;
            Some(SocketAddr::new(ip, port))
        });
        match literal {
            Some(addr) => {
                let mut addrs = self.empty();
                addrs.push(addr);
                Ok(addrs)
            }
            None => DefaultResolver::default().resolve(uri, config, timeout),
        }
    }
}

/// The client.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
}

/// Largest response body read (the broker's answers are a few KiB; audit exports are larger).
const MAX_RESPONSE: u64 = 16 * 1024 * 1024;

impl Client {
    /// A client for the broker at `base` (e.g. `http://127.0.0.1:8080`). HTTPS URLs get no
    /// trusted roots: use [`Client::with_ca_pem`] for them.
    pub fn new(base: &str) -> Self {
        Self::build(
            base,
            RootCerts::Specific(Arc::new(Vec::new())),
            Duration::from_secs(30),
        )
    }

    /// A client that trusts exactly the CA certificates in `ca_pem` for HTTPS, with `timeout`
    /// for a whole request.
    pub fn with_ca_pem(base: &str, ca_pem: &[u8], timeout: Duration) -> Result<Self, ClientError> {
        let mut roots = Vec::new();
        for item in ureq::tls::parse_pem(ca_pem) {
            match item {
                Ok(PemItem::Certificate(cert)) => roots.push(cert),
                Ok(_) => {}
                Err(e) => return Err(ClientError(format!("CA certificates: {e}"))),
            }
        }
        if roots.is_empty() {
            return Err(ClientError(
                "CA certificates: no certificate in the PEM".into(),
            ));
        }
        Ok(Self::build(
            base,
            RootCerts::Specific(Arc::new(roots)),
            timeout,
        ))
    }

    /// A plain client with `timeout` for a whole request.
    pub fn with_timeout(base: &str, timeout: Duration) -> Self {
        Self::build(base, RootCerts::Specific(Arc::new(Vec::new())), timeout)
    }

    fn build(base: &str, roots: RootCerts, timeout: Duration) -> Self {
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(roots)
            .unversioned_rustls_crypto_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .build();
        // No redirects (an API answer is never a redirect, and a redirect must not carry a
        // bootstrap secret elsewhere) and no proxy from the environment: the client talks to
        // the URL it was configured with, and nothing else.
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .proxy(None)
            .timeout_global(Some(timeout))
            // The broker closes connections idle for its client timeout (10 s by default);
            // reuse only connections idle for less, so a request never races that close.
            .max_idle_age(Duration::from_secs(5))
            .tls_config(tls)
            .build();
        let agent = ureq::Agent::with_parts(config, DefaultConnector::new(), LiteralFirst);
        Client {
            agent,
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request; `headers` are extra (name, value) pairs such as Authorization.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Result<Reply, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut builder = ureq::http::Request::builder().method(method).uri(&url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let (content_type, bytes) = match body {
            Body::Empty => (None, Vec::new()),
            Body::Json(v) => (Some("application/json"), v.to_string().into_bytes()),
            Body::Form(pairs) => (
                Some("application/x-www-form-urlencoded"),
                pairs
                    .iter()
                    .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
                    .collect::<Vec<_>>()
                    .join("&")
                    .into_bytes(),
            ),
            Body::Raw(ct, bytes) => (Some(ct), bytes),
        };
        if let Some(ct) = content_type {
            builder = builder.header("content-type", ct);
        }
        let request = builder
            .body(bytes)
            .map_err(|e| ClientError(format!("{method} {url}: {e}")))?;
        let response = self
            .agent
            .run(request)
            .map_err(|e| ClientError(format!("{method} {url}: {e}")))?;
        let status = response.status().as_u16();
        let text = response
            .into_body()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_string()
            .map_err(|e| ClientError(format!("{method} {url}: reading the response: {e}")))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Reply { status, body })
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (form values, query
/// parameters).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn resolve(url: &str) -> Result<Vec<SocketAddr>, ureq::Error> {
        let uri: Uri = url.parse().unwrap();
        let config = ureq::Agent::config_builder().build();
        let timeout = NextTimeout {
            after: ureq::unversioned::transport::time::Duration::Exact(Duration::from_secs(5)),
            reason: ureq::Timeout::Resolve,
            ..NextTimeout::default()
        };
        LiteralFirst
            .resolve(&uri, &config, timeout)
            .map(|a| a.iter().copied().collect())
    }

    #[test]
    fn ip_literals_resolve_to_themselves_and_names_are_looked_up() {
        let one = |url: &str| resolve(url).unwrap();
        assert_eq!(
            one("http://127.0.0.1:8080/v1"),
            ["127.0.0.1:8080".parse().unwrap()]
        );
        assert_eq!(one("http://127.0.0.1/"), ["127.0.0.1:80".parse().unwrap()]);
        assert_eq!(one("https://10.1.2.3/"), ["10.1.2.3:443".parse().unwrap()]);
        assert_eq!(one("https://[::1]:8443/"), ["[::1]:8443".parse().unwrap()]);
        // A name goes to the system resolver (localhost needs no network).
        let local = one("http://localhost:9/");
        assert!(!local.is_empty() && local.iter().all(|a| a.ip().is_loopback() && a.port() == 9));
        assert!(resolve("http://no-such-host.invalid:9/").is_err());
    }

    /// A one-shot HTTP server on loopback answering `response`; returns its base URL and the
    /// request it received.
    fn one_shot(response: &'static str) -> (String, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap();
            stream.write_all(response.as_bytes()).unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        (url, handle)
    }

    #[test]
    fn redirects_are_not_followed_and_headers_go_only_to_the_configured_url() {
        let (url, server) = one_shot(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:9/steal\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        let reply = Client::new(&url)
            .send(
                "POST",
                "/v1/attest",
                &[("authorization", "Bootstrap s3cret")],
                Body::Empty,
            )
            .unwrap();
        assert_eq!(reply.status, 307);
        let request = server.join().unwrap();
        assert!(request.starts_with("POST /v1/attest HTTP/1.1"), "{request}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let e = Client::with_ca_pem("https://x", b"not pem", Duration::from_secs(1)).unwrap_err();
        assert!(e.0.contains("no certificate"), "{e}");
    }
}
