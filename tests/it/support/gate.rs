//! A gate in front of moto that plays IAM's eventual consistency: sts:GetCallerIdentity signed
//! with any key but the admin's is refused (`InvalidClientTokenId`, 403, AWS's own error body)
//! for that key's first `refuse_first` calls; everything else is passed on unchanged (Host
//! header included, so SigV4 still verifies) to `target`, usually a recording proxy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

const REFUSAL: &str = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error><RequestId>iamlease-test-gate</RequestId></ErrorResponse>"#;

#[derive(Clone)]
pub struct Gate {
    pub url: String,
    /// GetCallerIdentity calls refused, per access key id.
    refused: Arc<Mutex<HashMap<String, u32>>>,
}

impl Gate {
    pub fn refused(&self, key_id: &str) -> u32 {
        self.refused
            .lock()
            .unwrap()
            .get(key_id)
            .copied()
            .unwrap_or(0)
    }
}

#[derive(Clone)]
struct GateState {
    target: String,
    admin_key: String,
    refuse_first: u32,
    http: reqwest::Client,
    refused: Arc<Mutex<HashMap<String, u32>>>,
}

pub async fn start_gate(target: &str, admin_key: &str, refuse_first: u32) -> Gate {
    let refused = Arc::new(Mutex::new(HashMap::new()));
    let state = GateState {
        target: target.trim_end_matches('/').to_owned(),
        admin_key: admin_key.to_owned(),
        refuse_first,
        http: reqwest::Client::new(),
        refused: refused.clone(),
    };
    let app = axum::Router::new().fallback(pass).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Gate { url, refused }
}

async fn pass(
    State(state): State<GateState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key_id = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .and_then(|v| v.split('/').next())
        .unwrap_or_default()
        .to_owned();
    let is_identity_call =
        form_urlencoded::parse(&body).any(|(k, v)| k == "Action" && v == "GetCallerIdentity");
    if is_identity_call && !key_id.is_empty() && key_id != state.admin_key {
        let mut refused = state.refused.lock().unwrap();
        let n = refused.entry(key_id).or_insert(0);
        if *n < state.refuse_first {
            *n += 1;
            return (
                StatusCode::FORBIDDEN,
                [("content-type", "text/xml")],
                REFUSAL,
            )
                .into_response();
        }
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
