//! The listener: accepts browser connections, serves HTTP/1.1 and HTTP/2 with upgrades, and
//! shuts down gracefully.
//!
//! [`Server::run`] takes an already-bound listener's server and a shutdown future, so tests
//! run the whole gateway in-process on `127.0.0.1:0`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{Admin, AdminState, Watched};
use crate::apps::{self, App, PageHints, Runtime, SessionEnds};
use crate::audit::Audit;
use crate::auth::Auth;
use crate::client::ClientScript;
use crate::config::StoreBackend;
use crate::config::{Config, RawConfig, Sources, Upstream};
use crate::dispatch::Gateway;
use crate::lifecycle::{LogSubscriber, Publisher, Subscriber};
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::proxy::inject::Injector;
use crate::proxy::release::Releaser;
use crate::proxy::{upstream_client, Context, UpstreamClient};
use crate::routes::{self, RouteState};
use crate::store::redis::{RedisStore, Started};
use crate::store::{LoginLimits, Stores};
use crate::tracker::{EndReason, Tracker};
use crate::ws::traffic::Traffic;

/// How long shutdown waits, once every tab ended, for connections and relays to finish (the
/// pages' farewells to be sent): short, so idlegate exits within `shutdown.grace` plus 2
/// seconds whatever the clients do.
pub(super) const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);
mod connections;
mod reload;

use connections::{http_builder, Accepting};
pub use reload::{Reloaded, Reloader};

/// A server that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no upstream: give --upstream URL, or a command to start the app after --")]
    NoUpstream,
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("admin.listen: cannot listen on {addr}")]
    BindAdmin {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the listener's address")]
    LocalAddr(#[source] std::io::Error),
    #[error("cannot open the audit log (audit.path)")]
    Audit(#[source] std::io::Error),
    #[error(transparent)]
    Capacity(#[from] crate::capacity::CapacityError),
    #[error(transparent)]
    Store(#[from] crate::store::redis::StoreError),
}

/// What an embedder (or a test) adds to a server besides its config.
#[derive(Default)]
pub struct Extras {
    /// The Python runtime of an app idlegate started itself (launcher mode).
    pub app_runtime: Option<Arc<dyn Runtime>>,
    /// Subscribers to lifecycle events, besides logging and freeing the app's memory.
    pub subscribers: Vec<Arc<dyn Subscriber>>,
}

/// A bound gateway, ready to run.
pub struct Server {
    listener: TcpListener,
    gateway: Arc<Gateway>,
    limits: Arc<Limits>,
    /// The operators' listener, when `[admin]` sets one.
    admin: Option<Admin>,
    /// The audit log, when `audit.path` is set.
    audit: Option<Arc<Audit>>,
    /// What the page script is told about the app's pages (rebuilt on reload).
    hints: PageHints,
    /// The metrics of the admin listener, when `[admin]` sets one.
    metrics: Option<Arc<Metrics>>,
    /// The memory pressure monitor, when `capacity.memory_high` is set.
    capacity: Option<Arc<crate::capacity::Monitor>>,
    /// The Redis store, when `store.url` names one.
    store: Option<RedisStore>,
}

impl Server {
    /// Binds `config.listen` and builds the gateway. Must be called inside a tokio runtime.
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        Self::from_listener(listener, config)
    }

    /// Builds the gateway on a listener the caller bound.
    pub fn from_listener(listener: TcpListener, config: Config) -> Result<Self, StartError> {
        Self::with_app_runtime(listener, config, None)
    }

    /// Like [`Server::from_listener`], for an app idlegate started itself whose Python
    /// runtime it can reach: ended sessions are shut down in it at once, and it collects
    /// garbage after each reclaim.
    pub fn with_app_runtime(
        listener: TcpListener,
        config: Config,
        runtime: Option<Arc<dyn Runtime>>,
    ) -> Result<Self, StartError> {
        Self::with_extras(
            listener,
            config,
            Extras {
                app_runtime: runtime,
                ..Extras::default()
            },
        )
    }

    /// Builds the gateway on a listener the caller bound, with `extras`.
    pub fn with_extras(
        listener: TcpListener,
        config: Config,
        extras: Extras,
    ) -> Result<Self, StartError> {
        let upstream = config.upstream.clone().ok_or(StartError::NoUpstream)?;
        let config = Arc::new(config);
        let limits = Limits::new(&config);
        limits.start_sweeping();
        let client = upstream_client(config.proxy.connect_timeout);
        let app_runtime = extras.app_runtime.clone();
        let app = apps::kind(config.app.kind).app(&config, &upstream, extras.app_runtime);
        let mut subscribers = app_subscribers(&client, &upstream, &app, &limits);
        subscribers.extend(extras.subscribers);
        let (audit, metrics) = operators_subscribers(&config, &mut subscribers)?;
        let events = Publisher::new(subscribers);
        let (tracker, store) = track(&config, &events)?;
        let stores = tracker.stores().clone();
        let capacity =
            crate::capacity::start(&config.capacity, tracker.clone(), app_runtime.clone())?;
        let hints = app.page_hints();
        let script = ClientScript::new(&config, &hints);
        let texts = Arc::new(ArcSwap::from_pointee(config.browser.texts.clone()));
        let auth = Auth::start(config.clone(), stores, events.clone(), limits.clone());
        let route_state = Arc::new(RouteState {
            client: client.clone(),
            upstream: upstream.clone(),
            health_path: app.health_path(),
            base_path: config.app.base_path.clone(),
            tracker: tracker.clone(),
            script: ArcSwap::from_pointee(script.clone()),
            texts: texts.clone(),
            auth: auth.clone(),
            app: app.clone(),
        });
        let routes = routes::router(route_state.clone());
        let proxy = Arc::new(Context {
            injector: Injector::new(script.tag(), script.version(), limits.clone()),
            config: config.clone(),
            upstream,
            tracker: tracker.clone(),
            app,
            client,
            tasks: TaskTracker::new(),
            texts,
            traffic: Arc::new(Traffic::default()),
            sessions: Arc::default(),
        });
        let admin = match (&config.admin, &metrics) {
            (Some(admin_config), Some(metrics)) => {
                let watched = Watched {
                    events,
                    tracker,
                    auth: auth.clone(),
                    metrics: metrics.clone(),
                    app: app_runtime,
                };
                let state = AdminState::new(admin_config.clone(), watched);
                Some(bind_admin(state, proxy.traffic.clone())?)
            }
            _ => None,
        };
        let routes = (routes, route_state);
        let gateway = Arc::new(Gateway::new(proxy, auth, routes, metrics.clone()));
        Ok(Self {
            listener,
            gateway,
            limits,
            admin,
            audit,
            hints,
            metrics,
            capacity,
            store,
        })
    }

    /// What reloads this server's configuration from `sources`, which must be the sources it
    /// was started from; `started` is what they merged to then ([`Config::merge`]), to name
    /// the keys a reload changes. Call [`Reloader::reload`] on SIGHUP.
    pub fn reloader(&self, sources: Sources, started: RawConfig) -> Reloader {
        Reloader::new(
            sources,
            started,
            reload::Parts {
                limits: self.limits.clone(),
                gateway: self.gateway.clone(),
                hints: self.hints.clone(),
                admin_tokens: self.admin.as_ref().map(Admin::tokens),
                metrics: self.metrics.clone(),
                audit: self.audit.clone(),
                capacity: self.capacity.clone(),
            },
        )
    }

    /// The address browsers connect to.
    pub fn local_addr(&self) -> Result<SocketAddr, StartError> {
        self.listener.local_addr().map_err(StartError::LocalAddr)
    }

    /// The tab registry (for embedding and tests).
    pub fn tracker(&self) -> Tracker {
        self.gateway.proxy.tracker.clone()
    }

    /// The audit log, when `audit.path` is set (to reopen it on SIGHUP).
    pub fn audit(&self) -> Option<Arc<Audit>> {
        self.audit.clone()
    }

    /// The admin listener's address, when `[admin]` sets one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
            .as_ref()
            .and_then(|admin| admin.local_addr().ok())
    }

    /// The limits and their hit counters (for metrics and tests).
    pub fn limits(&self) -> Arc<Limits> {
        self.limits.clone()
    }

    /// Serves until `shutdown` resolves, then ends every tab session with the reason it
    /// resolves to (each browser is sent to the "session ended" page) and waits briefly for
    /// connections to finish.
    pub async fn run(self, shutdown: impl Future<Output = EndReason>) {
        self.serve_then_stop(shutdown, std::future::pending(), Duration::ZERO)
            .await;
    }

    /// Like [`Server::run`], but when `shutdown` resolves to [`EndReason::Shutdown`] open
    /// tabs keep working for `shutdown.grace` first: readiness fails at once and new tabs
    /// are refused, so a load balancer moves new people elsewhere while the people here
    /// finish. The grace ends early when no tab is left open, or when `hurry` resolves (a
    /// second signal).
    pub async fn run_graceful(
        self,
        shutdown: impl Future<Output = EndReason>,
        hurry: impl Future<Output = ()>,
    ) {
        let grace = self.gateway.proxy.config.shutdown_grace;
        self.serve_then_stop(shutdown, hurry, grace).await;
    }

    async fn serve_then_stop(
        self,
        shutdown: impl Future<Output = EndReason>,
        hurry: impl Future<Output = ()>,
        grace: Duration,
    ) {
        let Self {
            listener,
            gateway,
            limits,
            admin,
            audit: _,
            hints: _,
            metrics: _,
            capacity: _,
            store,
        } = self;
        let accept = Accepting {
            builder: Arc::new(http_builder(&gateway.proxy.config)),
            stop: CancellationToken::new(),
            connections: TaskTracker::new(),
            gateway,
            limits,
        };
        if let Some(store) = &store {
            // Tabs handed over by the process before this one are known before pages return.
            store.connected(STORE_START).await;
        }
        let admin = admin.map(|admin| tokio::spawn(admin.serve(accept.stop.clone())));
        tracing::info!(
            listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            upstream = %accept.gateway.proxy.upstream,
            "idlegate is serving"
        );
        let reason = accept.until(&listener, shutdown).await;
        if reason == EndReason::Shutdown {
            serve_the_grace(&accept, &listener, hurry, grace).await;
        }
        let Accepting {
            gateway,
            stop,
            connections,
            ..
        } = accept;
        drop(listener);
        // With a shared store, a stopping idlegate hands its tabs over instead of ending them.
        if reason == EndReason::Shutdown {
            gateway.proxy.tracker.hand_off_all();
        }
        let ended = gateway.proxy.tracker.end_all(reason);
        tracing::info!(tabs_ended = ended, "shutting down");
        stop.cancel();
        connections.close();
        gateway.proxy.tasks.close();
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            tokio::join!(connections.wait(), gateway.proxy.tasks.wait());
        })
        .await;
        if drained.is_err() {
            tracing::warn!("some connections were still open at shutdown");
        }
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        if let Some(store) = store {
            store.stop(STORE_STOP).await;
        }
    }
}

/// After SIGTERM, open tabs keep working for `grace` (sooner once none is open, or when
/// `hurry` resolves), while readiness fails and new tabs are refused.
async fn serve_the_grace(
    accept: &Accepting,
    listener: &TcpListener,
    hurry: impl Future<Output = ()>,
    grace: Duration,
) {
    let tracker = accept.gateway.proxy.tracker.clone();
    if grace.is_zero() || tracker.is_empty() {
        return;
    }
    tracker.drain();
    tracing::info!(
        grace_s = grace.as_secs_f64(),
        tabs = tracker.len(),
        "shutting down: open tabs keep working for the grace, new ones are refused"
    );
    let tabs_gone = async {
        while !tracker.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    accept
        .until(listener, async {
            tokio::select! {
                () = tokio::time::sleep(grace) => {}
                () = hurry => {}
                () = tabs_gone => {}
            }
        })
        .await;
}

/// How long a starting replica waits for Redis before it serves (it serves anyway then).
const STORE_START: Duration = Duration::from_secs(5);
/// How long a stopping replica waits for Redis to take its last changes.
const STORE_STOP: Duration = Duration::from_secs(3);

/// The stores `config` names: this process's memory, or Redis (with the commands other
/// replicas send, to [`follow`]).
fn open_store(config: &Config) -> Result<(Stores, Option<Started>), StartError> {
    match &config.store.backend {
        StoreBackend::Memory => Ok((Stores::memory(), None)),
        StoreBackend::Redis(url) => {
            let limits = LoginLimits {
                idle_timeout: config.tabs.login_idle_timeout,
                max_lifetime: config.tabs.login_max_lifetime,
            };
            let started = RedisStore::start(url, &config.store, limits)?;
            Ok((started.stores.clone(), Some(started)))
        }
    }
}

/// The tab registry on the stores `config` names, doing what other replicas ask of it.
fn track(config: &Config, events: &Publisher) -> Result<(Tracker, Option<RedisStore>), StartError> {
    let (stores, shared) = open_store(config)?;
    let tracker = Tracker::new(config.tabs.clone(), stores, events.clone());
    let store = shared.map(|shared| follow(shared, &tracker));
    Ok((tracker, store))
}

/// Does what other replicas ask of `tracker`, for as long as the store runs.
fn follow(started: Started, tracker: &Tracker) -> RedisStore {
    let Started {
        store,
        mut commands,
        ..
    } = started;
    let tracker = tracker.clone();
    tokio::spawn(async move {
        while let Some(command) = commands.recv().await {
            tracker.obey(command);
        }
    });
    store
}

/// The audit log (`audit.path`) and the metrics (with `[admin]`), added to `subscribers`
/// when configured.
type OperatorsSubscribers = (Option<Arc<Audit>>, Option<Arc<Metrics>>);

/// The subscribers every gateway has: the log, and the work for the app after a tab ends
/// (releasing its uploads, ending its session there), on bounded queues counted in `limits`.
fn app_subscribers(
    client: &UpstreamClient,
    upstream: &Upstream,
    app: &Arc<dyn App>,
    limits: &Arc<Limits>,
) -> Vec<Arc<dyn Subscriber>> {
    vec![
        Arc::new(LogSubscriber),
        Arc::new(Releaser::start(
            client.clone(),
            upstream.clone(),
            limits.clone(),
        )),
        Arc::new(SessionEnds::start(app.clone(), limits.clone())),
    ]
}

fn operators_subscribers(
    config: &Config,
    subscribers: &mut Vec<Arc<dyn Subscriber>>,
) -> Result<OperatorsSubscribers, StartError> {
    let audit = config
        .audit
        .as_ref()
        .map(Audit::start)
        .transpose()
        .map_err(StartError::Audit)?;
    if let Some(audit) = &audit {
        subscribers.push(audit.clone());
    }
    let metrics = config.admin.as_ref().map(|_| Metrics::new());
    if let Some(metrics) = &metrics {
        subscribers.push(metrics.clone());
    }
    Ok((audit, metrics))
}

/// Binds the admin listener; its metrics read the tracker, the limits, the relays' `traffic`
/// and the app's memory (`app`, in launcher mode) from now on.
fn bind_admin(state: AdminState, traffic: Arc<Traffic>) -> Result<Admin, StartError> {
    let limits = state.auth.bounds.clone();
    state
        .metrics
        .attach(state.tracker.clone(), limits, traffic, state.app.clone());
    let listen = state.config.listen;
    let admin = Admin::bind(state).map_err(|source| StartError::BindAdmin {
        addr: listen,
        source,
    })?;
    if let Ok(addr) = admin.local_addr() {
        tracing::info!(admin = %addr, "the admin listener is serving (API, OpenAPI document, metrics)");
    }
    Ok(admin)
}
