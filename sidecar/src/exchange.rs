//! The exchange loop: enroll, challenge → evidence → attest, hold the token in memory, refresh
//! it with a DPoP proof at about half its lifetime, attest again when the broker will not
//! refresh (revoked, attestation too old), and back off with jitter while the broker is
//! unreachable — serving the current token until it expires.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use attest_proto::dpop::{self, ProofFor};
use zeroize::Zeroizing;

use crate::backend::Attester;
use crate::broker::{BrokerApi, Issued};
use crate::config::TimingConfig;
use crate::error::Error;
use crate::timing;

/// A token the sidecar holds.
pub struct Held {
    /// The access token.
    pub token: Zeroizing<String>,
    /// When it stops being served (issuance + the broker's `expires_in`, on this host's
    /// monotonic clock).
    pub expires_at: Instant,
    /// The scopes granted.
    pub scope: String,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What the exchange loop and the socket share: the binding key's holder and the tokens.
pub struct Shared {
    /// The evidence backend, which also signs with the binding key.
    pub attester: Mutex<Box<dyn Attester>>,
    /// Tokens by audience (`""`: the policy's default audience).
    pub tokens: RwLock<BTreeMap<String, Held>>,
    /// The broker's base URL.
    pub broker_url: String,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("broker_url", &self.broker_url)
            .finish_non_exhaustive()
    }
}

/// A token as served: the value and its remaining lifetime.
pub struct Current {
    /// The access token.
    pub token: Zeroizing<String>,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// The scopes granted.
    pub scope: String,
}

impl Shared {
    /// New shared state around `attester`.
    pub fn new(attester: Box<dyn Attester>, broker_url: &str) -> Self {
        Shared {
            attester: Mutex::new(attester),
            tokens: RwLock::new(BTreeMap::new()),
            broker_url: broker_url.to_string(),
        }
    }

    /// The unexpired token for `audience`, if one is held.
    pub fn current(&self, audience: &str) -> Option<Current> {
        let tokens = self.tokens.read().unwrap_or_else(PoisonError::into_inner);
        let held = tokens.get(audience)?;
        let left = held.expires_at.checked_duration_since(Instant::now())?;
        (left >= Duration::from_secs(1)).then(|| Current {
            token: held.token.clone(),
            expires_in: left.as_secs(),
            scope: held.scope.clone(),
        })
    }

    /// A DPoP proof for `method url`, bound to `access_token`, signed by the binding key (in
    /// the TPM for the TPM backend). One lock covers the key's JWK and its signature.
    pub fn dpop_proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
    ) -> Result<String, Error> {
        let what = ProofFor {
            method,
            url,
            access_token,
            iat: unix_now(),
        };
        let mut attester = self.attester.lock().unwrap_or_else(PoisonError::into_inner);
        let input = dpop::signing_input(attester.jwk(), &what)?;
        let signature = attester.sign(input.as_bytes())?;
        Ok(dpop::finish(&input, &signature))
    }

    pub(crate) fn store(&self, audience: &str, issued: Issued, received: Instant) {
        let held = Held {
            token: issued.token,
            expires_at: received + Duration::from_secs(issued.expires_in),
            scope: issued.scope,
        };
        self.tokens
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(audience.to_string(), held);
    }

    fn forget_expired(&self) {
        let now = Instant::now();
        self.tokens
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, held| held.expires_at > now);
    }

    fn token_of(&self, audience: &str) -> Option<Zeroizing<String>> {
        self.tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(audience)
            .filter(|h| h.expires_at > Instant::now())
            .map(|h| h.token.clone())
    }
}

/// An audience as logged: the default one has no name.
fn shown(audience: &str) -> &str {
    if audience.is_empty() {
        "(policy default)"
    } else {
        audience
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// What to do next for one audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Attest,
    Refresh,
}

#[derive(Debug)]
struct Slot {
    audience: String,
    step: Step,
    due: Instant,
    failures: u32,
}

/// How a failed broker call is handled.
#[derive(Debug, PartialEq, Eq)]
enum Recovery {
    /// The token cannot be refreshed (revoked, expired, attestation too old): attest anew.
    AttestNow,
    /// The broker does not know this host's attestation key: enroll, then attest.
    Enroll,
    /// Transient (broker down, overloaded, a nonce race) or needs an operator: retry later.
    Retry,
}

fn recovery(step: Step, error: &Error) -> Recovery {
    match (step, error) {
        (Step::Refresh, Error::Refused { status, .. }) if *status == 401 || *status == 403 => {
            Recovery::AttestNow
        }
        (
            Step::Attest,
            Error::Refused {
                status: 403,
                message,
                ..
            },
        ) if message.contains("tpm.chain") || message.contains("tpm.ak") => Recovery::Enroll,
        _ => Recovery::Retry,
    }
}

/// The exchange loop. Runs on its own thread until `stop` receives a message or is dropped.
pub struct Exchange {
    shared: Arc<Shared>,
    broker: BrokerApi,
    timing: TimingConfig,
    slots: Vec<Slot>,
    enrolled: bool,
    enroll_failures: u32,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("slots", &self.slots)
            .finish_non_exhaustive()
    }
}

impl Exchange {
    /// An exchange for `audiences` (empty: the policy's default audience only).
    pub fn new(
        shared: Arc<Shared>,
        broker: BrokerApi,
        timing: TimingConfig,
        audiences: &[String],
    ) -> Self {
        let now = Instant::now();
        let audiences: Vec<String> = if audiences.is_empty() {
            vec![String::new()]
        } else {
            audiences.to_vec()
        };
        Exchange {
            shared,
            broker,
            timing,
            slots: audiences
                .into_iter()
                .map(|audience| Slot {
                    audience,
                    step: Step::Attest,
                    due: now,
                    failures: 0,
                })
                .collect(),
            enrolled: false,
            enroll_failures: 0,
        }
    }

    /// Runs until told to stop.
    pub fn run(mut self, stop: &Receiver<()>) {
        loop {
            self.shared.forget_expired();
            let next = self.next_due();
            let wait = next.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                match stop.recv_timeout(wait) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
                continue;
            }
            if !self.enrolled {
                self.enroll();
                continue;
            }
            if let Some(index) = self.slots.iter().position(|s| s.due <= Instant::now()) {
                self.step(index);
            }
        }
    }

    fn next_due(&self) -> Instant {
        let soonest = self.slots.iter().map(|s| s.due).min();
        let now = Instant::now();
        // Wake at least once a second to drop expired tokens promptly.
        soonest.unwrap_or(now).min(now + Duration::from_secs(1))
    }

    fn enroll(&mut self) {
        let result = {
            let mut attester = self
                .shared
                .attester
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if attester.needs_enrollment() {
                attester.enroll(&self.broker).map(|()| true)
            } else {
                Ok(false)
            }
        };
        match result {
            Ok(enrolled) => {
                self.enrolled = true;
                self.enroll_failures = 0;
                if enrolled {
                    tracing::info!(broker = %self.broker.url(), "attestation key enrolled with the broker");
                }
            }
            Err(e) => {
                self.enroll_failures = self.enroll_failures.saturating_add(1);
                let wait =
                    timing::backoff(self.enroll_failures, &self.timing, timing::unit_random());
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "enrollment failed");
                let due = Instant::now() + wait;
                for slot in &mut self.slots {
                    slot.due = slot.due.max(due);
                }
            }
        }
    }

    fn step(&mut self, index: usize) {
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        let (audience, step) = (slot.audience.clone(), slot.step);
        let started = Instant::now();
        let result = match step {
            Step::Attest => self.attest(&audience),
            Step::Refresh => self.refresh(&audience),
        };
        let timing = self.timing.clone();
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        match result {
            Ok(issued) => {
                let lifetime = Duration::from_secs(issued.expires_in);
                tracing::info!(
                    audience = %shown(&audience),
                    step = ?step,
                    expires_in = issued.expires_in,
                    scope = %issued.scope,
                    "token {}",
                    if step == Step::Attest { "issued" } else { "refreshed" }
                );
                self.shared.store(&audience, issued, started);
                slot.step = Step::Refresh;
                slot.failures = 0;
                slot.due =
                    started + timing::refresh_after(lifetime, &timing, timing::unit_random());
            }
            Err(error) => match recovery(step, &error) {
                Recovery::AttestNow => {
                    tracing::warn!(audience = %shown(&audience), error = %error, "refresh refused; attesting again");
                    slot.step = Step::Attest;
                    slot.due = Instant::now();
                }
                Recovery::Enroll => {
                    tracing::warn!(audience = %shown(&audience), error = %error, "attestation key unknown to the broker; enrolling again");
                    self.enrolled = false;
                    slot.failures = slot.failures.saturating_add(1);
                    // Once at once; if attesting keeps failing this way after enrolling again,
                    // back off like any other failure rather than loop on the broker and TPM.
                    slot.due = if slot.failures <= 1 {
                        Instant::now()
                    } else {
                        Instant::now()
                            + timing::backoff(slot.failures - 1, &timing, timing::unit_random())
                    };
                }
                Recovery::Retry => {
                    slot.failures = slot.failures.saturating_add(1);
                    let wait = timing::backoff(slot.failures, &timing, timing::unit_random());
                    let serving = self.shared.token_of(&audience).is_some();
                    tracing::warn!(
                        audience = %shown(&audience),
                        step = ?step,
                        error = %error,
                        failures = slot.failures,
                        retry_in_ms = wait.as_millis() as u64,
                        serving_current_token = serving,
                        "broker call failed"
                    );
                    slot.due = Instant::now() + wait;
                }
            },
        }
    }

    fn attest(&mut self, audience: &str) -> Result<Issued, Error> {
        let nonce = self.broker.challenge()?;
        let (evidence, jwk) = {
            let mut attester = self
                .shared
                .attester
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            (attester.evidence(&nonce)?, attester.jwk().clone())
        };
        let audience = (!audience.is_empty()).then_some(audience);
        self.broker.attest(&nonce, &jwk, evidence, audience)
    }

    fn refresh(&mut self, audience: &str) -> Result<Issued, Error> {
        let Some(token) = self.shared.token_of(audience) else {
            // Expired while the broker was away: only a new attestation helps.
            return Err(Error::Refused {
                endpoint: "/v1/token/refresh",
                status: 401,
                code: "token.expired".into(),
                message: "the held token expired before it could be refreshed".into(),
            });
        };
        let url = self.broker.refresh_url();
        let proof = self.shared.dpop_proof("POST", &url, Some(&token))?;
        self.broker.refresh(&token, &proof)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;
    use attest_proto::crypto::MemoryKey;
    use attest_proto::EcJwk;
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An attester that must enroll, counts its enrollments, and signs in memory.
    #[derive(Debug)]
    struct Counting {
        key: MemoryKey,
        jwk: EcJwk,
        enrollments: Arc<AtomicUsize>,
    }

    impl Attester for Counting {
        fn kind(&self) -> &'static str {
            "test"
        }
        fn jwk(&self) -> &EcJwk {
            &self.jwk
        }
        fn needs_enrollment(&self) -> bool {
            true
        }
        fn enroll(&mut self, _broker: &BrokerApi) -> Result<(), Error> {
            self.enrollments.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn evidence(&mut self, _nonce: &[u8]) -> Result<serde_json::Value, Error> {
            Ok(serde_json::json!({"type": "tpm"}))
        }
        fn sign(&mut self, message: &[u8]) -> Result<Vec<u8>, Error> {
            Ok(self.key.sign(message)?)
        }
    }

    /// A broker on loopback that hands out nonces and refuses every attestation with
    /// `tpm.chain`; returns its URL and how many attestations it saw.
    fn refusing_broker() -> (String, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let attests = Arc::new(AtomicUsize::new(0));
        let seen = attests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = vec![0u8; 16 * 1024];
                let n = stream.read(&mut buf).unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = if request.starts_with("POST /v1/challenge") {
                    (
                        "200 OK",
                        format!(
                            r#"{{"nonce":"{}","expires_in":60}}"#,
                            attest_proto::b64(&[7; 32])
                        ),
                    )
                } else {
                    seen.fetch_add(1, Ordering::SeqCst);
                    ("403 Forbidden", r#"{"error":{"code":"policy.denied","message":"no","reasons":["tpm.chain"]}}"#.to_string())
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (url, attests)
    }

    #[test]
    fn an_attestation_key_the_broker_keeps_refusing_is_not_re_enrolled_in_a_loop() {
        let (url, attests) = refusing_broker();
        let key = MemoryKey::generate().unwrap();
        let jwk = EcJwk::from_point(key.public_point()).unwrap();
        let enrollments = Arc::new(AtomicUsize::new(0));
        let attester = Counting {
            key,
            jwk,
            enrollments: enrollments.clone(),
        };
        let shared = Arc::new(Shared::new(Box::new(attester), &url));
        let config = BrokerConfig {
            url: url.clone(),
            ca_file: None,
            audiences: Vec::new(),
            request_timeout_secs: 5,
        };
        let secret = crate::secret::BootstrapSecret::for_tests("s");
        let broker = BrokerApi::new(&config, secret, Duration::from_secs(5)).unwrap();
        let timing = TimingConfig {
            backoff_initial_secs: 0.2,
            backoff_max_secs: 0.4,
            ..TimingConfig::default()
        };
        let exchange = Exchange::new(shared.clone(), broker, timing, &[]);
        let (stop, stopped) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || exchange.run(&stopped));
        std::thread::sleep(Duration::from_secs(2));
        drop(stop);
        worker.join().unwrap();
        let (e, a) = (
            enrollments.load(Ordering::SeqCst),
            attests.load(Ordering::SeqCst),
        );
        // Backoff ≤ 0.4 s: at most ~2 s / 0.1 s attempts even at the shortest draws, and
        // far fewer than a loop without backoff (thousands).
        assert!(e >= 2, "enrolled again after the first refusal: {e}");
        assert!(a <= 25 && e <= a + 1, "attests {a}, enrollments {e}");
        assert!(shared.current("").is_none());
    }

    fn refused(status: u16, message: &str) -> Error {
        Error::Refused {
            endpoint: "/v1/x",
            status,
            code: "c".into(),
            message: message.into(),
        }
    }

    #[test]
    fn failures_map_to_the_right_recovery() {
        assert_eq!(
            recovery(Step::Refresh, &refused(401, "")),
            Recovery::AttestNow
        );
        assert_eq!(
            recovery(Step::Refresh, &refused(403, "")),
            Recovery::AttestNow
        );
        assert_eq!(recovery(Step::Refresh, &refused(503, "")), Recovery::Retry);
        assert_eq!(
            recovery(Step::Refresh, &Error::Transport("down".into())),
            Recovery::Retry
        );
        assert_eq!(
            recovery(Step::Attest, &refused(403, "(reasons: [\"tpm.chain\"])")),
            Recovery::Enroll
        );
        assert_eq!(
            recovery(Step::Attest, &refused(403, "policy")),
            Recovery::Retry
        );
        assert_eq!(recovery(Step::Attest, &refused(401, "")), Recovery::Retry);
        assert_eq!(recovery(Step::Attest, &refused(409, "")), Recovery::Retry);
    }
}
