//! The agent's HTTP face: the AWS container-credentials endpoint on a loopback port. `GET
//! /creds` with `Authorization: <token>` answers the credential being served now, in the shape
//! every AWS SDK's container provider reads (`AccessKeyId`, `SecretAccessKey`, `Token`,
//! `Expiration`); anything else is refused, and so is a peer that is not loopback.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;

use super::Credential;

/// The one path served; `AWS_CONTAINER_CREDENTIALS_FULL_URI` names it.
pub const PATH: &str = "/creds";

struct Shared {
    token: String,
    current: watch::Receiver<Arc<Credential>>,
}

/// Serves on `listener` until `stop` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    token: String,
    current: watch::Receiver<Arc<Credential>>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared { token, current });
    let app = axum::Router::new()
        .route(PATH, axum::routing::get(answer))
        .with_state(shared);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    // The listener is bound to loopback, so this holds already; it is checked again so that a
    // change to the binding cannot open the endpoint to the network.
    if !peer.ip().is_loopback() {
        return refuse(StatusCode::FORBIDDEN, "only loopback clients are served");
    }
    let Some(given) = headers.get(header::AUTHORIZATION) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "no Authorization header: send AWS_CONTAINER_AUTHORIZATION_TOKEN",
        );
    };
    if !bool::from(given.as_bytes().ct_eq(shared.token.as_bytes())) {
        return refuse(StatusCode::FORBIDDEN, "wrong authorization token");
    }
    let credential = shared.current.borrow().clone();
    if credential.expires <= OffsetDateTime::now_utc() {
        // The agent could not replace it in time (the server unreachable): say so, rather than
        // hand out a key the SDK would refuse as expired anyway.
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the credential expired and the agent could not get a new one yet; see its log",
        );
    }
    let expiration = credential
        .expires
        .replace_nanosecond(0)
        .unwrap_or(credential.expires)
        .format(&Rfc3339)
        .unwrap_or_default();
    let body = json!({
        "AccessKeyId": credential.access_key,
        "SecretAccessKey": credential.secret_key,
        // Always present (botocore and the Rust SDK require the field); empty for an IAM
        // user's key, which botocore then leaves out of the request.
        "Token": credential.session_token.as_deref().unwrap_or(""),
        "Expiration": expiration,
    });
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
}

/// A refusal in the error shape the SDKs' container providers read (`Code`, `Message`).
fn refuse(status: StatusCode, message: &str) -> Response {
    let code = match status {
        StatusCode::UNAUTHORIZED => "Unauthorized",
        StatusCode::FORBIDDEN => "Forbidden",
        _ => "Unavailable",
    };
    (
        status,
        axum::Json(json!({"Code": code, "Message": message})),
    )
        .into_response()
}
