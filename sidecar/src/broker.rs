//! The broker's attestation API as the sidecar calls it: challenge, attest, refresh and TPM
//! AK enrollment. Holds the bootstrap secret, which leaves this module only as the
//! `Authorization: Bootstrap` header over the connection to the configured broker.

use std::time::Duration;

use attest_proto::client::{Body, Client, Reply};
use attest_proto::{b64, b64_decode, EcJwk};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::config::BrokerConfig;
use crate::error::Error;
use crate::secret::BootstrapSecret;

/// A token the broker issued.
pub struct Issued {
    /// The access token (a JWT). Kept in memory only.
    pub token: Zeroizing<String>,
    /// Lifetime in seconds, as the broker stated it.
    pub expires_in: u64,
    /// The scopes granted.
    pub scope: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// The broker, as seen from one agent host.
pub struct BrokerApi {
    client: Client,
    secret: BootstrapSecret,
}

impl std::fmt::Debug for BrokerApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerApi")
            .field("url", &self.client.base())
            .finish_non_exhaustive()
    }
}

impl BrokerApi {
    /// A client for the configured broker (HTTPS trusting only `ca_file`).
    pub fn new(
        config: &BrokerConfig,
        secret: BootstrapSecret,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let client = match &config.ca_file {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| Error::Transport(format!("{}: {e}", path.display())))?;
                Client::with_ca_pem(&config.url, &pem, timeout)
                    .map_err(|e| Error::Transport(format!("{}: {e}", path.display())))?
            }
            None => Client::with_timeout(&config.url, timeout),
        };
        Ok(BrokerApi { client, secret })
    }

    /// The broker's base URL.
    pub fn url(&self) -> &str {
        self.client.base()
    }

    /// `POST /v1/challenge` → a fresh nonce.
    pub fn challenge(&self) -> Result<Vec<u8>, Error> {
        let reply = self.send("/v1/challenge", &[], Body::Empty)?;
        let nonce = reply
            .body
            .get("nonce")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Transport("challenge answer has no nonce".into()))?;
        b64_decode(nonce).map_err(|_| Error::Transport("challenge nonce is not base64url".into()))
    }

    /// `POST /v1/attest`: the bootstrap secret, the nonce, the binding key and the evidence.
    pub fn attest(
        &self,
        nonce: &[u8],
        jwk: &EcJwk,
        evidence: Value,
        audience: Option<&str>,
    ) -> Result<Issued, Error> {
        let mut body = json!({"nonce": b64(nonce), "binding_key": jwk, "evidence": evidence});
        if let (Some(aud), Some(map)) = (audience, body.as_object_mut()) {
            map.insert("audience".into(), aud.into());
        }
        let auth = self.bootstrap_header();
        let reply = self.send(
            "/v1/attest",
            &[("authorization", auth.as_str())],
            Body::Json(body),
        )?;
        issued(reply)
    }

    /// `POST /v1/token/refresh` with the current token and a DPoP proof for [`Self::refresh_url`].
    pub fn refresh(&self, token: &str, proof: &str) -> Result<Issued, Error> {
        let auth = Zeroizing::new(format!("DPoP {token}"));
        let reply = self.send(
            "/v1/token/refresh",
            &[("authorization", auth.as_str()), ("dpop", proof)],
            Body::Empty,
        )?;
        issued(reply)
    }

    /// The URL refresh proofs name (`htu`).
    pub fn refresh_url(&self) -> String {
        format!("{}/v1/token/refresh", self.client.base())
    }

    /// `POST /v1/tpm/enroll` → the credential challenge.
    pub fn tpm_enroll(&self, body: Value) -> Result<Value, Error> {
        let auth = self.bootstrap_header();
        Ok(self
            .send(
                "/v1/tpm/enroll",
                &[("authorization", auth.as_str())],
                Body::Json(body),
            )?
            .body)
    }

    /// `POST /v1/tpm/activate` with the activated credential.
    pub fn tpm_activate(&self, body: Value) -> Result<Value, Error> {
        let auth = self.bootstrap_header();
        Ok(self
            .send(
                "/v1/tpm/activate",
                &[("authorization", auth.as_str())],
                Body::Json(body),
            )?
            .body)
    }

    fn bootstrap_header(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("Bootstrap {}", self.secret.expose()))
    }

    /// Sends a POST; a non-2xx answer becomes [`Error::Refused`] with the broker's code.
    fn send(
        &self,
        endpoint: &'static str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Result<Reply, Error> {
        let reply = self
            .client
            .send("POST", endpoint, headers, body)
            .map_err(|e| Error::Transport(e.0))?;
        if reply.ok() {
            return Ok(reply);
        }
        let code = reply.code().unwrap_or("unknown").to_string();
        let error = reply.body.get("error");
        let mut message = error
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if let Some(reasons) = error.and_then(|e| e.get("reasons")) {
            message = format!("{message} (reasons: {reasons})");
        }
        Err(Error::Refused {
            endpoint,
            status: reply.status,
            code,
            message,
        })
    }
}

/// Longest token lifetime accepted from a broker (it issues at most an hour); beyond it the
/// answer is refused rather than held, or overflowing the clock arithmetic.
const MAX_TOKEN_LIFETIME_SECS: u64 = 24 * 3600;

fn issued(reply: Reply) -> Result<Issued, Error> {
    let token = reply
        .body
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Transport("token answer has no access_token".into()))?;
    let expires_in = reply
        .body
        .get("expires_in")
        .and_then(Value::as_u64)
        .filter(|s| (1..=MAX_TOKEN_LIFETIME_SECS).contains(s))
        .ok_or_else(|| {
            Error::Transport(format!(
                "token answer has no expires_in between 1 and {MAX_TOKEN_LIFETIME_SECS} s"
            ))
        })?;
    Ok(Issued {
        token: Zeroizing::new(token.to_string()),
        expires_in,
        scope: reply
            .body
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(expires_in: Value) -> Result<Issued, Error> {
        issued(Reply {
            status: 200,
            body: json!({"access_token": "t", "expires_in": expires_in, "scope": "s"}),
        })
    }

    #[test]
    fn token_lifetimes_outside_one_second_to_a_day_are_refused() {
        assert_eq!(answer(json!(900)).unwrap().expires_in, 900);
        assert_eq!(answer(json!(86_400)).unwrap().expires_in, 86_400);
        for bad in [
            json!(0),
            json!(86_401),
            json!(u64::MAX),
            json!(-5),
            json!(1.5),
            json!("900"),
        ] {
            assert!(
                matches!(answer(bad.clone()), Err(Error::Transport(_))),
                "{bad}"
            );
        }
    }
}
