//! The status routes clients and load balancers read before anything else, in Vault's shapes:
//! `sys/health`, `sys/seal-status`, `sys/leader`, `sys/init` and `sys/unseal` (all without a
//! token), `sys/auth` and `sys/capabilities*`.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::vault::{self, Input, json_response};
use super::{AppState, token, views};
use crate::auth::Caller;
use crate::clock::{now, rfc3339, rfc3339_ms};
use crate::seal::random_string;
use crate::store::{Store, StoreError};

const CLUSTER_NAME: &str = "iamlease";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The cluster's id: made once per store (a random UUID in the meta table), so every replica on
/// one database answers the same. Read at start-up; the status routes answer it from memory.
pub async fn cluster_id(store: &dyn Store) -> Result<String, StoreError> {
    const KEY: &str = "cluster_id";
    let made = views::uuid_form(&random_string(32, b"0123456789abcdef"));
    store.put_meta_if_absent(KEY, made.as_bytes()).await?;
    let stored = store
        .get_meta(KEY)
        .await?
        .ok_or_else(|| StoreError::Corrupt("the cluster id vanished".into()))?;
    String::from_utf8(stored).map_err(|_| StoreError::Corrupt("the cluster id is not UTF-8".into()))
}

/// The status a `sys/health` query asks for in `name` (Vault's `activecode`, `uninitcode`…), or
/// `default`; a value that is not an HTTP status is a 400.
fn health_code(
    query: Option<&str>,
    name: &str,
    default: StatusCode,
) -> Result<StatusCode, ApiError> {
    let asked = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v);
    match asked {
        None => Ok(default),
        Some(v) => v
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .filter(|c| (200..600).contains(&c.as_u16()))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{name} must be an HTTP status code from 200 to 599, not {v:?}"
                ))
            }),
    }
}

/// `sys/health`: an active, unsealed node's answer. Vault's `activecode` and `uninitcode`
/// choose the status of the two states iamlease can be in; `standbyok`, `sealedcode` and the
/// other codes are for states it never is in.
pub async fn health(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let codes = health_code(query.as_deref(), "activecode", StatusCode::OK).and_then(|active| {
        health_code(query.as_deref(), "uninitcode", StatusCode::NOT_IMPLEMENTED)
            .map(|uninit| (active, uninit))
    });
    let (active_code, uninit_code) = match codes {
        Ok(codes) => codes,
        Err(refused) => return refused.into_response(),
    };
    // A server whose store cannot be read is not ready: the tables every request and the
    // reaper need are each touched once (index lookups, so the probe stays cheap).
    let store = state.engine.store();
    let initialized = store.has_tokens().await;
    let ready = initialized.is_ok()
        && store.list_lease_ids("", None, None, 1).await.is_ok()
        && store.list_mounts().await.is_ok();
    let initialized = initialized.unwrap_or(true);
    let body = json!({
        "initialized": initialized,
        "sealed": false,
        "standby": false,
        "performance_standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": now(),
        "version": VERSION,
        "enterprise": false,
        "cluster_name": CLUSTER_NAME,
        "cluster_id": state.cluster_id,
        "echo_duration_ms": 0,
        "clock_skew_ms": 0,
    });
    let status = if !ready {
        StatusCode::SERVICE_UNAVAILABLE
    } else if !initialized {
        // Only a server started with `await_init` is ever here.
        uninit_code
    } else {
        active_code
    };
    json_response(status, &body)
}

/// Whether the root token exists yet: false only on an empty store started with `await_init`.
async fn initialized(state: &AppState) -> Result<bool, ApiError> {
    Ok(state.engine.store().has_tokens().await?)
}

/// `GET sys/init`.
pub async fn init_status(State(state): State<AppState>) -> Result<Response, ApiError> {
    let initialized = initialized(&state).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "initialized": initialized }),
    ))
}

/// `PUT sys/init`: makes the root token of a server started with `await_init` on an empty
/// store, and answers it this once. There are no unseal keys (the master key is loaded at
/// start-up), so `keys` is empty and the share parameters are ignored.
pub async fn init(State(state): State<AppState>) -> Result<Response, ApiError> {
    // Two requests at once (on any replicas) must not both find the store empty: the store
    // checks and inserts in one step.
    let made = crate::auth::create_first_root_token(state.engine.store(), now()).await?;
    let Some(root_token) = made else {
        return Err(ApiError::bad_request(
            "already initialized: the root token was made at first start or by an earlier sys/init",
        ));
    };
    tracing::info!("sys/init made the root token");
    Ok(json_response(
        StatusCode::OK,
        &json!({"keys": [], "keys_base64": [], "root_token": root_token}),
    ))
}

/// `sys/seal-status`: iamlease is never sealed (its master key is loaded at start-up), so it
/// answers as an unsealed single-key Vault does.
pub async fn seal_status(State(state): State<AppState>) -> Result<Response, ApiError> {
    let initialized = initialized(&state).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "type": "shamir",
            "initialized": initialized,
            "sealed": false,
            "t": 1,
            "n": 1,
            "progress": 0,
            "nonce": "",
            "version": VERSION,
            "build_date": "",
            "migration": false,
            "cluster_name": CLUSTER_NAME,
            "cluster_id": state.cluster_id,
            "recovery_seal": false,
            "storage_type": if state.postgres { "postgresql" } else { "sqlite" },
        }),
    ))
}

/// `PUT sys/unseal`: never sealed, so any key (or none) gets the seal status back, as an
/// unsealed Vault answers.
pub async fn unseal(state: State<AppState>) -> Result<Response, ApiError> {
    seal_status(state).await
}

/// `sys/leader`: no HA election (replicas share the database and all serve), so each one is
/// its own active node.
pub async fn leader(State(state): State<AppState>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "ha_enabled": false,
            "is_self": true,
            "active_time": rfc3339(state.started_at),
            "leader_address": "",
            "leader_cluster_address": "",
            "performance_standby": false,
            "performance_standby_last_remote_wal": 0,
            "raft_committed_index": 0,
            "raft_applied_index": 0,
        }),
    )
}

/// `sys/ha-status`: every replica on this store, as Vault lists its nodes. There is no leader
/// (every replica serves), so each live one is an `active_node`; `last_echo` is its last
/// heartbeat. Ours besides Vault's: `replica_id`, `pid`, `started_at`, `alive` (beaten within
/// `failover_timeout`) and `is_self`.
pub async fn ha_status(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let nodes: Vec<Value> = state
        .engine
        .replicas()
        .await?
        .into_iter()
        .map(|r| {
            json!({
                "hostname": r.record.host,
                "api_address": "",
                "cluster_address": "",
                "active_node": r.alive,
                "last_echo": rfc3339_ms(r.record.heartbeat_ms),
                "version": env!("CARGO_PKG_VERSION"),
                "upgrade_version": env!("CARGO_PKG_VERSION"),
                "redundancy_zone": "",
                "clock_skew_ms": 0,
                "echo_duration_ms": 0,
                "replication_primary_canary_age_ms": 0,
                "replica_id": r.record.id,
                "pid": r.record.pid,
                "started_at": rfc3339(r.record.started_at),
                "alive": r.alive,
                "is_self": r.is_self,
            })
        })
        .collect();
    let mut data = Map::new();
    data.insert("nodes".into(), Value::Array(nodes));
    Ok(vault::read_flat(data))
}

/// `sys/auth`: the auth methods; the token method is always there.
pub async fn list_auth(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let id = &state.cluster_id;
    let mut methods = Map::new();
    let config = json!({
        "default_lease_ttl": 0,
        "max_lease_ttl": 0,
        "force_no_cache": false,
        "token_type": "default-service",
    });
    let accessor = format!("auth_token_{}", &id.get(..8).unwrap_or("00000000"));
    methods.insert(
        "token/".into(),
        views::mount_entry("token", "token based credentials", &accessor, id, config),
    );
    methods.extend(super::auth_methods::enabled(state.engine.store()).await?);
    Ok(vault::read_flat(methods))
}

/// The capabilities a caller has on each path, as Vault's `sys/capabilities*` answer them:
/// `["root"]` for a root token, `["deny"]` where nothing is granted; each path a key, and
/// `capabilities` for the first (older clients read that).
fn capabilities_of(caller: &Caller, paths: &[String]) -> Map<String, Value> {
    let mut data = Map::new();
    for (i, path) in paths.iter().enumerate() {
        let caps: Vec<&str> = if caller.is_root() {
            vec!["root"]
        } else {
            let granted = caller.acl.capabilities(path.trim_start_matches('/'));
            if granted.is_empty() {
                vec!["deny"]
            } else {
                granted.iter().map(|c| c.as_str()).collect()
            }
        };
        if i == 0 {
            data.insert("capabilities".into(), json!(caps));
        }
        data.insert(path.clone(), json!(caps));
    }
    data
}

/// `paths` (a list) or `path` (older clients), at least one.
fn paths_field(input: &mut Input) -> Result<Vec<String>, ApiError> {
    let mut paths = input.fields.list("paths")?.unwrap_or_default();
    if let Some(p) = input.fields.list("path")? {
        paths.extend(p);
    }
    if paths.is_empty() {
        return Err(ApiError::bad_request(
            "paths is required: the paths to check",
        ));
    }
    Ok(paths)
}

/// `sys/capabilities-self`: what the calling token may do on `paths`.
pub async fn capabilities_self(caller: Caller, mut input: Input) -> Result<Response, ApiError> {
    let paths = paths_field(&mut input)?;
    Ok(vault::read_flat(capabilities_of(&caller, &paths)))
}

/// `sys/capabilities`: what the token in `token` may do on `paths`.
pub async fn capabilities(
    State(state): State<AppState>,
    _caller: Caller,
    mut input: Input,
) -> Result<Response, ApiError> {
    let paths = paths_field(&mut input)?;
    let (_, other) = token::named_token(&state, &mut input).await?;
    Ok(vault::read_flat(capabilities_of(&other, &paths)))
}

/// `sys/capabilities-accessor`: what the token with `accessor` may do on `paths`.
pub async fn capabilities_accessor(
    State(state): State<AppState>,
    _caller: Caller,
    mut input: Input,
) -> Result<Response, ApiError> {
    let paths = paths_field(&mut input)?;
    let accessor = token::accessor_field(&mut input)?;
    let other = crate::auth::lookup_accessor(state.engine.store(), &accessor).await?;
    Ok(vault::read_flat(capabilities_of(&other, &paths)))
}
