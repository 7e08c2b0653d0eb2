//! `attest-broker serve`: start-up (config, data directory, keys, store, trust anchors),
//! the listener, background upkeep and graceful shutdown.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use attest_verifiers::nitro::{NitroTrustAnchors, NitroVerifier};
use attest_verifiers::snp::{AmdTrustAnchors, SnpVerifier};
use tokio::net::TcpListener;

use crate::audit::NewAuditEntry;
use crate::config::Config;
use crate::crypto;
use crate::jose;
use crate::keys::{self, KeyRing};
use crate::listener::{effective_max_connections, CappedAcceptor};
use crate::metrics::Metrics;
use crate::service::{self, AppState, Settings};
use crate::store::sqlite::SqliteStore;
use crate::store::{AdminCredential, Store};

/// Name of the file the first global admin credential is written to (once, mode 0600).
pub const ADMIN_CREDENTIAL_FILE: &str = "admin-credential";
/// Directory (under the data dir) of the simulated AMD roots in `--dev` mode.
pub const DEV_SIMULATED_ROOTS: &str = "simulated-amd";

/// Runs the service until SIGINT/SIGTERM.
pub async fn run(config: Config, dev: bool) -> Result<(), String> {
    let data_dir = config.storage.data_dir.clone();
    keys::ensure_private_dir(&data_dir).map_err(|e| e.to_string())?;
    let key_dir = data_dir.join("keys");
    keys::ensure_private_dir(&key_dir).map_err(|e| e.to_string())?;
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&data_dir.join("broker.db"), config.storage.full_sync)
            .map_err(|e| format!("opening the database: {e}"))?,
    );
    let now = service::now();
    let hmac_key = keys::load_or_create_hmac_key(&key_dir).map_err(|e| e.to_string())?;
    let keyring =
        KeyRing::load_or_create(&key_dir, store.as_ref(), now).map_err(|e| e.to_string())?;
    write_first_admin_credential(&data_dir, store.as_ref(), &hmac_key, now)?;

    let mut anchors = AmdTrustAnchors::builtin();
    let mut warning = None;
    let mut extra_roots = config.trust.extra_amd_roots.clone();
    if dev {
        extra_roots.push(dev_simulated_roots(&data_dir)?);
    }
    for path in &extra_roots {
        let bundle = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        anchors
            .add_roots(&bundle)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let mut nitro_anchors = NitroTrustAnchors::builtin();
    for path in &config.trust.extra_nitro_roots {
        let bundle = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        nitro_anchors
            .add_roots(&bundle)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        extra_roots.push(path.clone());
    }
    let mut tpm_ek_roots = Vec::new();
    for path in &config.trust.tpm_ek_roots {
        let bundle = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        tpm_ek_roots.extend(
            attest_verifiers::x509::parse_bundle(&bundle)
                .map_err(|e| format!("{}: {e}", path.display()))?,
        );
    }
    if !extra_roots.is_empty() {
        let text =
            format!(
            "SIMULATED HARDWARE ROOTS ARE TRUSTED ({}): evidence from simulated hosts can pass \
             policies with allow_simulated = true. Never run this in production.",
            extra_roots.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
        tracing::warn!("{text}");
        warning = Some(text);
    }

    config.limits.check()?;
    let listener = TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| format!("binding {}: {e}", config.server.listen))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let tls = match (&config.server.tls_cert, &config.server.tls_key) {
        (Some(cert), Some(key)) => Some(tls_config(cert, key).await?),
        (None, None) => None,
        _ => return Err("[server] tls_cert and tls_key go together".into()),
    };
    let issuer = config.issuer(bound);
    let settings = Settings {
        issuer: issuer.clone(),
        nonce_ttl_secs: i64::try_from(config.challenge.ttl_secs).unwrap_or(60),
        warning,
        max_body_bytes: config.limits.max_body_bytes,
        request_timeout: Duration::from_secs(config.limits.request_timeout_secs),
        client_timeout: Duration::from_secs(config.limits.client_timeout_secs),
        max_concurrent_requests: config.limits.max_concurrent_requests,
        inline_store: !config.storage.full_sync,
    };
    let metrics = Arc::new(Metrics::default());
    let issues = service::commit::IssueQueue::start(store.clone())
        .map_err(|e| format!("cannot start the store writer: {e}"))?;
    let state = AppState {
        store: store.clone(),
        issues: Arc::new(issues),
        snp: Arc::new(SnpVerifier::new(anchors)),
        nitro: Arc::new(NitroVerifier::new(nitro_anchors)),
        tpm_ek_roots: Arc::new(tpm_ek_roots),
        keys: Arc::new(keyring),
        hmac_key: Arc::new(hmac_key),
        settings: Arc::new(settings),
        metrics: metrics.clone(),
        policies: Arc::default(),
        challenges: Arc::default(),
    };
    tokio::spawn(upkeep(state.clone()));
    tokio::spawn(audit_challenges(state.clone()));
    let at_exit = state.clone();
    let app = service::router(state);
    let signals = ShutdownSignals::install();
    tracing::info!(%issuer, listen = %bound, dev, "attest-broker serving");
    // Machine-readable readiness line for scripts and tests (stdout, one line).
    println!(
        "{}",
        serde_json::json!({"listening": bound.to_string(), "issuer": issuer})
    );

    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let handle = axum_server::Handle::new();
    let on_signal = handle.clone();
    tokio::spawn(async move {
        shutdown_signal(signals, grace).await;
        on_signal.graceful_shutdown(Some(grace));
    });
    let header_timeout = Duration::from_secs(config.limits.client_timeout_secs);
    let capped = CappedAcceptor::new(
        effective_max_connections(config.limits.max_connections),
        config.limits.max_connections_per_source,
        metrics,
    );
    let std_listener = listener.into_std().map_err(|e| e.to_string())?;
    let app = app.into_make_service();
    match tls {
        // HTTP/1.1 only, plain or TLS: its header timeout also closes idle connections,
        // which hyper's HTTP/2 server has no equivalent for.
        None => with_limits(axum_server::from_tcp(std_listener), header_timeout)?
            .acceptor(capped)
            .http1_only()
            .handle(handle)
            .serve(app)
            .await
            .map_err(|e| format!("server: {e}"))?,
        Some(tls) => with_limits(
            axum_server::from_tcp_rustls(std_listener, tls),
            header_timeout,
        )?
        .map(|rustls| rustls.handshake_timeout(header_timeout).acceptor(capped))
        .http1_only()
        .handle(handle)
        .serve(app)
        .await
        .map_err(|e| format!("server: {e}"))?,
    }
    flush_challenges(&at_exit).await;
    tracing::info!("attest-broker stopped");
    Ok(())
}

/// Connection-level limits shared by the plain and the TLS server: a connection that does not
/// send a request's headers within `header_timeout` (or stays idle that long between
/// requests) is closed, and so is one whose first request does not arrive in that time.
fn with_limits<A>(
    server: std::io::Result<axum_server::Server<std::net::SocketAddr, A>>,
    header_timeout: Duration,
) -> Result<axum_server::Server<std::net::SocketAddr, A>, String> {
    let mut server = server.map_err(|e| format!("server: {e}"))?;
    server
        .http_builder()
        .http1()
        .header_read_timeout(Some(header_timeout))
        .max_buf_size(MAX_HEADER_BYTES);
    Ok(server
        .first_request_timeout(header_timeout)
        .accept_error_handler(|peer, e| match peer {
            // accept() itself failed (e.g. out of file descriptors): the operator must know.
            None => tracing::warn!(error = %e, "cannot accept connections"),
            // One connection refused or failed its TLS handshake: routine, and a flood of
            // them must not flood the log.
            Some(peer) => tracing::debug!(%peer, error = %e, "connection closed on arrival"),
        }))
}

/// The largest request head (request line and headers) a connection may send: 431 beyond.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Every few seconds: the count of challenges issued goes into the audit log.
async fn audit_challenges(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(
        service::challenges::FLUSH_INTERVAL_SECS,
    ));
    loop {
        tick.tick().await;
        flush_challenges(&state).await;
    }
}

async fn flush_challenges(state: &AppState) {
    let (store, count) = (state.store.clone(), state.challenges.clone());
    let now = service::now();
    let flushed = tokio::task::spawn_blocking(move || count.flush(store.as_ref(), now))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    if let Err(e) = flushed {
        tracing::warn!(error = %e, "cannot audit the challenge count; retrying");
    }
}

/// rustls (aws-lc-rs provider) from a PEM chain and a PEM private key. The key file must be
/// readable by its owner only.
async fn tls_config(
    cert: &Path,
    key: &Path,
) -> Result<axum_server::tls_rustls::RustlsConfig, String> {
    let key_pem = keys::read_private_file(key).map_err(|e| e.to_string())?;
    let cert_pem = std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
    let config = axum_server::tls_rustls::RustlsConfig::from_pem(cert_pem, key_pem.to_vec())
        .await
        .map_err(|e| {
            format!(
                "TLS certificate {} / key {}: {e}",
                cert.display(),
                key.display()
            )
        })?;
    // The server speaks HTTP/1.1 only; offering h2 by ALPN would break clients that take it.
    let mut http1 = (*config.get_inner()).clone();
    http1.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.reload_from_config(Arc::new(http1));
    Ok(config)
}

/// SIGINT and SIGTERM handlers, installed before the broker says it is listening, so a
/// signal that arrives as soon as it is up still shuts it down gracefully.
struct ShutdownSignals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let install = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, signal = name, "cannot listen for the signal");
                None
            }
        };
        ShutdownSignals {
            interrupt: install(SignalKind::interrupt(), "SIGINT"),
            terminate: install(SignalKind::terminate(), "SIGTERM"),
        }
    }
}

/// Waits for SIGINT or SIGTERM, then arms a hard deadline for in-flight requests.
async fn shutdown_signal(signals: ShutdownSignals, grace: Duration) {
    async fn recv(signal: Option<tokio::signal::unix::Signal>) {
        match signal {
            Some(mut s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    tokio::select! {
        _ = recv(signals.interrupt) => {},
        _ = recv(signals.terminate) => {},
    }
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: finishing in-flight requests"
    );
    // The server closes what is still open when the grace period ends, and the broker then
    // audits its last challenge count; this is the backstop if that does not finish.
    tokio::spawn(async move {
        tokio::time::sleep(grace + Duration::from_secs(2)).await;
        tracing::warn!("grace period over; exiting");
        std::process::exit(0);
    });
}

/// Every minute: drop records of expired single-use values, pick up key changes from other replicas.
async fn upkeep(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let store = state.store.clone();
        let keys = state.keys.clone();
        let now = service::now();
        let result = tokio::task::spawn_blocking(move || {
            store.sweep(now).map_err(|e| e.to_string())?;
            keys.reload(store.as_ref()).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        match result {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(error = %e, "upkeep failed");
            }
        }
    }
}

/// On first start, creates a global admin credential and writes it to
/// `<data_dir>/admin-credential` (mode 0600). It is never written again or logged.
fn write_first_admin_credential(
    data_dir: &Path,
    store: &dyn Store,
    hmac_key: &[u8],
    now: i64,
) -> Result<(), String> {
    let path = data_dir.join(ADMIN_CREDENTIAL_FILE);
    if path.exists() {
        return Ok(());
    }
    let id = hex::encode(crypto::random::<8>().map_err(|e| e.to_string())?);
    let random = jose::b64(&crypto::random::<32>().map_err(|e| e.to_string())?);
    let secret = zeroize::Zeroizing::new(format!("aba_{id}.{random}"));
    let cred = AdminCredential {
        id: id.clone(),
        tenant: None,
        hash: crypto::hmac_sha256(hmac_key, secret.as_bytes()),
        revoked_at: None,
    };
    // Stored first, then written: a failure between the two leaves an unknown (unusable)
    // credential and no file, so the next start makes a new one instead of locking admins out.
    let audit = NewAuditEntry::new(now, None, "broker", "admin.credential.create", &id)
        .details(serde_json::json!({"scope": "global", "written_to": path.display().to_string()}));
    store
        .add_admin_credential(&cred, &audit)
        .map_err(|e| format!("storing the first admin credential: {e}"))?;
    keys::write_private_file(&path, format!("{}\n", secret.as_str()).as_bytes())
        .map_err(|e| e.to_string())?;
    tracing::info!(file = %path.display(), "wrote the global admin credential (shown once)");
    Ok(())
}

/// `--dev`: a simulated AMD Milan hierarchy generated once and kept in the data directory, so
/// simulated hosts (`attest-broker sim-host`) can keep issuing VCEKs under it.
fn dev_simulated_roots(data_dir: &Path) -> Result<std::path::PathBuf, String> {
    use attest_fixtures::amd::{AmdRoots, Generation};
    let dir = data_dir.join(DEV_SIMULATED_ROOTS);
    if !dir.join("roots.pem").exists() {
        tracing::info!("generating simulated AMD roots for --dev (RSA-4096; a few seconds)");
        AmdRoots::generate(Generation::Milan)
            .and_then(|r| r.save(&dir))
            .map_err(|e| format!("simulated roots: {e}"))?;
    }
    Ok(dir.join("roots.pem"))
}
