//! Connection admission: at most `[limits] max_connections` connections are open at once. One
//! more is closed as soon as it is accepted (the client sees the connection end, at once),
//! so a client that opens connections and sends nothing cannot exhaust the process's file
//! descriptors; hyper's header timeout closes such connections after `client_timeout_secs`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

/// File descriptors the broker keeps for itself beyond its connections (database, WAL, lock
/// file, key files, the listener, the runtime).
const RESERVED_FDS: u64 = 64;

/// Hands out one slot per open connection; see the module docs.
#[derive(Clone)]
pub struct CappedAcceptor {
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl CappedAcceptor {
    /// At most `max` connections at once.
    pub fn new(max: usize, metrics: Arc<Metrics>) -> Self {
        CappedAcceptor {
            slots: Arc::new(Semaphore::new(max)),
            metrics,
        }
    }
}

impl<S> Accept<TcpStream, S> for CappedAcceptor {
    type Stream = Capped;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Capped, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            self.metrics.connections_refused.inc();
            // Dropping the stream closes it.
            return std::future::ready(Err(io::Error::other("connection limit reached")));
        };
        // A response goes out at once, not after the client's delayed ACK.
        let _ = stream.set_nodelay(true);
        std::future::ready(Ok((
            Capped {
                stream,
                _slot: slot,
            },
            service,
        )))
    }
}

/// An accepted connection holding its slot until it is dropped.
#[derive(Debug)]
pub struct Capped {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for Capped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Capped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The process's soft limit on open files, from `/proc/self/limits` (`None` if unlimited or
/// unknown).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// `max_connections`, lowered (with a warning) so that the connections and the broker's own
/// files fit in the process's open-files limit: past it `accept` fails and nobody, not even
/// the health check, gets in.
pub fn effective_max_connections(configured: usize) -> usize {
    fit_to_limit(configured, open_files_limit())
}

fn fit_to_limit(configured: usize, limit: Option<u64>) -> usize {
    let Some(limit) = limit else {
        return configured;
    };
    let room = usize::try_from(limit.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX);
    if configured <= room {
        return configured;
    }
    let lowered = room.max(1);
    tracing::warn!(
        configured,
        lowered,
        open_files_limit = limit,
        "[limits] max_connections does not fit the open-files limit (raise LimitNOFILE / ulimit -n)"
    );
    lowered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_the_open_files_limit() {
        assert_eq!(fit_to_limit(1024, None), 1024);
        assert_eq!(fit_to_limit(1024, Some(65536)), 1024);
        assert_eq!(fit_to_limit(1024, Some(1024)), 960);
        assert_eq!(fit_to_limit(1024, Some(10)), 1);
    }

    #[test]
    fn this_process_has_a_readable_open_files_limit() {
        // Linux always lists it; "unlimited" would parse as None.
        let text = std::fs::read_to_string("/proc/self/limits").unwrap();
        assert!(text.contains("Max open files"));
        assert!(open_files_limit().is_some_and(|n| n > 0));
    }

    #[tokio::test]
    async fn one_connection_past_the_cap_is_closed_and_its_slot_is_not_taken() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::default());
        let acceptor = CappedAcceptor::new(1, metrics.clone());
        let _first_client = TcpStream::connect(addr).await.unwrap();
        let (first, _) = listener.accept().await.unwrap();
        let held = acceptor.accept(first, ()).await.expect("first fits");
        let mut second_client = TcpStream::connect(addr).await.unwrap();
        let (second, _) = listener.accept().await.unwrap();
        assert!(acceptor.accept(second, ()).await.is_err());
        assert_eq!(metrics.connections_refused.get(), 1);
        // The refused connection was closed: the client reads end-of-stream.
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            second_client.read(&mut buf),
        )
        .await
        .expect("closed at once")
        .unwrap_or(0);
        assert_eq!(n, 0);
        // Closing the first frees its slot.
        drop(held);
        let _third_client = TcpStream::connect(addr).await.unwrap();
        let (third, _) = listener.accept().await.unwrap();
        assert!(acceptor.accept(third, ()).await.is_ok());
    }
}
