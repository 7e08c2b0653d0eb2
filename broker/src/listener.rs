//! Connection admission: at most `[limits] max_connections` connections are open at once, and
//! at most `max_connections_per_source` from one IP address. One more is closed as soon as it
//! is accepted (the client sees the connection end, at once), so a client that opens
//! connections and sends nothing can neither exhaust the process's file descriptors nor, from
//! one address, take every slot; hyper's header timeout closes such connections after
//! `client_timeout_secs`. Refusals are counted in a metric and logged at most every 10 s.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

/// File descriptors the broker keeps for itself beyond its connections (database, WAL, lock
/// file, key files, the listener, the runtime).
const RESERVED_FDS: u64 = 64;

/// Seconds between two log lines about refused connections.
const REFUSAL_LOG_INTERVAL_SECS: u64 = 10;

/// Hands out one slot per open connection; see the module docs.
#[derive(Clone)]
pub struct CappedAcceptor {
    slots: Arc<Semaphore>,
    per_source: Arc<PerSource>,
    refusals: Arc<Refusals>,
    metrics: Arc<Metrics>,
}

/// Open connections by source address.
struct PerSource {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerSource {
    /// Counts one more connection from `ip`, unless it already has `max`.
    fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<SourceSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            table: self.clone(),
            ip,
        })
    }
}

/// One connection counted against its source; uncounted when dropped.
struct SourceSlot {
    table: Arc<PerSource>,
    ip: IpAddr,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl std::fmt::Debug for SourceSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceSlot").field("ip", &self.ip).finish()
    }
}

/// Refusals since the last log line, and when that was.
struct Refusals {
    started: Instant,
    since_log: AtomicU64,
    last_log_secs: AtomicU64,
}

impl Refusals {
    /// Counts a refusal; at most every [`REFUSAL_LOG_INTERVAL_SECS`], logs how many there were.
    fn refused(&self, why: &'static str) {
        self.since_log.fetch_add(1, Ordering::Relaxed);
        let now = self.started.elapsed().as_secs() + REFUSAL_LOG_INTERVAL_SECS;
        let last = self.last_log_secs.load(Ordering::Relaxed);
        if now >= last + REFUSAL_LOG_INTERVAL_SECS
            && self
                .last_log_secs
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let refused = self.since_log.swap(0, Ordering::Relaxed);
            tracing::warn!(
                refused,
                latest_reason = why,
                "connections closed on arrival: [limits] max_connections or \
                 max_connections_per_source reached"
            );
        }
    }
}

impl CappedAcceptor {
    /// At most `max` connections at once, and `per_source` from one IP address.
    pub fn new(max: usize, per_source: usize, metrics: Arc<Metrics>) -> Self {
        CappedAcceptor {
            // tokio's semaphore holds at most MAX_PERMITS (usize::MAX >> 3).
            slots: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
            per_source: Arc::new(PerSource {
                max: per_source,
                open: Mutex::new(HashMap::new()),
            }),
            refusals: Arc::new(Refusals {
                started: Instant::now(),
                since_log: AtomicU64::new(0),
                last_log_secs: AtomicU64::new(0),
            }),
            metrics,
        }
    }

    fn refuse<T>(&self, why: &'static str) -> std::future::Ready<io::Result<T>> {
        self.metrics.connections_refused.inc();
        self.refusals.refused(why);
        // Dropping the stream (the caller's) closes it.
        std::future::ready(Err(io::Error::other(why)))
    }
}

impl<S> Accept<TcpStream, S> for CappedAcceptor {
    type Stream = Capped;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Capped, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let Ok(peer) = stream.peer_addr() else {
            return self.refuse("peer address unknown");
        };
        let Some(source) = self.per_source.enter(peer.ip()) else {
            return self.refuse("max_connections_per_source reached");
        };
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            return self.refuse("max_connections reached");
        };
        // A response goes out at once, not after the client's delayed ACK.
        let _ = stream.set_nodelay(true);
        std::future::ready(Ok((
            Capped {
                stream,
                _slot: slot,
                _source: source,
            },
            service,
        )))
    }
}

/// An accepted connection holding its slots until it is dropped.
#[derive(Debug)]
pub struct Capped {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    _source: SourceSlot,
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

    /// Connects to `listener` and accepts through `acceptor`; the accepted side (if admitted)
    /// and the client side.
    async fn connect(
        listener: &tokio::net::TcpListener,
        acceptor: &CappedAcceptor,
    ) -> (io::Result<Capped>, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let admitted = acceptor.accept(server, ()).await.map(|(c, ())| c);
        (admitted, client)
    }

    #[tokio::test]
    async fn one_source_cannot_take_every_slot() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics = Arc::new(Metrics::default());
        let acceptor = CappedAcceptor::new(10, 2, metrics.clone());
        let (a, _ca) = connect(&listener, &acceptor).await;
        let (b, _cb) = connect(&listener, &acceptor).await;
        let (c, _cc) = connect(&listener, &acceptor).await;
        assert!(a.is_ok() && b.is_ok());
        assert!(c.is_err(), "a third connection from 127.0.0.1");
        assert_eq!(metrics.connections_refused.get(), 1);
        // Its refusal did not take a global slot, and closing one frees its source's count.
        assert_eq!(acceptor.slots.available_permits(), 8);
        drop(a);
        let (d, _cd) = connect(&listener, &acceptor).await;
        assert!(d.is_ok());
        drop((b, d));
        assert!(acceptor.per_source.open.lock().unwrap().is_empty());
    }

    #[test]
    fn any_configured_connection_count_is_accepted() {
        let acceptor = CappedAcceptor::new(usize::MAX, 1, Arc::new(Metrics::default()));
        assert_eq!(acceptor.slots.available_permits(), Semaphore::MAX_PERMITS);
    }

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
        let acceptor = CappedAcceptor::new(1, 1, metrics.clone());
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
