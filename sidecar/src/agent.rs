//! The agent's side of the socket: a small blocking client an agent links to fetch its token
//! and DPoP proofs from the sidecar (see `examples/agent.rs`). The token is returned in a
//! zeroizing string; keep it in memory and ask again rather than storing it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use attest_proto::client::percent_encode;
use serde_json::{json, Value};
use zeroize::Zeroizing;

/// Largest answer read from the sidecar.
const MAX_RESPONSE: u64 = 64 * 1024;

/// Why a request to the sidecar failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The socket could not be reached (not running, or no permission on the socket file).
    #[error("sidecar socket {path}: {source}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The answer was not the sidecar's HTTP/JSON.
    #[error("sidecar answer: {0}")]
    Protocol(String),
    /// The sidecar refused: `caller.forbidden`, `token.unavailable`, `audience.unknown`, ….
    #[error("sidecar refused: HTTP {status} {code}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The stable error code.
        code: String,
    },
}

/// A token from the sidecar.
pub struct Token {
    /// The access token, to send as `Authorization: DPoP <token>`.
    pub access_token: Zeroizing<String>,
    /// Seconds it remains valid.
    pub expires_in: u64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("access_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// A token with a DPoP proof for one request.
#[derive(Debug)]
pub struct Proofed {
    /// The token the proof is bound to (`ath`).
    pub token: Token,
    /// The proof, to send as the `DPoP` header.
    pub dpop: String,
}

/// A client of one sidecar socket.
#[derive(Debug, Clone)]
pub struct AgentClient {
    path: PathBuf,
    timeout: Duration,
}

impl AgentClient {
    /// A client of the sidecar at `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        AgentClient {
            path: path.as_ref().to_path_buf(),
            timeout: Duration::from_secs(10),
        }
    }

    /// The current token (for `audience`, or the sidecar's default).
    pub fn token(&self, audience: Option<&str>) -> Result<Token, AgentError> {
        let target = match audience {
            Some(aud) => format!("/v1/token?aud={}", percent_encode(aud)),
            None => "/v1/token".to_string(),
        };
        let body = self.request("GET", &target, None)?;
        token_of(&body)
    }

    /// The current token and a DPoP proof for `method url`, signed by the binding key.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        audience: Option<&str>,
    ) -> Result<Proofed, AgentError> {
        let mut request = json!({"method": method, "url": url});
        if let (Some(aud), Some(map)) = (audience, request.as_object_mut()) {
            map.insert("aud".into(), aud.into());
        }
        let body = self.request("POST", "/v1/dpop", Some(&request))?;
        let dpop = body
            .get("dpop")
            .and_then(Value::as_str)
            .ok_or_else(|| AgentError::Protocol("no dpop in the answer".into()))?
            .to_string();
        Ok(Proofed {
            token: token_of(&body)?,
            dpop,
        })
    }

    fn request(
        &self,
        method: &str,
        target: &str,
        body: Option<&Value>,
    ) -> Result<Value, AgentError> {
        let connect = |source| AgentError::Connect {
            path: self.path.clone(),
            source,
        };
        let mut stream = UnixStream::connect(&self.path).map_err(connect)?;
        stream
            .set_read_timeout(Some(self.timeout))
            .and_then(|()| stream.set_write_timeout(Some(self.timeout)))
            .map_err(connect)?;
        let payload = body.map(Value::to_string).unwrap_or_default();
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
            payload.len()
        );
        if body.is_some() {
            head.push_str("Content-Type: application/json\r\n");
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(payload.as_bytes()))
            .map_err(connect)?;
        let mut raw = Zeroizing::new(Vec::new());
        stream
            .take(MAX_RESPONSE + 1)
            .read_to_end(&mut raw)
            .map_err(connect)?;
        if raw.len() as u64 > MAX_RESPONSE {
            return Err(AgentError::Protocol("answer too large".into()));
        }
        let (status, body) = parse_response(&raw)?;
        let value: Value = serde_json::from_slice(&body)
            .map_err(|_| AgentError::Protocol(format!("HTTP {status}, body is not JSON")))?;
        if !(200..300).contains(&status) {
            let code = value
                .pointer("/error/code")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string();
            return Err(AgentError::Refused { status, code });
        }
        Ok(value)
    }
}

fn token_of(body: &Value) -> Result<Token, AgentError> {
    let access_token = body
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or_else(|| AgentError::Protocol("no access_token in the answer".into()))?;
    Ok(Token {
        access_token: Zeroizing::new(access_token.to_string()),
        expires_in: body.get("expires_in").and_then(Value::as_u64).unwrap_or(0),
    })
}

/// Splits an HTTP/1.1 response into status and (de-chunked) body.
fn parse_response(raw: &[u8]) -> Result<(u16, Zeroizing<Vec<u8>>), AgentError> {
    let bad = |m: &str| AgentError::Protocol(m.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let (head, rest) = raw.split_at(split);
    let body = rest.get(4..).unwrap_or_default();
    let head = std::str::from_utf8(head).map_err(|_| bad("headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| {
            l.strip_prefix("HTTP/1.1 ")
                .or_else(|| l.strip_prefix("HTTP/1.0 "))
        })
        .and_then(|l| l.get(..3))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("no status line"))?;
    let chunked = lines.any(|l| {
        let lower = l.to_ascii_lowercase();
        lower.starts_with("transfer-encoding:") && lower.contains("chunked")
    });
    if !chunked {
        return Ok((status, Zeroizing::new(body.to_vec())));
    }
    let mut out = Zeroizing::new(Vec::new());
    let mut rest = body;
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("truncated chunk"))?;
        let (size_line, after) = rest.split_at(line_end);
        let size_text = std::str::from_utf8(size_line).map_err(|_| bad("chunk size"))?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad("chunk size"))?;
        let after = after.get(2..).unwrap_or_default();
        if size == 0 {
            return Ok((status, out));
        }
        let chunk = after.get(..size).ok_or_else(|| bad("truncated chunk"))?;
        out.extend_from_slice(chunk);
        rest = after
            .get(size + 2..)
            .ok_or_else(|| bad("truncated chunk"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_plain_and_chunked() {
        let (s, b) = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((s, b.as_slice()), (200, b"{}".as_slice()));
        let chunked =
            b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        let (s, b) = parse_response(chunked).unwrap();
        assert_eq!((s, b.as_slice()), (403, b"{\"a\":1}".as_slice()));
        for bad in [
            &b"HTTP/1.1 200 OK\r\n"[..],
            b"garbage\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffff\r\nab",
        ] {
            assert!(parse_response(bad).is_err());
        }
    }

    proptest::proptest! {
        #[test]
        fn any_answer_parses_or_fails_cleanly(raw in proptest::collection::vec(0u8.., 0..400)) {
            let _ = parse_response(&raw);
            let mut with_head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            with_head.extend_from_slice(&raw);
            let _ = parse_response(&with_head);
        }
    }

    #[test]
    fn audiences_are_percent_encoded() {
        assert_eq!(percent_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
