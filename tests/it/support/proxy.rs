//! A recording, fault-injecting HTTP proxy between the server and moto. It forwards every
//! request unchanged (the Host header too, so SigV4 signatures still verify) and keeps the AWS
//! query bodies and the access key id each was signed with, so tests can check what was sent
//! where moto cannot show it (e.g. PermissionsBoundary, ExternalId, who signed).
//!
//! With [`Faults`] set it also misbehaves the way AWS and networks do: 500 and 503 answers,
//! `Throttling` errors, connections reset mid-request, and added latency. Errors and resets
//! happen either before the request reaches moto or after moto has done it (the answer is
//! lost), which is the case that makes retried calls interesting. Every decision is drawn from
//! one seeded generator, so a run with the same seed and the same request order repeats.
use std::convert::Infallible;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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

/// How often (0.0–1.0 per request) each kind of fault happens.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    pub error_500: f64,
    pub error_503: f64,
    /// A 400 with AWS's `Throttling` error body.
    pub throttle: f64,
    /// The connection is reset (RST) instead of answered.
    pub reset: f64,
    /// Up to `max_latency` is added before the request is forwarded.
    pub latency: f64,
    pub max_latency: Duration,
    pub seed: u64,
}

impl Faults {
    /// `rate` of requests fail, split evenly over 500, 503, throttling and resets; as many
    /// again are delayed by up to 200 ms.
    pub fn every_kind(rate: f64, seed: u64) -> Faults {
        Faults {
            error_500: rate / 4.0,
            error_503: rate / 4.0,
            throttle: rate / 4.0,
            reset: rate / 4.0,
            latency: rate,
            max_latency: Duration::from_millis(200),
            seed,
        }
    }
}

/// What the proxy did, by kind.
#[derive(Clone, Debug, Default)]
pub struct Injected {
    pub requests: u64,
    pub error_500: u64,
    pub error_503: u64,
    pub throttle: u64,
    pub reset: u64,
    pub latency: u64,
    /// Faults injected after moto had carried the request out.
    pub after_forwarding: u64,
}

impl Injected {
    pub fn faults(&self) -> u64 {
        self.error_500 + self.error_503 + self.throttle + self.reset
    }
}

enum Fault {
    Status500,
    Status503,
    Throttle,
    Reset,
}

struct Shared {
    target: String,
    http: reqwest::Client,
    calls: Mutex<Vec<Recorded>>,
    faults: Mutex<(Faults, StdRng)>,
    injected: Mutex<Injected>,
    /// Added to every request before it is forwarded.
    delay: Mutex<Duration>,
    /// What to do to requests of one action (`CreateAccessKey`), whatever the faults say.
    rules: Mutex<Vec<(String, Rule)>>,
}

/// A deterministic misbehaviour for one AWS action, for stopping a sequence at one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Answer with this AWS error (status, code) without forwarding.
    Refuse(u16, &'static str),
    /// Hold the request until the rule is cleared, then answer 503 without forwarding: the
    /// step never happens in moto.
    HoldBefore,
    /// Forward it (moto carries it out), then hold the answer until the rule is cleared.
    HoldAfter,
}

#[derive(Clone)]
pub struct Recorder {
    pub url: String,
    shared: Arc<Shared>,
}

impl Recorder {
    /// Every request seen, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// Starts (or, with `Faults::default()`, stops) injecting faults.
    pub fn set_faults(&self, faults: Faults) {
        let rng = StdRng::seed_from_u64(faults.seed);
        *self.shared.faults.lock().unwrap() = (faults, rng);
    }

    /// Applies `rule` to every request of `action` from now on (replacing an earlier one).
    pub fn set_rule(&self, action: &str, rule: Rule) {
        let mut rules = self.shared.rules.lock().unwrap();
        rules.retain(|(a, _)| a != action);
        rules.push((action.to_owned(), rule));
    }

    /// Clears every rule (held requests are let go).
    pub fn clear_rules(&self) {
        self.shared.rules.lock().unwrap().clear();
    }

    /// Slows every request down by `delay` (on top of any injected latency).
    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().unwrap() = delay;
    }

    pub fn injected(&self) -> Injected {
        self.shared.injected.lock().unwrap().clone()
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

pub async fn start_recording_proxy(target: &str) -> Recorder {
    start_proxy(target, Faults::default()).await
}

/// A proxy to `target` on a free loopback port, injecting `faults` from the start.
pub async fn start_proxy(target: &str, faults: Faults) -> Recorder {
    let rng = StdRng::seed_from_u64(faults.seed);
    let shared = Arc::new(Shared {
        target: target.trim_end_matches('/').to_owned(),
        http: reqwest::Client::new(),
        calls: Mutex::new(Vec::new()),
        faults: Mutex::new((faults, rng)),
        injected: Mutex::new(Injected::default()),
        delay: Mutex::new(Duration::ZERO),
        rules: Mutex::new(Vec::new()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let serving = shared.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let shared = serving.clone();
            tokio::spawn(async move {
                let fd = stream.as_raw_fd();
                let (reset_tx, mut reset_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
                let service = hyper::service::service_fn(move |req| {
                    handle(shared.clone(), req, fd, reset_tx.clone())
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                // A reset drops the connection (and its socket, set to linger 0) unanswered.
                tokio::select! {
                    _ = conn => {}
                    _ = reset_rx.recv() => {}
                }
            });
        }
    });
    Recorder { url, shared }
}

/// Draws this request's fault (if any), whether it strikes after forwarding, and its delay.
fn draw(shared: &Shared) -> (Option<Fault>, bool, Option<Duration>) {
    let (faults, rng) = &mut *shared.faults.lock().unwrap();
    let roll: f64 = rng.r#gen();
    let after = rng.gen_bool(0.5);
    let delay = (rng.r#gen::<f64>() < faults.latency && !faults.max_latency.is_zero())
        .then(|| faults.max_latency.mul_f64(rng.r#gen::<f64>()));
    let mut edge = 0.0;
    let mut pick = |p: f64| {
        edge += p;
        roll < edge
    };
    let fault = if pick(faults.error_500) {
        Some(Fault::Status500)
    } else if pick(faults.error_503) {
        Some(Fault::Status503)
    } else if pick(faults.throttle) {
        Some(Fault::Throttle)
    } else if pick(faults.reset) {
        Some(Fault::Reset)
    } else {
        None
    };
    (fault, after, delay)
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    fd: RawFd,
    reset: tokio::sync::mpsc::UnboundedSender<()>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    // `AWS4-HMAC-SHA256 Credential=AKIA…/20240101/us-east-1/iam/aws4_request, …`
    let key_id = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .and_then(|v| v.split('/').next())
        .unwrap_or_default()
        .to_owned();
    let user_agent = ["x-amz-user-agent", "user-agent"]
        .iter()
        .filter_map(|h| parts.headers.get(*h).and_then(|v| v.to_str().ok()))
        .collect::<Vec<_>>()
        .join(" ");
    let index = {
        let mut calls = shared.calls.lock().unwrap();
        calls.push(Recorded {
            key_id,
            body: String::from_utf8_lossy(&body).into_owned(),
            user_agent,
            status: None,
        });
        calls.len() - 1
    };
    let action = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let rule_for = |shared: &Shared| {
        let rules = shared.rules.lock().unwrap();
        rules
            .iter()
            .find(|(a, _)| *a == action)
            .map(|(_, r)| r.clone())
    };
    let held = |shared: Arc<Shared>, rule: Rule| async move {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while rule_for(&shared) == Some(rule.clone()) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    match rule_for(&shared) {
        Some(Rule::Refuse(status, code)) => {
            return Ok(aws_error(
                status,
                "Sender",
                code,
                "refused by the test proxy",
            ));
        }
        Some(Rule::HoldBefore) => {
            held(shared.clone(), Rule::HoldBefore).await;
            return Ok(aws_error(
                503,
                "Receiver",
                "ServiceUnavailable",
                "held by the test proxy",
            ));
        }
        Some(Rule::HoldAfter) => {
            let answer = forward(&shared, &parts, body, index).await;
            held(shared.clone(), Rule::HoldAfter).await;
            return Ok(answer);
        }
        None => {}
    }
    let fixed = *shared.delay.lock().unwrap();
    if !fixed.is_zero() {
        tokio::time::sleep(fixed).await;
    }
    let (fault, after, delay) = draw(&shared);
    {
        let mut n = shared.injected.lock().unwrap();
        n.requests += 1;
        if delay.is_some() {
            n.latency += 1;
        }
        match fault {
            Some(Fault::Status500) => n.error_500 += 1,
            Some(Fault::Status503) => n.error_503 += 1,
            Some(Fault::Throttle) => n.throttle += 1,
            Some(Fault::Reset) => n.reset += 1,
            None => {}
        }
        if fault.is_some() && after {
            n.after_forwarding += 1;
        }
    }
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let Some(fault) = fault else {
        return Ok(forward(&shared, &parts, body, index).await);
    };
    if after {
        // moto carries the request out; its answer is lost.
        let _ = forward(&shared, &parts, body, index).await;
    }
    Ok(match fault {
        Fault::Status500 => aws_error(500, "Receiver", "ServiceFailure", "injected internal error"),
        Fault::Status503 => aws_error(
            503,
            "Receiver",
            "ServiceUnavailable",
            "injected: service unavailable",
        ),
        Fault::Throttle => aws_error(400, "Sender", "Throttling", "Rate exceeded"),
        Fault::Reset => {
            reset_connection(fd);
            let _ = reset.send(());
            std::future::pending::<()>().await;
            unreachable!("a reset connection is never answered")
        }
    })
}

/// SO_LINGER 0: closing the socket then sends RST instead of FIN.
fn reset_connection(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `fd` is the connection's socket, open until its task drops it after this call;
    // the option value is a valid `linger` of the size passed.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// An AWS query-protocol error, as IAM and STS send them.
fn aws_error(status: u16, kind: &str, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>injected-by-proxy</RequestId></ErrorResponse>"
    );
    Response::builder()
        .status(status)
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

async fn forward(
    shared: &Shared,
    parts: &axum::http::request::Parts,
    body: Bytes,
    index: usize,
) -> Response<Full<Bytes>> {
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut req = shared
        .http
        .request(parts.method.clone(), format!("{}{path}", shared.target));
    for (name, value) in &parts.headers {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            req = req.header(name, value);
        }
    }
    match req.body(body).send().await {
        Ok(r) => {
            // What moto answered, even when the proxy then loses the answer on purpose.
            shared.calls.lock().unwrap()[index].status = Some(r.status().as_u16());
            let mut out = Response::builder().status(r.status());
            let headers: HeaderMap = r.headers().clone();
            for (name, value) in &headers {
                if name != "content-length" && name != "transfer-encoding" && name != "connection" {
                    out = out.header(name, value);
                }
            }
            let bytes = r.bytes().await.unwrap_or_default();
            out.body(Full::new(bytes)).unwrap()
        }
        Err(e) => Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Full::new(Bytes::from(e.to_string())))
            .unwrap(),
    }
}
