//! `attest-sidecar run`: loads the secret, opens the hardware, binds the socket, then runs the
//! exchange loop on its own thread and the socket server on a small tokio runtime until
//! SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::sync::{mpsc, Arc};

use crate::backend;
use crate::broker::BrokerApi;
use crate::config::{BackendKind, Config};
use crate::error::Error;
use crate::exchange::{Exchange, Shared};
use crate::secret;
use crate::socket::{self, SocketState};

/// Runs the sidecar until it is told to stop. Errors before the socket is up (configuration,
/// secret, hardware) are returned; after that, broker trouble is retried, never fatal.
pub fn run(config: &Config, allow_simulated_hardware: bool) -> Result<(), Error> {
    let source = config.bootstrap.source()?;
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let secret = secret::load(&source, credentials.as_deref())?;
    if config.evidence.backend == BackendKind::Fixture && allow_simulated_hardware {
        tracing::warn!(
            "SIMULATED HARDWARE: evidence comes from attest-fixtures, not a TEE; \
             only a broker that trusts simulated roots accepts it (CI and drills only)"
        );
    }
    let attester = backend::open(&config.evidence, allow_simulated_hardware)?;
    let kind = attester.kind();
    let jkt = attester.jwk().jkt()?;
    let broker = BrokerApi::new(&config.broker, secret, config.request_timeout())?;
    let listener = socket::bind(&config.socket)?;
    let shared = Arc::new(Shared::new(attester, broker.url()));
    tracing::info!(
        backend = kind,
        jkt = %jkt,
        broker = %broker.url(),
        socket = %config.socket.path.display(),
        "attest-sidecar started"
    );

    let (stop, stopped) = mpsc::channel::<()>();
    let exchange = Exchange::new(
        shared.clone(),
        broker,
        config.timing.clone(),
        &config.broker.audiences,
    );
    let worker = std::thread::Builder::new()
        .name("exchange".into())
        .spawn(move || exchange.run(&stopped))
        .map_err(|e| Error::Crypto(format!("cannot start the exchange thread: {e}")))?;

    let state = SocketState::new(
        shared,
        &config.socket.allowed_uids,
        &config.broker.audiences,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Socket {
            path: config.socket.path.clone(),
            message: format!("runtime: {e}"),
        })?;
    let served = runtime.block_on(socket::serve(
        listener,
        &config.socket.path,
        state,
        shutdown_signal(),
    ));
    tracing::info!("attest-sidecar stopping");
    drop(stop);
    let _ = worker.join();
    served
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
