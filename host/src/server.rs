//! `postern serve`: assembles the pipeline, the spool, the listeners (SMTP,
//! optional LMTP, HTTP) and the metrics; reloads on request (SIGHUP) and
//! drains on shutdown (SIGTERM).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, watch};

use crate::config::{Config, ConfigError};
use crate::delivery::{Spool, SpoolError};
use crate::ingress::admin::{self, AdminState};
use crate::ingress::http::{self, HttpState};
use crate::ingress::limits::ConnectionLimits;
use crate::ingress::session::{Protocol, SessionLimits, Shared};
use crate::ingress::smtp;
use crate::ingress::tls::{self, TlsError};
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::policy::registry::{Registry, RegistryConfig, RegistryError};
use crate::policy::{FixedPolicies, PolicySet, PolicySource, builtin};
use crate::runtime::{EngineOptions, Runtime};
use crate::setup::{self, Overrides, SetupError};
use crate::state::StateStore;

/// Why the server cannot start or reload.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The config file is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The WebAssembly runtime or the built-in policies.
    #[error("policies: {0}")]
    Policies(String),
    /// DNS or the workspace directory.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The spool cannot be opened.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// STARTTLS cannot be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The policy deployment directory cannot be used.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A listener cannot be bound.
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        /// `SMTP`, `LMTP` or `HTTP`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Where the configuration comes from.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// The config file; `None` runs the embedded default.
    pub config: Option<PathBuf>,
    /// Overrides the spool directory (`--spool-dir`).
    pub spool_dir: Option<PathBuf>,
    /// Overrides `[server] smtp_listen`.
    pub smtp_listen: Option<SocketAddr>,
    /// Overrides `[server] lmtp_listen`.
    pub lmtp_listen: Option<SocketAddr>,
    /// Overrides `[server] http_listen`.
    pub http_listen: Option<SocketAddr>,
}

/// What a reload rebuilds.
struct Live {
    config: Config,
    _watcher: Option<notify::RecommendedWatcher>,
}

/// The policy source, the deployment directory behind it (if any) and its
/// watcher (alive as long as the server).
type Policies = (Arc<dyn PolicySource>, Option<Arc<Registry>>, Option<notify::RecommendedWatcher>);

/// Where the policies come from: the built-ins, or the deployment directory.
fn policy_source(config: &Config, runtime: &Arc<Runtime>, builtins: &PolicySet) -> Result<Policies, ServeError> {
    let Some(dir) = &config.policies.dir else {
        return Ok((Arc::new(FixedPolicies(Arc::new(builtins.clone()))), None, None));
    };
    let registry =
        Registry::open(runtime.clone(), builtins.clone(), RegistryConfig::from_config(config, config.resolve(dir)))?;
    let watcher = registry.watch()?;
    Ok((registry.clone(), Some(registry), Some(watcher)))
}

/// A running server.
pub struct Server {
    /// SMTP address (the real port when the config said 0).
    pub smtp: SocketAddr,
    /// LMTP address, when configured.
    pub lmtp: Option<SocketAddr>,
    /// HTTP address.
    pub http: SocketAddr,
    /// Admin API address, when a token is configured.
    pub admin: Option<SocketAddr>,
    /// Spool root.
    pub spool: PathBuf,
    options: ServeOptions,
    runtime: Arc<Runtime>,
    state: Arc<dyn StateStore>,
    pipeline: Arc<ArcSwap<Pipeline>>,
    source: Arc<dyn PolicySource>,
    registry: Option<Arc<Registry>>,
    _policy_watcher: Option<notify::RecommendedWatcher>,
    live: Mutex<Live>,
    caps: Arc<ConnectionLimits>,
    drain: Duration,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("smtp", &self.smtp).field("http", &self.http).finish_non_exhaustive()
    }
}

/// Serves an HTTP API until the server drains.
fn spawn_api(
    what: &'static str,
    listener: TcpListener,
    routes: axum::Router,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        if let Err(e) = http::serve(listener, routes, stop).await {
            tracing::error!(error = %e, "{what} stopped");
        }
    })
}

/// Reads the configuration: the file, or the embedded default.
pub fn load_config(options: &ServeOptions) -> Result<Config, ConfigError> {
    let mut config = match &options.config {
        Some(path) => Config::load(path)?,
        None => setup::embedded_config(),
    };
    let srv = &mut config.server;
    srv.smtp_listen = options.smtp_listen.unwrap_or(srv.smtp_listen);
    srv.lmtp_listen = options.lmtp_listen.or(srv.lmtp_listen);
    srv.http_listen = options.http_listen.unwrap_or(srv.http_listen);
    Ok(config)
}

fn overrides(options: &ServeOptions) -> Overrides {
    Overrides { example: options.config.is_none(), ..Overrides::default() }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { what, addr, source })
}

impl Server {
    /// Starts listening. Must run inside a multi-threaded tokio runtime.
    pub async fn start(options: ServeOptions) -> Result<Server, ServeError> {
        let runtime = Arc::new(
            Runtime::new(&EngineOptions::default()).map_err(|e| ServeError::Policies(format!("runtime: {e}")))?,
        );
        let rt = runtime.clone();
        let policies = tokio::task::spawn_blocking(move || builtin::load_defaults(&rt))
            .await
            .map_err(|e| ServeError::Policies(e.to_string()))?
            .map_err(|e| ServeError::Policies(e.to_string()))?;
        Self::start_with(options, runtime, policies).await
    }

    /// [`Server::start`] with a runtime and policies already loaded (tests
    /// share one compile across servers).
    pub async fn start_with(
        options: ServeOptions,
        runtime: Arc<Runtime>,
        policies: PolicySet,
    ) -> Result<Server, ServeError> {
        let config = load_config(&options)?;
        let state = setup::memory_state();
        // Loading a deployment compiles: off the executor.
        let (cfg, rt, builtins) = (config.clone(), runtime.clone(), policies.clone());
        let (source, registry, policy_watcher) =
            tokio::task::spawn_blocking(move || policy_source(&cfg, &rt, &builtins))
                .await
                .map_err(|e| ServeError::Policies(e.to_string()))??;
        let (pipeline, watcher) = setup::build_pipeline_with(
            Some(&config),
            &overrides(&options),
            runtime.clone(),
            source.clone(),
            state.clone(),
            true,
        )
        .await?;
        let pipeline = Arc::new(ArcSwap::from_pointee(pipeline));

        let srv = &config.server;
        let spool_root = options.spool_dir.clone().unwrap_or_else(|| config.spool_dir());
        let spool = Spool::open(&spool_root, &srv.hostname)?;
        let acceptor = match (&srv.tls_cert, &srv.tls_key) {
            (Some(cert), Some(key)) => tls::from_pem(&config.resolve(cert), &config.resolve(key))?,
            _ => tls::self_signed(&srv.hostname)?,
        };
        let metrics = Arc::new(Metrics::new());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            pipeline: pipeline.clone(),
            spool,
            metrics: metrics.clone(),
            hostname: srv.hostname.clone(),
            limits: SessionLimits::from_config(srv),
            tls: Some(acceptor),
            shutdown: shutdown_rx.clone(),
        });
        let caps = ConnectionLimits::new(srv.max_connections, srv.max_connections_per_ip);

        let smtp_listener = bind("SMTP", srv.smtp_listen).await?;
        let lmtp_listener = match srv.lmtp_listen {
            Some(addr) => Some(bind("LMTP", addr).await?),
            None => None,
        };
        let http_listener = bind("HTTP", srv.http_listen).await?;
        let addr = |l: &TcpListener, what, configured| {
            l.local_addr().map_err(|source| ServeError::Bind { what, addr: configured, source })
        };
        let smtp_addr = addr(&smtp_listener, "SMTP", srv.smtp_listen)?;
        let lmtp_addr = match (&lmtp_listener, srv.lmtp_listen) {
            (Some(l), Some(configured)) => Some(addr(l, "LMTP", configured)?),
            _ => None,
        };
        let http_addr = addr(&http_listener, "HTTP", srv.http_listen)?;
        let admin_listener = match &config.admin.token {
            Some(_) => Some(bind("admin", config.admin.listen).await?),
            None => None,
        };
        let admin_addr = match &admin_listener {
            Some(l) => Some(addr(l, "admin", config.admin.listen)?),
            None => None,
        };

        let mut tasks =
            vec![tokio::spawn(smtp::accept_loop(smtp_listener, Protocol::Smtp, shared.clone(), caps.clone()))];
        if let Some(l) = lmtp_listener {
            tasks.push(tokio::spawn(smtp::accept_loop(l, Protocol::Lmtp, shared.clone(), caps.clone())));
        }
        let http_state = HttpState {
            pipeline: pipeline.clone(),
            metrics,
            max_body_bytes: usize::try_from(srv.max_message_bytes).unwrap_or(usize::MAX),
        };
        if let (Some(listener), Some(token)) = (admin_listener, &config.admin.token) {
            let state =
                AdminState { token: Arc::from(token.trim()), source: source.clone(), registry: registry.clone() };
            tasks.push(spawn_api("admin API", listener, admin::router(state), shutdown_rx.clone()));
        }
        tasks.push(spawn_api("HTTP API", http_listener, http::router(http_state), shutdown_rx));

        Ok(Server {
            smtp: smtp_addr,
            lmtp: lmtp_addr,
            http: http_addr,
            admin: admin_addr,
            spool: spool_root,
            drain: Duration::from_secs(config.server.drain_timeout_secs),
            options,
            runtime,
            state,
            pipeline,
            source,
            registry,
            _policy_watcher: policy_watcher,
            live: Mutex::new(Live { config, _watcher: watcher }),
            caps,
            shutdown,
            tasks,
        })
    }

    /// Re-reads the config file, the workspace directory and the policies
    /// and swaps the pipeline; messages in flight finish on the old one. On
    /// error the running pipeline stays. Listener, spool and limit changes
    /// need a restart.
    pub async fn reload(&self) -> Result<(), ServeError> {
        let mut live = self.live.lock().await;
        let config = load_config(&self.options)?;
        if let Some(registry) = self.registry.clone() {
            tokio::task::spawn_blocking(move || registry.reload_all())
                .await
                .map_err(|e| ServeError::Policies(e.to_string()))??;
        }
        let (pipeline, watcher) = setup::build_pipeline_with(
            Some(&config),
            &overrides(&self.options),
            self.runtime.clone(),
            self.source.clone(),
            self.state.clone(),
            true,
        )
        .await?;
        if config.server != live.config.server
            || config.policies != live.config.policies
            || config.admin != live.config.admin
        {
            tracing::warn!(
                "[server], [policies] or [admin] changed: listeners, spool, limits, the policy directory and the admin API take effect at the next restart"
            );
        }
        self.pipeline.store(Arc::new(pipeline));
        *live = Live { config, _watcher: watcher };
        tracing::info!("configuration, directory and policies reloaded");
        Ok(())
    }

    /// Open SMTP/LMTP connections.
    pub fn open_connections(&self) -> usize {
        self.caps.open()
    }

    /// Stops accepting, lets open conversations finish (idle ones are told
    /// `421` and closed) for at most the drain time-out; true when every
    /// conversation ended in time.
    pub async fn shutdown(self) -> bool {
        let _ = self.shutdown.send(true);
        let drained = self.caps.drained(self.drain).await;
        for task in self.tasks {
            task.abort();
        }
        drained
    }
}

/// Runs the server until SIGTERM or SIGINT; SIGHUP reloads. Prints where
/// it listens once ready.
pub async fn run(options: ServeOptions) -> Result<(), ServeError> {
    use tokio::signal::unix::{SignalKind, signal};
    let sig = |kind| signal(kind).map_err(|e| ServeError::Policies(format!("signal handler: {e}")));
    let (mut term, mut int, mut hup) =
        (sig(SignalKind::terminate())?, sig(SignalKind::interrupt())?, sig(SignalKind::hangup())?);
    let server = Server::start(options.clone()).await?;
    print_ready(&server, options.config.as_deref());
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                if let Err(e) = server.reload().await {
                    tracing::error!(error = %e, "reload failed; still running the previous configuration");
                }
            }
        }
    }
    tracing::info!(open = server.open_connections(), "shutting down: draining open sessions");
    if !server.shutdown().await {
        tracing::warn!("drain time-out: closing the remaining sessions");
    }
    Ok(())
}

fn print_ready(server: &Server, config: Option<&Path>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let source = match config {
        Some(path) => format!("config {}", path.display()),
        None => "embedded default (example directory and zone, in-memory state)".into(),
    };
    let _ = writeln!(out, "postern: serving with {source}");
    let _ = writeln!(out, "postern: SMTP listening on {}", server.smtp);
    if let Some(lmtp) = server.lmtp {
        let _ = writeln!(out, "postern: LMTP listening on {lmtp}");
    }
    let _ = writeln!(out, "postern: HTTP listening on {}", server.http);
    if let Some(admin) = server.admin {
        let _ = writeln!(out, "postern: admin API listening on {admin}");
    }
    let _ = writeln!(out, "postern: spool {}", server.spool.display());
    let _ = out.flush();
}
