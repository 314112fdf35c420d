//! Start-up and shutdown of the server, the same code for `iamlease server` and the tests:
//! open the store, load or create the master key, bind, then serve and reap until told to stop.

mod connections;
mod master_key;

pub use master_key::{RekeyTarget, rekey};

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{AppState, app};
use crate::audit::{AuditHasher, AuditLog, AuditTarget, load_audit_key};
use crate::auth;
use crate::clock::now;
use crate::config::{ConnectionLimits, Settings, TlsFiles};
use crate::engine::{
    Engine, EngineError, EngineSettings, MountRequest, run_heartbeat, run_reaper, run_sweeper,
};
use crate::seal::{SealError, Sealer};
use crate::store::{self, Store, StoreError};
use axum_server::tls_rustls::RustlsConfig;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("master key file {path}: {source}")]
    MasterKeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("master key: {0}")]
    MasterKey(#[from] SealError),
    #[error("{0}")]
    Engine(#[from] EngineError),
    // The OS's reason is the `source`, which the binary prints after this (once).
    #[error(
        "cannot listen on {addr}; is another server there? Choose another with listen or IAMLEASE_LISTEN"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("temporary directory: {0}")]
    TempDir(std::io::Error),
    #[error("{0}")]
    Audit(#[from] crate::audit::AuditError),
    #[error("TLS certificate {cert} / key {key}: {source}")]
    Tls {
        cert: String,
        key: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Kms(String),
    #[error("root token file {path}: {source}")]
    RootTokenFile {
        path: String,
        source: std::io::Error,
    },
}

/// A server that is bound and ready to serve.
pub struct Application {
    listener: TcpListener,
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
    reaper_interval: Duration,
    shutdown_timeout: Duration,
    connections: ConnectionLimits,
    sweep_interval: Option<Duration>,
    audit: Option<Arc<AuditLog>>,
    audit_hasher: AuditHasher,
    limits: crate::api::Limits,
    tls: Option<(TlsFiles, RustlsConfig)>,
    /// The store is PostgreSQL.
    postgres: bool,
    /// The store's cluster id, for the status routes.
    cluster_id: String,
    /// A root token made at this start, to be shown once (dev mode, or a first start).
    pub initial_root_token: Option<String>,
    /// `await_init` on an empty store: no root token yet, `PUT sys/init` makes it.
    pub awaiting_init: bool,
    /// Dev mode's temporary directory, removed when the server stops.
    _temp_dir: Option<tempfile::TempDir>,
}

impl Application {
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        // First: a busy port must not leave a new store or master key behind.
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: settings.listen,
                    source,
                })?;
        let (storage, temp_dir) = match &settings.storage {
            Some(s) => (s.clone(), None),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("iamlease-dev-")
                    .tempdir()
                    .map_err(StartupError::TempDir)?;
                (
                    format!("sqlite://{}/iamlease.db", dir.path().display()),
                    Some(dir),
                )
            }
        };
        // Installed before anything records a metric.
        crate::telemetry::prometheus();
        let store = store::open(&storage).await?;
        let master = master_key::load(&settings.master_key, store.as_ref(), true).await?;
        let engine = Arc::new(Engine::new(
            store.clone(),
            Sealer::new(&master),
            EngineSettings {
                revoke_max_backoff: settings.revoke_max_backoff,
                pending_grace: settings.pending_grace,
                claim_timeout: settings.claim_timeout,
                failover_timeout: settings.failover_timeout,
                wait_ready_timeout: settings.wait_ready_timeout,
                allowed_aws_endpoints: settings.allowed_aws_endpoints.clone(),
                key_history_retention: settings.key_history_retention,
                iam_user_quota_reserve: settings.iam_user_quota_reserve,
                static_role_min_rotation: settings.static_role_min_rotation,
            },
        ));
        engine.check_master_key().await?;
        // Alive before the first row this replica owns, so no one takes its work for a dead
        // replica's.
        engine.beat().await?;
        let abandoned = store.recover_abandoned(now()).await?;
        if abandoned > 0 {
            tracing::info!(
                leases = abandoned,
                "found leases a previous run left mid-issue or mid-revocation; the reaper finishes them now"
            );
        }
        let audit_hasher = load_audit_key(engine.store(), &Sealer::new(&master)).await?;
        let audit = match &settings.audit_log {
            Some(target) => {
                let log = AuditLog::open(AuditTarget::parse(target), audit_hasher.clone())?;
                engine.set_audit_log(log.clone());
                Some(log)
            }
            None => None,
        };

        let dyn_store = engine.store().clone();
        let initial_root_token = match &settings.dev {
            Some(dev) => {
                let token = match &dev.root_token {
                    Some(t) => {
                        auth::insert_token(&dyn_store, t, auth::TokenSpec::root(), now()).await?;
                        t.clone()
                    }
                    None => {
                        auth::create_token(&dyn_store, auth::TokenSpec::root(), now())
                            .await?
                            .0
                    }
                };
                let aws = crate::model::MountPath::parse("aws").expect("valid");
                if store.get_mount(&aws).await?.is_none()
                    && let Err(e) = engine.enable_mount(MountRequest::aws(aws.clone())).await
                    // Another replica on the same database mounted it meanwhile.
                    && store.get_mount(&aws).await?.is_none()
                {
                    return Err(e.into());
                }
                Some(token)
            }
            // One root token however many replicas start at once on an empty store.
            None if !settings.await_init && !dyn_store.has_tokens().await? => {
                auth::create_first_root_token(&dyn_store, now()).await?
            }
            None => None,
        };
        let awaiting_init =
            settings.dev.is_none() && settings.await_init && !dyn_store.has_tokens().await?;
        if let (Some(path), Some(token)) = (&settings.root_token_file, &initial_root_token) {
            write_private_file(path, token.as_bytes()).map_err(|source| {
                StartupError::RootTokenFile {
                    path: path.display().to_string(),
                    source,
                }
            })?;
        }

        let tls = match &settings.tls {
            Some(files) => Some((
                files.clone(),
                RustlsConfig::from_pem_file(&files.cert, &files.key)
                    .await
                    .map_err(|source| tls_error(files, source))?,
            )),
            None => None,
        };
        Ok(Application {
            listener,
            engine,
            store,
            reaper_interval: settings.reaper_interval,
            shutdown_timeout: settings.shutdown_timeout,
            connections: settings.connections,
            sweep_interval: settings.sweep_interval,
            audit,
            audit_hasher,
            limits: crate::api::Limits::from_settings(settings),
            tls,
            postgres: store::is_postgres_url(&storage),
            cluster_id: crate::api::cluster_id(dyn_store.as_ref()).await?,
            initial_root_token,
            awaiting_init,
            _temp_dir: temp_dir,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// `https` when serving TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The engine this server runs (benchmarks drive a reaper pass through it directly).
    pub fn engine(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    /// Serves until `shutdown` resolves; then stops taking connections, lets in-flight requests
    /// finish (for at most `shutdown_timeout`), then the revocations they left running in the
    /// background and the reaper's pass (for at most `shutdown_timeout` more), and closes the
    /// store. Whatever is cut off is safe: its lease rows are recovered at the next start.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let grace = self.shutdown_timeout;
        let (fired_tx, fired_rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            shutdown.await;
            let _ = fired_tx.send(());
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let sweeper = self
            .sweep_interval
            .map(|every| tokio::spawn(run_sweeper(self.engine.clone(), every, stop_rx.clone())));
        // Aborted on drop too: a server dropped mid-way (a test harness) must not beat forever.
        let heart = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(run_heartbeat(
            self.engine.clone(),
        )));
        let reaper = tokio::spawn(run_reaper(
            self.engine.clone(),
            self.reaper_interval,
            stop_rx,
        ));
        let reloader = tokio::spawn(reload_on_sighup(self.audit.clone(), self.tls.clone()));
        let service = app(
            AppState {
                engine: self.engine.clone(),
                audit: self.audit.clone(),
                audit_hasher: self.audit_hasher.clone(),
                limits: self.limits.clone(),
                https: self.tls.is_some(),
                postgres: self.postgres,
                started_at: now(),
                cluster_id: self.cluster_id.clone(),
                jwt_keys: Default::default(),
            },
            crate::ui::routes(),
        );
        let tls = self.tls.map(|(_, config)| config);
        let serve = connections::serve(self.listener, service, tls, self.connections, shutdown);
        let cut_off = async move {
            if fired_rx.await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(grace).await;
        };
        let served = tokio::select! {
            served = serve => served,
            _ = cut_off => {
                tracing::warn!(grace_secs = grace.as_secs(), "requests still running after the shutdown timeout; cutting them off");
                Ok(())
            }
        };
        let _ = stop_tx.send(true);
        if let Some(sweeper) = sweeper {
            sweeper.abort();
        }
        reloader.abort();
        let (background, reaper) = tokio::join!(
            tokio::time::timeout(grace, self.engine.finish_background()),
            tokio::time::timeout(grace, reaper),
        );
        drop(heart);
        if background.is_err() {
            tracing::warn!(
                "revocations answered before the stop are still running; another replica takes them over after failover_timeout"
            );
        }
        if reaper.is_err() {
            tracing::warn!(
                "the reaper did not stop in time; its claims are taken over by another replica after failover_timeout, or at the next start"
            );
        }
        // Nothing of ours runs any more: another replica may take over what is left at once
        // (failing the retirement, it does after failover_timeout).
        if background.is_ok()
            && reaper.is_ok()
            && let Err(e) = self.engine.retire().await
        {
            tracing::warn!(error = %e, "could not retire this replica's heartbeat row");
        }
        self.store.close().await;
        served
    }
}

fn tls_error(files: &TlsFiles, source: std::io::Error) -> StartupError {
    StartupError::Tls {
        cert: files.cert.display().to_string(),
        key: files.key.display().to_string(),
        source,
    }
}

/// SIGHUP: reopen the audit log (rotation: move the file away, then signal) and reload the
/// TLS certificate and key (renewal without a restart). A failed TLS reload keeps the old pair.
async fn reload_on_sighup(audit: Option<Arc<AuditLog>>, tls: Option<(TlsFiles, RustlsConfig)>) {
    if audit.is_none() && tls.is_none() {
        return;
    }
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!(
            "cannot listen for SIGHUP; the audit log and TLS files will not be reloaded"
        );
        return;
    };
    while hup.recv().await.is_some() {
        if let Some(log) = &audit {
            match log.reopen() {
                Ok(()) => tracing::info!("audit log reopened"),
                Err(e) => {
                    tracing::error!(error = %e, "cannot reopen the audit log; audited requests are refused until it can be")
                }
            }
        }
        if let Some((files, config)) = &tls {
            match config.reload_from_pem_file(&files.cert, &files.key).await {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!(error = %tls_error(files, e), "cannot reload the TLS certificate; still serving the previous one")
                }
            }
        }
    }
}

/// Creates `path` with mode 0600 from the start (never briefly world-readable).
pub(crate) fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` applies only when the file is created; an existing file is tightened too.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(contents)?;
    file.sync_all()
}
