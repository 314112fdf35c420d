//! The accept loop: what keeps a slow, idle or greedy client from holding the server's
//! sockets. Connections are capped in all and per client address (more are closed at accept);
//! a request's line and headers, and a TLS handshake, must arrive within `header_read_timeout`
//! of their first byte; a kept-alive connection waiting for its next request is closed after
//! `idle_timeout`. (The body's deadline is the gate's, where bodies are read.) On shutdown,
//! connections finish the request in hand and close.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum_server::tls_rustls::RustlsConfig;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::config::ConnectionLimits;

/// How often a connection's deadlines are looked at.
const TICK: Duration = Duration::from_millis(250);

/// Serves `app` on `listener` until `shutdown` resolves, then lets open connections finish
/// their current request (the caller bounds how long with its own grace period).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<RustlsConfig>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let total = Arc::new(Semaphore::new(limits.max_connections as usize));
    let per_address = Arc::new(PerAddress::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, most often: wait for connections to close.
                        tracing::warn!(error = %e, "accept failed; pausing briefly");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Some(slot) = admit(&total, &per_address, peer.ip(), &limits) else {
                    drop(stream);
                    continue;
                };
                let app = app.clone();
                let tls = tls.clone();
                let stop = stop_rx.clone();
                connections.spawn(async move {
                    let _slot = slot;
                    connection(stream, peer, app, tls, limits, stop).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Open connections per client address.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, u32>>);

/// Held while a connection is open; gives its places back when dropped.
struct Slot {
    _total: OwnedSemaphorePermit,
    per_address: Arc<PerAddress>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.per_address.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

fn admit(
    total: &Arc<Semaphore>,
    per_address: &Arc<PerAddress>,
    ip: IpAddr,
    limits: &ConnectionLimits,
) -> Option<Slot> {
    let Ok(permit) = total.clone().try_acquire_owned() else {
        metrics::counter!("iamlease_connections_refused_total", "by" => "total").increment(1);
        tracing::warn!(
            max = limits.max_connections,
            "max_connections reached; closing a new connection"
        );
        return None;
    };
    let mut map = per_address.0.lock().unwrap_or_else(|p| p.into_inner());
    let open = map.entry(ip).or_insert(0);
    if *open >= limits.max_connections_per_address {
        metrics::counter!("iamlease_connections_refused_total", "by" => "address").increment(1);
        tracing::warn!(%ip, max = limits.max_connections_per_address, "max_connections_per_address reached; closing a new connection");
        return None;
    }
    *open += 1;
    Some(Slot {
        _total: permit,
        per_address: per_address.clone(),
        ip,
    })
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    tls: Option<RustlsConfig>,
    limits: ConnectionLimits,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    match tls {
        None => {
            http(
                Watched::new(stream, activity.clone()),
                peer,
                app,
                limits,
                activity,
                stop,
            )
            .await
        }
        Some(config) => {
            // HTTP/1.1 only, which is what is served.
            let mut server_config = (*config.get_inner()).clone();
            server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
            let handshake = acceptor.accept(Watched::new(stream, activity.clone()));
            match tokio::time::timeout(limits.header_read_timeout, handshake).await {
                Ok(Ok(tls_stream)) => http(tls_stream, peer, app, limits, activity, stop).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake took longer than header_read_timeout")
                }
            }
        }
    }
}

async fn http<IO>(
    io: IO,
    peer: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    activity: Arc<Activity>,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let in_service = activity.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let request = InRequest::begin(in_service.clone());
        let app = app.clone();
        async move {
            let response = app.oneshot(req.map(Body::new)).await;
            drop(request);
            Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_err() || *stop.borrow() {
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = tokio::time::sleep(TICK) => {
                if let Some(why) = activity.overdue(&limits) {
                    metrics::counter!("iamlease_connections_timed_out_total", "phase" => why).increment(1);
                    tracing::debug!(%peer, phase = why, "closing a connection past its deadline");
                    return;
                }
            }
        }
    }
}

/// What a connection is doing, for its deadlines: milliseconds since `origin`, 0 for "not".
struct Activity {
    origin: Instant,
    in_request: AtomicBool,
    /// When the first byte of a request head arrived (while no request was in hand).
    head_started: AtomicU64,
    /// When the connection last finished a request (or opened).
    idle_since: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            origin: Instant::now(),
            in_request: AtomicBool::new(false),
            // A new connection owes its first request's head from the start.
            head_started: AtomicU64::new(1),
            idle_since: AtomicU64::new(1),
        }
    }

    fn now(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64 + 1
    }

    fn bytes_arrived(&self) {
        if !self.in_request.load(Ordering::Acquire)
            && self.head_started.load(Ordering::Acquire) == 0
        {
            self.head_started.store(self.now(), Ordering::Release);
        }
    }

    /// Which deadline has passed, if any. A request in hand has none here (its body's and its
    /// handler's deadlines are the gate's).
    fn overdue(&self, limits: &ConnectionLimits) -> Option<&'static str> {
        if self.in_request.load(Ordering::Acquire) {
            return None;
        }
        let now = self.now();
        let head = self.head_started.load(Ordering::Acquire);
        if head != 0 {
            return (now - head > limits.header_read_timeout.as_millis() as u64)
                .then_some("headers");
        }
        let idle = self.idle_since.load(Ordering::Acquire);
        (now - idle > limits.idle_timeout.as_millis() as u64).then_some("idle")
    }
}

/// Marks a request in hand from the moment hyper has read its head until its answer is made.
struct InRequest(Arc<Activity>);

impl InRequest {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.in_request.store(true, Ordering::Release);
        activity.head_started.store(0, Ordering::Release);
        InRequest(activity)
    }
}

impl Drop for InRequest {
    fn drop(&mut self) {
        self.0.idle_since.store(self.0.now(), Ordering::Release);
        self.0.in_request.store(false, Ordering::Release);
    }
}

/// A stream that notes when bytes arrive.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    fn new(inner: S, activity: Arc<Activity>) -> Self {
        Watched { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
