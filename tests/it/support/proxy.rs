//! A recording HTTP proxy between the server and moto: forwards every request unchanged (the
//! Host header too, so SigV4 signatures still verify) and keeps the AWS query bodies and the
//! access key id each was signed with, so tests can check what was sent where moto cannot show
//! it (e.g. PermissionsBoundary, ExternalId, who signed).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One forwarded request.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The access key id from the SigV4 `Authorization` header (empty when unsigned).
    pub key_id: String,
    pub body: String,
    /// The SDK's user agent (`app/NAME` when the caller set `AWS_SDK_UA_APP_ID`), to tell
    /// several servers apart.
    pub user_agent: String,
    /// moto's HTTP status, once it answered.
    pub status: Option<u16>,
}

impl Recorded {
    pub fn fields(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }

    pub fn field(&self, name: &str) -> Option<String> {
        self.fields()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn action(&self) -> Option<String> {
        self.field("Action")
    }
}

#[derive(Clone)]
pub struct Recorder {
    pub url: String,
    calls: Arc<Mutex<Vec<Recorded>>>,
    delay_ms: Arc<AtomicU64>,
}

impl Recorder {
    /// Holds every later request this long before forwarding it (a slow AWS).
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Every request seen, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.calls.lock().unwrap().clone()
    }

    /// Every request body seen, in order (AWS query protocol: `Action=CreateUser&…`).
    pub fn bodies(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.body).collect()
    }

    /// The requests of one action, in order.
    pub fn requests_of(&self, action: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.action().as_deref() == Some(action))
            .collect()
    }

    /// The decoded form fields of every call of `action`.
    pub fn calls_of(&self, action: &str) -> Vec<Vec<(String, String)>> {
        self.bodies()
            .iter()
            .map(|b| {
                form_urlencoded::parse(b.as_bytes())
                    .into_owned()
                    .collect::<Vec<_>>()
            })
            .filter(|fields| fields.iter().any(|(k, v)| k == "Action" && v == action))
            .collect()
    }
}

#[derive(Clone)]
struct ProxyState {
    target: String,
    http: reqwest::Client,
    calls: Arc<Mutex<Vec<Recorded>>>,
    delay_ms: Arc<AtomicU64>,
}

pub async fn start_recording_proxy(target: &str) -> Recorder {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let delay_ms = Arc::new(AtomicU64::new(0));
    let state = ProxyState {
        target: target.trim_end_matches('/').to_owned(),
        http: reqwest::Client::new(),
        calls: calls.clone(),
        delay_ms: delay_ms.clone(),
    };
    let app = axum::Router::new().fallback(forward).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Recorder {
        url,
        calls,
        delay_ms,
    }
}

async fn forward(
    State(state): State<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // `AWS4-HMAC-SHA256 Credential=AKIA…/20240101/us-east-1/iam/aws4_request, …`
    let key_id = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .and_then(|v| v.split('/').next())
        .unwrap_or_default()
        .to_owned();
    let user_agent = ["x-amz-user-agent", "user-agent"]
        .iter()
        .filter_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .collect::<Vec<_>>()
        .join(" ");
    let index = {
        let mut calls = state.calls.lock().unwrap();
        calls.push(Recorded {
            key_id,
            body: String::from_utf8_lossy(&body).into_owned(),
            user_agent,
            status: None,
        });
        calls.len() - 1
    };
    let delay = state.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut req = state
        .http
        .request(method, format!("{}{path}", state.target));
    for (name, value) in &headers {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            req = req.header(name, value);
        }
    }
    match req.body(body).send().await {
        Ok(r) => {
            let status = r.status();
            state.calls.lock().unwrap()[index].status = Some(status.as_u16());
            let mut out = HeaderMap::new();
            for (name, value) in r.headers() {
                if name != "content-length" && name != "transfer-encoding" && name != "connection" {
                    out.insert(name.clone(), value.clone());
                }
            }
            let bytes = r.bytes().await.unwrap_or_default();
            (status, out, bytes).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
