//! Request limits: per-token and per-client-address rate limits (429 with `Retry-After`). The
//! request timeout (503), the body deadline (408) and the body-size limit (413) are applied by
//! the gate, where bodies are read; connection limits by the server's accept loop.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::AppState;
use super::error::ApiError;
use crate::config::Settings;

/// Keyed limiters forget idle keys once they hold this many, so memory stays bounded.
const MAX_TRACKED_KEYS: usize = 10_000;

#[derive(Clone)]
pub struct Limits {
    /// Keyed by the token's SHA-256, so no token is kept in memory.
    per_token: Option<Arc<DefaultKeyedRateLimiter<Vec<u8>>>>,
    per_address: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    pub request_timeout: Duration,
    /// A request's whole body must arrive within this (408).
    pub body_read_timeout: Duration,
    pub metrics_unauthenticated: bool,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(
    per_second: u32,
) -> Option<Arc<DefaultKeyedRateLimiter<K>>> {
    NonZeroU32::new(per_second).map(|n| Arc::new(RateLimiter::keyed(Quota::per_second(n))))
}

impl Limits {
    pub fn from_settings(settings: &Settings) -> Limits {
        Limits {
            per_token: limiter(settings.rate_limit_per_token),
            per_address: limiter(settings.rate_limit_per_address),
            request_timeout: settings.request_timeout,
            body_read_timeout: settings.connections.body_read_timeout,
            metrics_unauthenticated: settings.metrics_unauthenticated,
        }
    }
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &Option<Arc<DefaultKeyedRateLimiter<K>>>,
    key: &K,
) -> Result<(), Duration> {
    let Some(l) = limiter else { return Ok(()) };
    if l.len() > MAX_TRACKED_KEYS {
        l.retain_recent();
    }
    l.check_key(key)
        .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
}

/// Refuses a request over its token's or its address's rate with 429 and `Retry-After`.
pub async fn rate_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limits = &state.limits;
    // Load balancers' health probes are never limited.
    if req.uri().path() == "/v1/sys/health" {
        return next.run(req).await;
    }
    let address = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let token = super::vault::token_header(req.headers()).map(crate::seal::token_hash);
    let outcome = match address {
        Some(ip) => check(&limits.per_address, &ip).map_err(|w| (w, "client address")),
        None => Ok(()),
    }
    .and_then(|()| match &token {
        Some(hash) => check(&limits.per_token, hash).map_err(|w| (w, "token")),
        None => Ok(()),
    });
    match outcome {
        Ok(()) => next.run(req).await,
        Err((wait, what)) => {
            metrics::counter!("iamlease_rate_limited_total", "by" => what).increment(1);
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("rate limit exceeded for this {what}; retry in {secs}s"),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            response
        }
    }
}

/// The console's requests get the API's `request_timeout` too (their bodies are read inside it).
pub async fn timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    within(state.limits.request_timeout, next.run(req)).await
}

/// Answers 503 when the handler runs longer than `request_timeout`. Dropping an issue midway is
/// safe: its `pending` lease row is rolled back by recovery, as after a crash.
pub async fn within(limit: Duration, run: impl Future<Output = Response>) -> Response {
    match tokio::time::timeout(limit, run).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request took longer than request_timeout ({}s) and was stopped",
                limit.as_secs()
            ),
        )
        .into_response(),
    }
}
