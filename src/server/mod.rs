//! `failover-guard serve`: the TLS admission listener and the plain probe listener, with
//! certificate and configuration reloading and a graceful drain on shutdown.

pub mod http;
pub mod tls;

use std::{
    future::Future,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::{config::Config, metrics::Metrics, world::World};
pub use http::AppState;
use tls::{CertFiles, ServingCert, TlsError};

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    pub probe_listen: SocketAddr,
    pub cert: CertFiles,
    /// The file to poll for configuration changes; `None` for a built-in configuration.
    pub config_path: Option<PathBuf>,
    /// Namespaces always excluded on top of the file's (the webhook's own).
    pub extra_excluded: Vec<String>,
    /// How often certificate and configuration files are polled.
    pub reload_interval: Duration,
    /// How long to keep serving, not ready, after the shutdown signal (endpoint propagation).
    pub shutdown_delay: Duration,
    /// How long in-flight requests may take to finish after that.
    pub grace_period: Duration,
    /// Time allowed for a TLS handshake and for reading request headers.
    pub header_timeout: Duration,
    /// Concurrent admission reviews before new ones are shed with 503.
    pub max_in_flight: usize,
    pub record_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Remote discovery and reconciliation for `serve` (see [`crate::remotes`]).
pub struct RemoteSetup {
    /// This cluster, where the remote secrets live and where `--reconcile` applies.
    pub local: Option<kube::Client>,
    /// `serve --reconcile`.
    pub reconcile: bool,
}

/// Serves until `shutdown` completes, then drains and returns.
pub async fn run(
    options: Options,
    in_force: Arc<crate::inforce::InForce>,
    world: Option<Arc<dyn World>>,
    remote_setup: Option<RemoteSetup>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let serving = Arc::new(ServingCert::load(options.cert.clone())?);
    let acceptor = TlsAcceptor::from(serving.server_config()?);
    let state = Arc::new(AppState::new(
        in_force.clone(),
        world.clone(),
        metrics.clone(),
        options.record_dir.clone(),
    ));

    let bind = |addr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })
    };
    let listener = bind(options.listen).await?;
    let probe_listener = bind(options.probe_listen).await?;
    tracing::info!(
        admission = %listener.local_addr().unwrap_or(options.listen),
        probes = %probe_listener.local_addr().unwrap_or(options.probe_listen),
        "failover-guard serving"
    );

    let mut background = tokio::task::JoinSet::new();
    background.spawn(
        serving
            .clone()
            .watch(options.reload_interval, metrics.clone()),
    );
    if let Some(path) = options.config_path.clone() {
        background.spawn(watch_config(
            path,
            state.clone(),
            options.extra_excluded.clone(),
            options.reload_interval,
        ));
    }

    if let (Some(setup), Some(remotes)) = (remote_setup, in_force.remotes().cloned()) {
        background.spawn(crate::remotes::supervise(
            setup.local.clone(),
            in_force.file(),
            metrics.clone(),
            remotes.clone(),
        ));
        // Every change a remote reports reaches the rules' configuration.
        let follower = in_force.clone();
        let mut changes = remotes.subscribe();
        background.spawn(async move {
            while changes.changed().await.is_ok() {
                follower.refresh();
            }
        });
        if let (true, Some(client)) = (setup.reconcile, setup.local) {
            background.spawn(crate::reconcile::run(
                client,
                in_force.clone(),
                remotes,
                world,
                metrics.clone(),
            ));
        }
    }

    let (probe_stop, probe_stopped) = tokio::sync::oneshot::channel::<()>();
    let probes = tokio::spawn(
        axum::serve(probe_listener, http::probe_router(state.clone()))
            .with_graceful_shutdown(async {
                let _ = probe_stopped.await;
            })
            .into_future(),
    );

    let router = http::admission_router(state.clone(), options.max_in_flight);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .max_concurrent_streams(256);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let serve = |tcp: tokio::net::TcpStream, peer: SocketAddr| {
        let _ = tcp.set_nodelay(true);
        tokio::spawn(serve_connection(
            tcp,
            peer,
            acceptor.clone(),
            builder.clone(),
            TowerToHyperService::new(router.clone()),
            graceful.watcher(),
            options.header_timeout,
        ));
    };
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => serve(tcp, peer),
                Err(error) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }

    tracing::info!("shutdown requested: not ready, draining");
    state.draining.store(true, Ordering::Relaxed);
    // Keep accepting while the endpoint is removed from the Service's endpoints.
    let delay = tokio::time::sleep(options.shutdown_delay);
    tokio::pin!(delay);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((tcp, peer)) = accepted {
                    serve(tcp, peer);
                }
            }
            () = &mut delay => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(options.grace_period, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over with requests still in flight");
    }
    let _ = probe_stop.send(());
    let _ = probes.await;
    background.abort_all();
    tracing::info!("drained; exiting");
    Ok(())
}

/// One TLS connection: handshake (bounded by `timeout`), then HTTP/1 or HTTP/2 until the
/// client leaves or the server drains.
async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    builder: Arc<auto::Builder<TokioExecutor>>,
    service: TowerToHyperService<axum::Router>,
    watcher: hyper_util::server::graceful::Watcher,
    timeout: Duration,
) {
    let tls = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let connection = builder.serve_connection(TokioIo::new(tls), service);
    if let Err(error) = watcher.watch(connection.into_owned()).await {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

/// Adds the always-excluded namespaces (the webhook's own) to a configuration.
pub fn with_exclusions(mut config: Config, extra: &[String]) -> Config {
    for namespace in extra {
        if !config.scope.exclude_namespaces.contains(namespace) {
            config.scope.exclude_namespaces.push(namespace.clone());
        }
    }
    config
}

/// Polls the configuration file; a valid change is applied, an invalid one is logged and
/// counted and the previous configuration stays.
async fn watch_config(
    path: PathBuf,
    state: Arc<AppState>,
    extra_excluded: Vec<String>,
    interval: Duration,
) {
    let mut last = std::fs::read(&path).ok();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let current = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "cannot read config; keeping the current one");
                continue;
            }
        };
        if last.as_deref() == Some(current.as_slice()) {
            continue;
        }
        let parsed = std::str::from_utf8(&current)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                crate::engine::parse_config(text, &path.display().to_string())
                    .map_err(|e| e.to_string())
            });
        last = Some(current);
        match parsed {
            Ok(config) => {
                state
                    .in_force
                    .set_file(with_exclusions(config, &extra_excluded));
                state.metrics.reload("config", true);
                tracing::info!(path = %path.display(), "configuration reloaded");
            }
            Err(error) => {
                state.metrics.reload("config", false);
                tracing::error!(%error, "new configuration rejected; keeping the previous one");
            }
        }
    }
}
