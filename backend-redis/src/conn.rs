//! Connections for the three modes behind one [`ConnectionLike`] type: a reconnecting
//! [`ConnectionManager`] (standalone), a cluster connection, and a Sentinel-resolved manager that
//! finds the master again after a failover.
//!
//! A connection whose server died while it sat idle is still there until something is sent on it,
//! and redis-rs fails that first command (while it reconnects). [`Managed`] hides this: a command
//! that may safely run twice is sent again on the new connection, and one that may not is preceded
//! by a `PING` when the connection has been idle for [`RedisConfig::health_check_interval`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use cache_core::{Error, ErrorKind, Result};
use futures::StreamExt;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, Cmd, ConnectionAddr, ConnectionInfo,
    IntoConnectionInfo, Pipeline, ProtocolVersion, RedisConnectionInfo, RedisError, RedisFuture,
    ServerErrorKind, TlsCertificates, Value,
};
use std::time::Instant;

use crate::config::{NodeAddr, RedisConfig, RedisMode, TlsConfig};
use crate::error::map_redis_error;

/// One connection handle of any mode; cloning is cheap and clones share the connection.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(Managed),
    // The cluster client reconnects, follows MOVED and resends on its own; see `Cluster`.
    Cluster(Cluster),
    Sentinel(SentinelConn),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => Box::pin(c.send(cmd)),
            Conn::Cluster(c) => Box::pin(c.send(cmd)),
            Conn::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => Box::pin(c.send_part(pipeline, offset, count)),
            Conn::Cluster(c) => Box::pin(c.send_part(pipeline, offset, count)),
            Conn::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.manager.get_db(),
            Conn::Cluster(c) => c.current().get_db(),
            Conn::Sentinel(c) => c.get_db(),
        }
    }
}

/// A [`ConnectionManager`] that survives a dead idle connection (see the module docs).
#[derive(Clone)]
pub(crate) struct Managed {
    manager: ConnectionManager,
    health: Arc<Health>,
}

/// When the connection last answered, and how long it may idle before it is checked.
struct Health {
    born: Instant,
    /// Milliseconds after `born`.
    last_answer: AtomicU64,
    check_after: Duration,
    /// The whole of a call, its check and its second attempt included.
    budget: Duration,
}

impl Health {
    fn now(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn idle_too_long(&self, now: u64) -> bool {
        let idle = now.saturating_sub(self.last_answer.load(Ordering::Relaxed));
        u128::from(idle) > self.check_after.as_millis()
    }

    fn answered(&self, now: u64) {
        // Read first: a store on every command would bounce the cache line between threads.
        if self.last_answer.load(Ordering::Relaxed) != now {
            self.last_answer.store(now, Ordering::Relaxed);
        }
    }
}

/// What [`Managed`] sends: one command or part of a pipeline.
pub(crate) trait Request {
    type Reply;

    fn send<'a>(&'a self, manager: &'a mut ConnectionManager) -> RedisFuture<'a, Self::Reply>;

    /// Whether running it twice gives the same state and the same answer as running it once.
    fn runs_safely_twice(&self) -> bool;
}

impl Request for Cmd {
    type Reply = Value;

    fn send<'a>(&'a self, manager: &'a mut ConnectionManager) -> RedisFuture<'a, Value> {
        manager.req_packed_command(self)
    }

    fn runs_safely_twice(&self) -> bool {
        idempotent(self)
    }
}

struct PipelinePart<'a> {
    pipeline: &'a Pipeline,
    offset: usize,
    count: usize,
}

impl Request for PipelinePart<'_> {
    type Reply = Vec<Value>;

    fn send<'a>(&'a self, manager: &'a mut ConnectionManager) -> RedisFuture<'a, Vec<Value>> {
        manager.req_packed_commands(self.pipeline, self.offset, self.count)
    }

    fn runs_safely_twice(&self) -> bool {
        self.pipeline.cmd_iter().all(idempotent)
    }
}

/// Commands whose second run changes nothing and answers as the first did: reads, and writes that
/// set a value outright. Anything else (`INCR`, `DEL`, `SET NX`, scripts, ...) is sent once.
fn idempotent(cmd: &Cmd) -> bool {
    let mut args = cmd.args_iter().map(|arg| match arg {
        redis::Arg::Simple(bytes) => bytes,
        _ => b"",
    });
    let Some(name) = args.next() else {
        return false;
    };
    const READS: &[&[u8]] = &[
        b"PING",
        b"GET",
        b"MGET",
        b"EXISTS",
        b"PTTL",
        b"TTL",
        b"SCAN",
        b"INFO",
        b"TYPE",
        b"STRLEN",
        b"HGET",
        b"HMGET",
        b"HGETALL",
        b"HLEN",
        b"HEXISTS",
        b"LRANGE",
        b"LLEN",
        b"SMEMBERS",
        b"SISMEMBER",
        b"SCARD",
        b"ZSCORE",
        b"ZRANGE",
        b"ZREVRANGE",
        b"ZCARD",
        b"ZRANK",
        b"ZREVRANK",
        b"ZCOUNT",
        b"DBSIZE",
        b"PEXPIRE",
        b"MSET",
    ];
    if READS.iter().any(|read| name.eq_ignore_ascii_case(read)) {
        return true;
    }
    // A plain SET; with NX its answer would change, and with GET the value it returns.
    name.eq_ignore_ascii_case(b"SET")
        && args
            .skip(2)
            .all(|a| !a.eq_ignore_ascii_case(b"NX") && !a.eq_ignore_ascii_case(b"GET"))
}

/// Whether `err` says the connection was gone (rather than slow, or the command refused).
fn connection_gone(err: &RedisError) -> bool {
    err.is_connection_dropped() || err.is_connection_refusal()
}

impl Managed {
    fn new(manager: ConnectionManager, config: &RedisConfig) -> Self {
        Managed {
            manager,
            health: Arc::new(Health {
                born: Instant::now(),
                last_answer: AtomicU64::new(0),
                check_after: config.health_check_interval,
                budget: config.command_timeout,
            }),
        }
    }

    async fn send_part(
        &mut self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<Value>> {
        let part = PipelinePart {
            pipeline,
            offset,
            count,
        };
        self.send(&part).await
    }

    /// Sends `request`; when the connection turns out to be gone, the manager reconnects and the
    /// request goes again on the new connection, if that is safe, within the command timeout.
    pub(crate) async fn send<R: Request>(&mut self, request: &R) -> redis::RedisResult<R::Reply> {
        send_managed(&self.health, &mut self.manager, request).await
    }

    /// [`send`](Self::send) from a shared handle: only the manager is cloned (one reference count),
    /// as a caller holding its own manager would.
    pub(crate) async fn send_shared<R: Request>(
        &self,
        request: &R,
    ) -> redis::RedisResult<R::Reply> {
        let mut manager = self.manager.clone();
        send_managed(&self.health, &mut manager, request).await
    }
}

async fn send_managed<R: Request>(
    health: &Health,
    manager: &mut ConnectionManager,
    request: &R,
) -> redis::RedisResult<R::Reply> {
    let started = health.now();
    // Whether the request may run twice is only asked off the hot path: after an idle spell or
    // a failure.
    let idle = health.idle_too_long(started);
    if idle && !request.runs_safely_twice() {
        return within_budget(health, manager, started, request, true).await;
    }
    let result = request.send(manager).await;
    match &result {
        Ok(_) => health.answered(started),
        Err(e) if connection_gone(e) && request.runs_safely_twice() => {
            return within_budget(health, manager, started, request, false).await;
        }
        Err(_) => {}
    }
    result
}

/// The slow path: an optional `PING` (sent twice if the first finds the connection gone), then
/// the request, all within what is left of the budget.
async fn within_budget<R: Request>(
    health: &Health,
    manager: &mut ConnectionManager,
    started: u64,
    request: &R,
    check_first: bool,
) -> redis::RedisResult<R::Reply> {
    let spent = Duration::from_millis(health.now().saturating_sub(started));
    let left = health.budget.saturating_sub(spent);
    let attempt = async {
        if check_first {
            let ping = redis::cmd("PING");
            if let Err(e) = ping.send(manager).await {
                if !connection_gone(&e) {
                    return Err(e);
                }
                tracing::debug!("redis connection was gone while idle; reconnecting");
                ping.send(manager).await?;
            }
        }
        request.send(manager).await
    };
    let result = match tokio::time::timeout(left, attempt).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()),
    };
    if result.is_ok() {
        health.answered(health.now());
    }
    result
}

/// Installs the ring crypto provider for rustls once; redis' rustls feature brings none.
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only if the application already installed one, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn redis_settings(config: &RedisConfig, db: i64) -> RedisConnectionInfo {
    let mut settings = RedisConnectionInfo::default().set_db(db);
    if let Some(user) = &config.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &config.password {
        settings = settings.set_password(password);
    }
    settings
}

/// A client for one Sentinel, with the Sentinels' own credentials if they have any, over TLS if
/// `sentinel_tls` is on (trusting and presenting what `tls_config` names, as for the master).
fn sentinel_client(config: &RedisConfig, sentinel: &NodeAddr) -> redis::RedisResult<Client> {
    let mut settings = RedisConnectionInfo::default();
    if let Some(user) = &config.sentinel_username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &config.sentinel_password {
        settings = settings.set_password(password);
    }
    let info = address(sentinel, config.sentinel_tls)
        .into_connection_info()?
        .set_redis_settings(settings);
    match certificates(&config.tls_config, config.sentinel_tls) {
        Some(certs) => Client::build_with_tls(info, certs),
        None => Client::open(info),
    }
}

/// The address of `node`, over TLS if `tls`. Every connection's address is made here, so this is
/// where rustls gets its crypto provider.
fn address(node: &NodeAddr, tls: bool) -> ConnectionAddr {
    if tls {
        install_crypto_provider();
        ConnectionAddr::TcpTls {
            host: node.host.clone(),
            port: node.port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(node.host.clone(), node.port)
    }
}

fn node_info(config: &RedisConfig, node: &NodeAddr, db: i64) -> Result<ConnectionInfo> {
    let info = address(node, config.tls)
        .into_connection_info()
        .map_err(|e| map_redis_error(e, "connect", None))?;
    Ok(info.set_redis_settings(redis_settings(config, db)))
}

/// The custom CA and client certificate of `tls` for a connection that uses TLS (`on`), if it names
/// any (else the system roots serve).
fn certificates(tls: &TlsConfig, on: bool) -> Option<TlsCertificates> {
    if !on || (tls.ca_cert_pem.is_none() && tls.client_cert_pem.is_none()) {
        return None;
    }
    Some(TlsCertificates {
        client_tls: tls
            .client_cert_pem
            .as_ref()
            .map(|(cert, key)| ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
        root_cert: tls.ca_cert_pem.clone(),
    })
}

/// A client for one node, with the config's credentials, TLS settings and `db`.
pub(crate) fn client_for(config: &RedisConfig, node: &NodeAddr, db: i64) -> Result<Client> {
    client_speaking(config, node, db, ProtocolVersion::RESP2)
}

/// [`client_for`], speaking `protocol` (RESP3 for server pushes such as tracking invalidations).
pub(crate) fn client_speaking(
    config: &RedisConfig,
    node: &NodeAddr,
    db: i64,
    protocol: ProtocolVersion,
) -> Result<Client> {
    let mut info = node_info(config, node, db)?;
    let settings = info.redis_settings().clone().set_protocol(protocol);
    info = info.set_redis_settings(settings);
    let client = match certificates(&config.tls_config, config.tls) {
        Some(certs) => Client::build_with_tls(info, certs),
        None => Client::open(info),
    };
    client.map_err(|e| {
        Error::new(
            ErrorKind::Config,
            format!(
                "cannot use the TLS settings for {node}: {}",
                e.detail().unwrap_or("")
            ),
        )
        .with_source(e)
    })
}

/// The reconnect policy, connect timeout and response timeout (see `RedisStore::timed` for how
/// `command_timeout` also bounds waiting for a reconnect).
fn manager_config(config: &RedisConfig) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.command_timeout))
        .set_number_of_retries(config.retry.max_retries)
        .set_min_delay(config.retry.min_delay)
        .set_max_delay(config.retry.max_delay)
        .set_exponent_base(2.0)
}

/// The connect and response timeouts of a plain (not reconnecting) connection.
pub(crate) fn connection_config(config: &RedisConfig) -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.command_timeout))
}

/// Opens a reconnecting manager. One plain connection is tried first, because the manager retries
/// every failure, a refused password included: an error that retrying cannot fix, such as wrong
/// credentials, is returned at once, without sending the server more failed logins.
pub(crate) async fn open_manager(
    client: Client,
    config: &RedisConfig,
    what: &str,
) -> Result<Managed> {
    if let Err(e) = client
        .get_multiplexed_async_connection_with_config(&connection_config(config))
        .await
    {
        let err = map_redis_error(e, what, None);
        if !err.is_retryable() {
            return Err(err);
        }
    }
    let manager = ConnectionManager::new_with_config(client, manager_config(config))
        .await
        .map_err(|e| map_redis_error(e, what, None))?;
    Ok(Managed::new(manager, config))
}

/// Connects in the configured mode, failing within [`RedisConfig::retry`] if the server is
/// unreachable, and at once if it refuses the credentials.
pub(crate) async fn connect(config: &RedisConfig) -> Result<Conn> {
    config.validate()?;
    match &config.mode {
        RedisMode::Standalone(node) => {
            let client = client_for(config, node, config.db)?;
            let manager = open_manager(client, config, &format!("connect to {node}")).await?;
            Ok(Conn::Single(manager))
        }
        RedisMode::Cluster(_) => Ok(Conn::Cluster(Cluster::connect(config).await?)),
        RedisMode::Sentinel { .. } => Ok(Conn::Sentinel(SentinelConn::connect(config).await?)),
    }
}

/// A Cluster connection that is replaced when it stops answering.
///
/// After a failover, redis-rs 1.8's cluster client can begin a slot refresh that never completes
/// (its recovery state stops polling the requests it waits on), and from then on every command
/// times out, although the cluster is healthy. A client connected afresh reads the new slot map
/// and works. So a timeout or a lost node makes this handle connect a new client in the
/// background, at most once per `command_timeout`, and swap it in; the call that timed out
/// returns its retryable error, and the calls after it use the new client.
#[derive(Clone)]
pub(crate) struct Cluster(Arc<ClusterState>);

struct ClusterState {
    config: RedisConfig,
    current: RwLock<ClusterConnection>,
    /// Set while a replacement is being connected.
    replacing: std::sync::atomic::AtomicBool,
    /// When the last replacement began.
    last_replaced: std::sync::Mutex<Option<Instant>>,
}

impl Cluster {
    async fn connect(config: &RedisConfig) -> Result<Cluster> {
        let conn = open_cluster(config).await?;
        Ok(Cluster(Arc::new(ClusterState {
            config: config.clone(),
            current: RwLock::new(conn),
            replacing: std::sync::atomic::AtomicBool::new(false),
            last_replaced: std::sync::Mutex::new(None),
        })))
    }

    /// The client in use.
    pub(crate) fn current(&self) -> ClusterConnection {
        self.0.current.read().expect("not poisoned").clone()
    }

    async fn send(&self, cmd: &Cmd) -> redis::RedisResult<Value> {
        let result = self.current().req_packed_command(cmd).await;
        self.check(&result);
        result
    }

    async fn send_part(
        &self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<Value>> {
        let result = self
            .current()
            .req_packed_commands(pipeline, offset, count)
            .await;
        self.check(&result);
        result
    }

    /// Starts a replacement if `result` says the client may be stuck.
    fn check<T>(&self, result: &redis::RedisResult<T>) {
        let Err(e) = result else { return };
        let stuck = e.is_timeout()
            || e.is_io_error()
            || e.is_connection_dropped()
            || e.kind() == redis::ErrorKind::ClusterConnectionNotFound;
        if stuck {
            self.replace_soon();
        }
    }

    /// Connects a new client in the background and swaps it in, unless one was begun within the
    /// last `command_timeout`.
    pub(crate) fn replace_soon(&self) {
        let state = &self.0;
        {
            let mut last = state.last_replaced.lock().expect("not poisoned");
            if last.is_some_and(|at| at.elapsed() < state.config.command_timeout) {
                return;
            }
            if state.replacing.swap(true, Ordering::AcqRel) {
                return;
            }
            *last = Some(Instant::now());
        }
        let weak = Arc::downgrade(state);
        tokio::spawn(async move {
            let Some(state) = weak.upgrade() else { return };
            match open_cluster(&state.config).await {
                Ok(conn) => {
                    tracing::info!("replaced the Redis Cluster client after it stopped answering");
                    *state.current.write().expect("not poisoned") = conn;
                }
                Err(e) => tracing::warn!(error = %e, "could not replace the Redis Cluster client"),
            }
            state.replacing.store(false, Ordering::Release);
        });
    }
}

/// A new cluster client connected to the configured seeds.
async fn open_cluster(config: &RedisConfig) -> Result<ClusterConnection> {
    let RedisMode::Cluster(nodes) = &config.mode else {
        unreachable!("a Cluster config")
    };
    let infos = nodes
        .iter()
        .map(|n| node_info(config, n, 0))
        .collect::<Result<Vec<_>>>()?;
    let retry = config.retry;
    let mut builder = ClusterClientBuilder::new(infos)
        .connection_timeout(config.connect_timeout)
        .response_timeout(config.command_timeout)
        .retries(retry.max_retries as u32)
        .min_retry_wait(retry.min_delay.as_millis() as u64)
        .max_retry_wait(retry.max_delay.as_millis() as u64);
    if let Some(certs) = certificates(&config.tls_config, config.tls) {
        builder = builder.certs(certs);
    }
    let client = builder
        .build()
        .map_err(|e| map_redis_error(e, "configure the cluster client", None))?;
    client
        .get_async_connection()
        .await
        .map_err(|e| map_redis_error(e, "connect to the cluster", None))
}

/// A master found through Sentinel. Connection errors and `READONLY` replies (the old master was
/// demoted) make it ask the Sentinels again and switch to the new master.
#[derive(Clone)]
pub(crate) struct SentinelConn(Arc<SentinelState>);

struct SentinelState {
    config: RedisConfig,
    current: RwLock<Current>,
    resolving: tokio::sync::Mutex<Instant>,
}

struct Current {
    generation: u64,
    manager: Managed,
    addr: NodeAddr,
}

/// Least time between two Sentinel look-ups, so a dead master does not flood the Sentinels.
const RESOLVE_INTERVAL: Duration = Duration::from_millis(100);

impl SentinelConn {
    pub(crate) async fn connect(config: &RedisConfig) -> Result<Self> {
        let addr = resolve_master(config).await?;
        let client = client_for(config, &addr, config.db)?;
        let manager = open_manager(client, config, &format!("connect to master {addr}")).await?;
        let state = Arc::new(SentinelState {
            config: config.clone(),
            current: RwLock::new(Current {
                generation: 0,
                manager,
                addr,
            }),
            resolving: tokio::sync::Mutex::new(Instant::now()),
        });
        tokio::spawn(watch_switches(Arc::downgrade(&state)));
        Ok(SentinelConn(state))
    }

    /// The master's address as last resolved.
    pub(crate) fn master(&self) -> NodeAddr {
        self.0.current.read().expect("not poisoned").addr.clone()
    }

    fn snapshot(&self) -> (u64, Managed) {
        let current = self.0.current.read().expect("not poisoned");
        (current.generation, current.manager.clone())
    }

    fn on_error(&self, generation: u64, err: &RedisError) {
        let stale = err.is_io_error()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_timeout()
            || matches!(
                err.kind(),
                redis::ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
            );
        if stale {
            self.spawn_re_resolve(generation);
        }
    }

    /// Server errors arrive as values: `READONLY` means the master was demoted by a failover.
    fn on_reply(&self, generation: u64, value: &Value) {
        if let Value::ServerError(e) = value {
            if matches!(
                e.kind(),
                Some(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
            ) {
                self.spawn_re_resolve(generation);
            }
        }
    }

    fn spawn_re_resolve(&self, generation: u64) {
        let state = self.0.clone();
        tokio::spawn(async move { state.re_resolve(generation).await });
    }

    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let (generation, mut manager) = self.snapshot();
        Box::pin(async move {
            let result = manager.send(cmd).await;
            match &result {
                Err(e) => self.on_error(generation, e),
                Ok(value) => self.on_reply(generation, value),
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let (generation, mut manager) = self.snapshot();
        Box::pin(async move {
            let result = manager.send_part(pipeline, offset, count).await;
            match &result {
                Err(e) => self.on_error(generation, e),
                Ok(values) => values.iter().for_each(|v| self.on_reply(generation, v)),
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.0.config.db
    }
}

impl SentinelState {
    async fn re_resolve(&self, generation: u64) {
        let mut last = self.resolving.lock().await;
        if self.current.read().expect("not poisoned").generation != generation {
            return; // someone else already switched
        }
        let since = last.elapsed();
        if since < RESOLVE_INTERVAL {
            tokio::time::sleep(RESOLVE_INTERVAL - since).await;
        }
        *last = Instant::now();
        let Ok(addr) = resolve_master(&self.config).await else {
            return; // the next failing command tries again
        };
        self.install(addr);
    }

    /// Points every later command at the master at `addr`.
    fn install(&self, addr: NodeAddr) {
        let Ok(client) = client_for(&self.config, &addr, self.config.db) else {
            return;
        };
        let Ok(manager) =
            ConnectionManager::new_lazy_with_config(client, manager_config(&self.config))
        else {
            return;
        };
        let manager = Managed::new(manager, &self.config);
        let mut current = self.current.write().expect("not poisoned");
        if current.addr != addr {
            tracing::info!(old = %current.addr, new = %addr, "redis sentinel: master changed");
        }
        let generation = current.generation + 1;
        *current = Current {
            generation,
            manager,
            addr,
        };
    }
}

/// Follows the Sentinels' `+switch-master` announcements, so that a failover is picked up at once
/// rather than when the old master starts refusing writes. Ends when the store is dropped.
async fn watch_switches(state: Weak<SentinelState>) {
    loop {
        let Some(config) = state.upgrade().map(|s| s.config.clone()) else {
            return;
        };
        let RedisMode::Sentinel {
            sentinels,
            master_name,
        } = &config.mode
        else {
            unreachable!("sentinel mode")
        };
        for sentinel in sentinels {
            let Ok(client) = sentinel_client(&config, sentinel) else {
                continue;
            };
            let Ok(Ok(mut pubsub)) =
                tokio::time::timeout(config.connect_timeout, client.get_async_pubsub()).await
            else {
                continue;
            };
            if pubsub.subscribe("+switch-master").await.is_err() {
                continue;
            }
            let mut messages = pubsub.into_on_message();
            loop {
                match tokio::time::timeout(Duration::from_secs(1), messages.next()).await {
                    Err(_) if state.strong_count() == 0 => return,
                    Err(_) => continue,
                    Ok(None) => break, // this Sentinel went away: try the next one
                    Ok(Some(msg)) => {
                        // "<name> <old-ip> <old-port> <new-ip> <new-port>"
                        let Ok(payload) = msg.get_payload::<String>() else {
                            continue;
                        };
                        let parts: Vec<&str> = payload.split_whitespace().collect();
                        if let [name, _, _, host, port] = parts[..] {
                            if name == master_name {
                                if let (Some(s), Ok(port)) = (state.upgrade(), port.parse()) {
                                    s.install(NodeAddr::new(host, port));
                                }
                            }
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Asks each Sentinel in turn for the master's address.
pub(crate) async fn resolve_master(config: &RedisConfig) -> Result<NodeAddr> {
    let RedisMode::Sentinel {
        sentinels,
        master_name,
    } = &config.mode
    else {
        unreachable!("resolve_master is only called in sentinel mode")
    };
    let conn_config = connection_config(config);
    let mut last_error = None;
    for sentinel in sentinels {
        let attempt = async {
            let client = sentinel_client(config, sentinel)?;
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&conn_config)
                .await?;
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(master_name)
                .query_async::<Option<(String, u16)>>(&mut conn)
                .await
        };
        match attempt.await {
            Ok(Some((host, port))) => return Ok(NodeAddr::new(host, port)),
            Ok(None) => {
                last_error = Some(Error::new(
                    ErrorKind::Config,
                    format!("sentinel {sentinel} does not know a master named {master_name:?}"),
                ));
            }
            Err(e) => {
                last_error = Some(map_redis_error(
                    e,
                    &format!("ask sentinel {sentinel} for master {master_name:?}"),
                    None,
                ));
            }
        }
    }
    Err(last_error.expect("at least one sentinel is configured"))
}
