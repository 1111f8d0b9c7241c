//! [`RedisConfig`]: where the servers are, how to authenticate, and how long to wait.

use std::fmt;
use std::time::Duration;

use cache_core::{Error, ErrorKind, Limits, Result};
use redis::{ConnectionAddr, IntoConnectionInfo};

/// The environment variable of a Redis URL, one of those [`RedisConfig::from_env`] reads.
pub const REDIS_URL_ENV: &str = "REDIS_URL";

/// A `host:port` pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeAddr {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl NodeAddr {
    /// A node at `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        NodeAddr {
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// How the store reaches Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisMode {
    /// One server, on a connection that reconnects by itself.
    Standalone(NodeAddr),
    /// A Redis Cluster, discovered from any of these seed nodes.
    Cluster(Vec<NodeAddr>),
    /// A master found through Sentinel by name, and found again after a failover.
    Sentinel {
        /// The Sentinel nodes to ask.
        sentinels: Vec<NodeAddr>,
        /// The name of the monitored master (`sentinel monitor NAME ...`).
        master_name: String,
    },
}

/// The reconnect policy: after a connection drops, how often and how fast to try again before
/// reporting the server as unreachable.
///
/// Attempt `n` waits a random time up to `min_delay * 2^n`, capped at `max_delay`. The defaults (3
/// retries, 50 ms, capped at 250 ms) give up in well under a second, instead of redis-rs' ~9.5 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Reconnect attempts after the first failed one. Default: 3.
    pub max_retries: usize,
    /// Base delay between attempts. Default: 50 ms.
    pub min_delay: Duration,
    /// Longest delay between attempts. Default: 250 ms.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(250),
        }
    }
}

impl RetryPolicy {
    /// A policy with `max_retries` attempts between `min_delay` and `max_delay`.
    pub fn new(max_retries: usize, min_delay: Duration, max_delay: Duration) -> Self {
        RetryPolicy {
            max_retries,
            min_delay,
            max_delay,
        }
    }
}

/// TLS settings beyond the system's trust store.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsConfig {
    /// A PEM CA certificate to trust instead of the system roots. Default: none (system roots).
    pub ca_cert_pem: Option<Vec<u8>>,
    /// A PEM client certificate and its PEM private key, for servers that require mutual TLS.
    /// Default: none.
    pub client_cert_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_cert_pem", &self.ca_cert_pem.as_ref().map(|_| "<pem>"))
            .field(
                "client_cert_pem",
                &self.client_cert_pem.as_ref().map(|_| "<pem, key redacted>"),
            )
            .finish()
    }
}

/// Settings of a [`RedisStore`](crate::RedisStore).
///
/// Build one with [`RedisConfig::builder`], parse one with [`RedisConfig::from_url`], or read the
/// `REDIS_*` environment variables with [`RedisConfig::from_env`]. `Debug` never prints the password or a private key.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// Standalone, Cluster or Sentinel. Default: standalone at `127.0.0.1:6379`.
    pub mode: RedisMode,
    /// Whether to speak TLS to the Redis servers (`rediss://`). Default: `false`.
    pub tls: bool,
    /// TLS trust and client certificate. Default: system roots, no client certificate.
    pub tls_config: TlsConfig,
    /// ACL user name. Default: none (the `default` user).
    pub username: Option<String>,
    /// Password (`AUTH`). Default: none.
    pub password: Option<String>,
    /// Database number (standalone and Sentinel only). Default: 0.
    pub db: i64,
    /// ACL user name for the Sentinels themselves (Sentinel mode), if they have ACL users.
    /// Default: none.
    pub sentinel_username: Option<String>,
    /// Password for the Sentinels themselves (`requirepass` in `sentinel.conf`; Sentinel mode).
    /// The master's credentials are [`username`](Self::username) and [`password`](Self::password).
    /// Default: none.
    pub sentinel_password: Option<String>,
    /// Whether to speak TLS to the Sentinels (their `tls-port`; Sentinel mode), trusting and
    /// presenting what [`tls_config`](Self::tls_config) names. [`tls`](Self::tls) is the master's
    /// setting. Default: `false`.
    pub sentinel_tls: bool,
    /// How long one connection attempt may take. Default: 1 s.
    pub connect_timeout: Duration,
    /// How long one command (one round trip) may take, including waiting for a reconnect.
    /// Default: 1 s.
    pub command_timeout: Duration,
    /// How long a connection may sit idle before a command that must not run twice (`incr_by`, a
    /// conditional set, a script, ...) is preceded by a `PING`. A server that died meanwhile left
    /// the connection dead; the `PING` finds that out, the store reconnects, and the command is sent
    /// once, on the new connection. Commands that may run twice (reads, plain sets) skip the check:
    /// they are simply sent again if the connection turns out to be dead. A server that died and
    /// came back within this interval of the last reply can still fail one such command, with a
    /// retryable [`Connection`](cache_core::ErrorKind::Connection) error and without running it:
    /// a shorter interval makes that rarer, at the cost of a `PING` before more writes.
    /// `Duration::MAX`: never check. Default: 1 s.
    pub health_check_interval: Duration,
    /// The reconnect policy. Default: [`RetryPolicy::default`].
    pub retry: RetryPolicy,
    /// Prepended to every key in Redis, so several apps can share one database. Default: empty.
    ///
    /// It must end with a delimiter (an ASCII punctuation character such as `:`), or be empty: with
    /// `"app"`, the store's `clear("")` would also delete the keys of a store whose prefix is
    /// `"app1:"`. Prefixes still nest as [`Cache`](cache_core::Cache) namespaces do: `"app:"`
    /// contains `"app:jobs:"`, so give unrelated stores prefixes that do not start one another.
    pub key_prefix: String,
    /// Key and value limits. Default: [`Limits::default`].
    pub limits: Limits,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            mode: RedisMode::Standalone(NodeAddr::new("127.0.0.1", 6379)),
            tls: false,
            tls_config: TlsConfig::default(),
            username: None,
            password: None,
            db: 0,
            sentinel_username: None,
            sentinel_password: None,
            sentinel_tls: false,
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
            health_check_interval: Duration::from_secs(1),
            retry: RetryPolicy::default(),
            key_prefix: String::new(),
            limits: Limits::default(),
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("mode", &self.mode)
            .field("tls", &self.tls)
            .field("tls_config", &self.tls_config)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("db", &self.db)
            .field("sentinel_username", &self.sentinel_username)
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "<redacted>"),
            )
            .field("sentinel_tls", &self.sentinel_tls)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("health_check_interval", &self.health_check_interval)
            .field("retry", &self.retry)
            .field("key_prefix", &self.key_prefix)
            .field("limits", &self.limits)
            .finish()
    }
}

impl RedisConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> RedisConfigBuilder {
        RedisConfigBuilder::default()
    }

    /// Parses a standalone URL: `redis://[[user]:password@]host[:port][/db]`, or `rediss://…` for
    /// TLS. Everything else keeps its default. URL options that other clients read (a `?query`
    /// such as `?protocol=resp3`, a `#fragment` such as `#insecure`) are rejected with
    /// [`ErrorKind::Config`] rather than ignored, and so is a config that
    /// [`RedisConfigBuilder::build`] would refuse (a negative db, say).
    ///
    /// ```
    /// use backend_redis::RedisConfig;
    ///
    /// let config = RedisConfig::from_url("rediss://app:s3cret@cache.internal:6380/2")?;
    /// assert!(config.tls);
    /// assert_eq!(config.db, 2);
    /// assert!(!format!("{config:?}").contains("s3cret"));
    /// # Ok::<_, cache_core::Error>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        let mut config = RedisConfig::default();
        config.apply_url(url)?;
        config.validate()?;
        Ok(config)
    }

    /// A config from the `REDIS_*` environment variables ([`ENV_VARIABLES`](crate::ENV_VARIABLES)
    /// lists them all): `REDIS_URL`, or `REDIS_HOST` and `REDIS_PORT`, or `REDIS_CLUSTER_NODES`, or
    /// `REDIS_SENTINELS` with `REDIS_SENTINEL_MASTER`; then credentials, database, key prefix, TLS
    /// and timeouts. An empty variable counts as unset. A bad value is an [`ErrorKind::Config`]
    /// error that names its variable, and never shows a password or the URL.
    ///
    /// ```
    /// use backend_redis::{RedisConfig, RedisMode};
    ///
    /// // What `from_env` does, with the variables from a map instead of the process.
    /// let vars = std::collections::HashMap::from([
    ///     ("REDIS_CLUSTER_NODES", "10.0.0.1:7000,10.0.0.2:7000"),
    ///     ("REDIS_PASSWORD", "s3cret"),
    ///     ("REDIS_COMMAND_TIMEOUT", "250ms"),
    /// ]);
    /// let config = RedisConfig::from_env_with(|name| vars.get(name).map(|v| v.to_string()))?;
    /// assert!(matches!(config.mode, RedisMode::Cluster(ref nodes) if nodes.len() == 2));
    /// # Ok::<_, cache_core::Error>(())
    /// ```
    pub fn from_env() -> Result<Self> {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env), reading each variable through `lookup` (`None`: unset), for
    /// configs kept elsewhere than the process environment, and for tests.
    pub fn from_env_with(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        crate::env::from_lookup(lookup)
    }

    fn apply_url(&mut self, url: &str) -> Result<()> {
        // Never echo the URL: it may hold a password.
        let bad = |why: &str| {
            Error::new(
                ErrorKind::Config,
                format!(
                    "invalid Redis URL ({why}); expected redis://[user:password@]host[:port][/db] or rediss://…"
                ),
            )
        };
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(bad("the scheme must be redis:// or rediss://"));
        }
        // redis-rs would read these and this crate would then ignore them; say so instead. A raw
        // `#` or `?` cannot be part of the user name or password (they must be percent-encoded).
        let (rest, fragment) = match url.split_once('#') {
            Some((rest, fragment)) => (rest, Some(fragment)),
            None => (url, None),
        };
        if let Some(fragment) = fragment {
            let why = if fragment == "insecure" {
                "the #insecure fragment is not supported: certificate checks stay on; trust a \
                 private CA with RedisConfigBuilder::tls_ca_cert_pem"
                    .to_owned()
            } else {
                // Not echoed: it may be the end of a password with a raw `#` in it.
                "a URL fragment (#...) is not supported; a '#' in a password must be written %23"
                    .to_owned()
            };
            return Err(bad(&why));
        }
        if let Some((_, query)) = rest.split_once('?') {
            // Only names that look like option names are echoed: the rest may be the end of a
            // password with a raw `?` in it.
            let names = query
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| pair.split_once('=').map_or(pair, |(name, _)| name))
                .map(|name| {
                    let plain = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                    if plain { name } else { "(not shown)" }
                })
                .collect::<Vec<_>>()
                .join(", ");
            return Err(bad(&format!(
                "URL query options are not supported, got: {names}; use RedisConfigBuilder"
            )));
        }
        let info = url
            .into_connection_info()
            .map_err(|e| bad(e.detail().unwrap_or("cannot be parsed")))?;
        match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                self.mode = RedisMode::Standalone(NodeAddr::new(host.clone(), *port));
                self.tls = false;
            }
            ConnectionAddr::TcpTls { host, port, .. } => {
                self.mode = RedisMode::Standalone(NodeAddr::new(host.clone(), *port));
                self.tls = true;
            }
            _ => return Err(bad("only TCP addresses are supported")),
        }
        let redis = info.redis_settings();
        self.username = redis.username().map(str::to_owned);
        self.password = redis.password().map(str::to_owned);
        self.db = redis.db();
        Ok(())
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::new(ErrorKind::Config, msg));
        match &self.mode {
            RedisMode::Cluster(nodes) if nodes.is_empty() => {
                return bad("cluster mode needs at least one seed node".into());
            }
            RedisMode::Cluster(_) if self.db != 0 => {
                return bad(format!(
                    "Redis Cluster has only database 0, got db = {}",
                    self.db
                ));
            }
            RedisMode::Sentinel { sentinels, .. } if sentinels.is_empty() => {
                return bad("sentinel mode needs at least one sentinel address".into());
            }
            RedisMode::Sentinel { master_name, .. } if master_name.is_empty() => {
                return bad("sentinel mode needs the master's name".into());
            }
            RedisMode::Sentinel { .. } => {}
            _ if self.sentinel_username.is_some()
                || self.sentinel_password.is_some()
                || self.sentinel_tls =>
            {
                return bad("sentinel settings are set, but the mode is not sentinel".into());
            }
            _ => {}
        }
        if self
            .key_prefix
            .chars()
            .last()
            .is_some_and(|last| !last.is_ascii_punctuation())
        {
            return bad(format!(
                "key_prefix {:?} must end with a delimiter such as ':' (e.g. \"{}:\"), or it is \
                 also the prefix of other prefixes' keys",
                self.key_prefix, self.key_prefix
            ));
        }
        if self.db < 0 {
            return bad(format!("db must not be negative, got {}", self.db));
        }
        if self.connect_timeout.is_zero() {
            return bad("connect_timeout must be greater than zero".into());
        }
        if self.command_timeout.is_zero() {
            return bad("command_timeout must be greater than zero".into());
        }
        Ok(())
    }
}

/// Builds a [`RedisConfig`]; every setter is named after the field it sets.
///
/// ```
/// use backend_redis::RedisConfig;
/// use std::time::Duration;
///
/// let config = RedisConfig::builder()
///     .url("redis://127.0.0.1:6379")
///     .key_prefix("myapp:")
///     .command_timeout(Duration::from_millis(250))
///     .build()?;
/// # Ok::<_, cache_core::Error>(())
/// ```
#[derive(Debug, Default)]
#[must_use]
pub struct RedisConfigBuilder {
    config: RedisConfig,
    error: Option<Error>,
}

impl RedisConfigBuilder {
    /// Takes address, TLS, user, password and db from a `redis://` or `rediss://` URL.
    pub fn url(mut self, url: &str) -> Self {
        if let Err(e) = self.config.apply_url(url) {
            self.error.get_or_insert(e);
        }
        self
    }

    /// A standalone server at `host:port`.
    pub fn standalone(mut self, host: impl Into<String>, port: u16) -> Self {
        self.config.mode = RedisMode::Standalone(NodeAddr::new(host, port));
        self
    }

    /// A Redis Cluster reached through these seed nodes.
    pub fn cluster(mut self, nodes: impl IntoIterator<Item = NodeAddr>) -> Self {
        self.config.mode = RedisMode::Cluster(nodes.into_iter().collect());
        self
    }

    /// A master named `master_name`, found through these Sentinels.
    pub fn sentinel(
        mut self,
        sentinels: impl IntoIterator<Item = NodeAddr>,
        master_name: impl Into<String>,
    ) -> Self {
        self.config.mode = RedisMode::Sentinel {
            sentinels: sentinels.into_iter().collect(),
            master_name: master_name.into(),
        };
        self
    }

    /// Speak TLS to Redis.
    pub fn tls(mut self, tls: bool) -> Self {
        self.config.tls = tls;
        self
    }

    /// Trust this PEM CA certificate (and turn TLS on).
    pub fn tls_ca_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.config.tls = true;
        self.config.tls_config.ca_cert_pem = Some(pem.into());
        self
    }

    /// Present this PEM client certificate and PEM private key (and turn TLS on).
    pub fn tls_client_cert_pem(
        mut self,
        cert: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
    ) -> Self {
        self.config.tls = true;
        self.config.tls_config.client_cert_pem = Some((cert.into(), key.into()));
        self
    }

    /// ACL user name.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.config.username = Some(username.into());
        self
    }

    /// Password.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.config.password = Some(password.into());
        self
    }

    /// ACL user name for the Sentinels themselves.
    pub fn sentinel_username(mut self, username: impl Into<String>) -> Self {
        self.config.sentinel_username = Some(username.into());
        self
    }

    /// Password for the Sentinels themselves (their `requirepass`).
    pub fn sentinel_password(mut self, password: impl Into<String>) -> Self {
        self.config.sentinel_password = Some(password.into());
        self
    }

    /// Whether to speak TLS to the Sentinels themselves.
    pub fn sentinel_tls(mut self, tls: bool) -> Self {
        self.config.sentinel_tls = tls;
        self
    }

    /// Database number.
    pub fn db(mut self, db: i64) -> Self {
        self.config.db = db;
        self
    }

    /// How long one connection attempt may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// How long one command may take.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.config.command_timeout = timeout;
        self
    }

    /// How long a connection may idle before a command that must not run twice is preceded by a
    /// `PING`; see [`RedisConfig::health_check_interval`].
    pub fn health_check_interval(mut self, interval: Duration) -> Self {
        self.config.health_check_interval = interval;
        self
    }

    /// The reconnect policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.config.retry = retry;
        self
    }

    /// The prefix of every key in Redis; it must end with a delimiter such as `:` (see
    /// [`RedisConfig::key_prefix`]).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.key_prefix = prefix.into();
        self
    }

    /// Key and value limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// The config, or an [`ErrorKind::Config`] error naming the first invalid setting.
    pub fn build(self) -> Result<RedisConfig> {
        if let Some(e) = self.error {
            return Err(e);
        }
        self.config.validate()?;
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_with_user_password_db() {
        let c = RedisConfig::from_url("redis://alice:p%40ss@example.org:6390/3").unwrap();
        assert_eq!(
            c.mode,
            RedisMode::Standalone(NodeAddr::new("example.org", 6390))
        );
        assert_eq!(c.username.as_deref(), Some("alice"));
        assert_eq!(c.password.as_deref(), Some("p@ss"));
        assert_eq!(c.db, 3);
        assert!(!c.tls);
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("p@ss") && !debug.contains("p%40ss"),
            "{debug}"
        );
    }

    #[test]
    fn a_key_prefix_must_end_with_a_delimiter() {
        for ok in ["", "app:", "app/", "{tenant}", "a.b."] {
            let built = RedisConfig::builder().key_prefix(ok).build();
            assert!(built.is_ok(), "{ok:?}: {built:?}");
        }
        for bad in ["app", "app1", "caché"] {
            let err = RedisConfig::builder().key_prefix(bad).build().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{bad:?}");
            assert!(err.message().contains("delimiter"), "{err}");
        }
    }

    #[test]
    fn debug_hides_the_private_key() {
        let c = RedisConfig::builder()
            .tls_client_cert_pem("CERT", "-----BEGIN PRIVATE KEY----- very secret")
            .password("hunter2")
            .build()
            .unwrap();
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("very secret") && !debug.contains("hunter2"),
            "{debug}"
        );
    }

    #[test]
    fn sentinel_credentials_are_hidden_and_need_sentinel_mode() {
        let c = RedisConfig::builder()
            .sentinel([NodeAddr::new("127.0.0.1", 26379)], "mymaster")
            .sentinel_username("watcher")
            .sentinel_password("sentinel-secret")
            .build()
            .unwrap();
        let debug = format!("{c:?}");
        assert!(
            debug.contains("watcher") && !debug.contains("sentinel-secret"),
            "{debug}"
        );
        let e = RedisConfig::builder()
            .sentinel_password("sentinel-secret")
            .build()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("not sentinel"), "{e}");
    }

    #[test]
    fn rediss_turns_tls_on() {
        let c = RedisConfig::from_url("rediss://:secret@localhost").unwrap();
        assert!(c.tls);
        assert_eq!(c.password.as_deref(), Some("secret"));
        assert_eq!(
            c.mode,
            RedisMode::Standalone(NodeAddr::new("localhost", 6379))
        );
    }

    #[test]
    fn url_options_that_would_be_ignored_are_rejected() {
        for (url, named) in [
            ("rediss://:secret@host/#insecure", "#insecure"),
            ("redis://host#foo", "fragment"),
            ("redis://:pa#secret@host", "%23"),
            ("redis://:pa?secret@host", "not shown"),
            ("redis://:secret@host?protocol=resp3", "protocol"),
            ("redis://host/0?protocol=resp3&db=2", "protocol, db"),
        ] {
            let e = RedisConfig::from_url(url).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{url}");
            assert!(e.to_string().contains(named), "{url}: {e}");
            assert!(!e.to_string().contains("secret"), "{url}: {e}");
            let e = RedisConfig::builder().url(url).build().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{url}");
        }
    }

    #[test]
    fn url_with_a_negative_db_is_rejected_at_parse_time() {
        let e = RedisConfig::from_url("redis://h/-1").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("db must not be negative"), "{e}");
        assert_eq!(RedisConfig::from_url("redis://h/2").unwrap().db, 2);
    }

    #[test]
    fn bad_url_is_a_config_error_without_the_password() {
        let e = RedisConfig::from_url("http://u:topsecret@host").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(!e.to_string().contains("topsecret"));
    }
}
