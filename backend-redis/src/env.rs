//! [`RedisConfig::from_env`]: a config from `REDIS_*` environment variables, as twelve-factor
//! services are configured.

use std::path::Path;
use std::time::Duration;

use cache_core::{Error, ErrorKind, Result};

use crate::config::{NodeAddr, RedisConfig, RedisMode, RetryPolicy};

/// Every variable [`RedisConfig::from_env`] reads, with what it sets. One of the first four says
/// where Redis is; the rest refine it.
pub const VARIABLES: &[(&str, &str)] = &[
    (
        "REDIS_URL",
        "redis://[user:password@]host[:port][/db], or rediss:// for TLS",
    ),
    ("REDIS_HOST", "a standalone server's host (with REDIS_PORT)"),
    (
        "REDIS_CLUSTER_NODES",
        "Redis Cluster seed nodes: host:port,host:port,…",
    ),
    (
        "REDIS_SENTINELS",
        "Sentinels: host:port,host:port,… (with REDIS_SENTINEL_MASTER)",
    ),
    ("REDIS_PORT", "the port of REDIS_HOST (default 6379)"),
    (
        "REDIS_SENTINEL_MASTER",
        "the name of the master the Sentinels monitor",
    ),
    ("REDIS_USERNAME", "ACL user name"),
    ("REDIS_PASSWORD", "password"),
    ("REDIS_DB", "database number (not with a cluster)"),
    (
        "REDIS_KEY_PREFIX",
        "prepended to every key; ends with a delimiter such as :",
    ),
    ("REDIS_TLS", "true or false: speak TLS to Redis"),
    (
        "REDIS_TLS_CA_CERT",
        "path of a PEM CA certificate to trust (turns TLS on)",
    ),
    (
        "REDIS_TLS_CLIENT_CERT",
        "path of a PEM client certificate (with REDIS_TLS_CLIENT_KEY)",
    ),
    ("REDIS_TLS_CLIENT_KEY", "path of its PEM private key"),
    ("REDIS_SENTINEL_USERNAME", "ACL user name for the Sentinels"),
    ("REDIS_SENTINEL_PASSWORD", "password for the Sentinels"),
    (
        "REDIS_SENTINEL_TLS",
        "true or false: speak TLS to the Sentinels",
    ),
    (
        "REDIS_CONNECT_TIMEOUT",
        "a duration such as 500ms or 2s (default 1s)",
    ),
    (
        "REDIS_COMMAND_TIMEOUT",
        "a duration such as 250ms or 1s (default 1s)",
    ),
    (
        "REDIS_HEALTH_CHECK_INTERVAL",
        "idle time after which a connection is checked before a write that must not run twice (default 1s)",
    ),
    (
        "REDIS_RETRIES",
        "reconnect attempts after a failed one (default 3)",
    ),
];

/// The variables that hold secrets: their values never appear in an error.
const SECRET: &[&str] = &["REDIS_URL", "REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD"];

/// Reads a config through `lookup` (a variable's value, `None` if unset). Empty values count as
/// unset.
pub(crate) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<RedisConfig> {
    let var = |name: &str| lookup(name).filter(|v| !v.is_empty());
    let mut config = RedisConfig::default();
    if var("REDIS_PORT").is_some() && var("REDIS_HOST").is_none() {
        return Err(config_error("REDIS_PORT is set without REDIS_HOST"));
    }
    let places: Vec<&str> = [
        "REDIS_URL",
        "REDIS_HOST",
        "REDIS_CLUSTER_NODES",
        "REDIS_SENTINELS",
    ]
    .into_iter()
    .filter(|name| var(name).is_some())
    .collect();
    match places.as_slice() {
        [] => {
            return Err(config_error(
                "no Redis is configured: set REDIS_URL, REDIS_HOST, REDIS_CLUSTER_NODES or REDIS_SENTINELS",
            ));
        }
        [_] => {}
        many => {
            return Err(config_error(&format!(
                "{} are all set: set only one of them",
                many.join(" and ")
            )));
        }
    }
    if let Some(url) = var("REDIS_URL") {
        config = RedisConfig::from_url(&url).map_err(|e| named("REDIS_URL", e.message()))?;
    }
    if let Some(host) = var("REDIS_HOST") {
        let port = match var("REDIS_PORT") {
            Some(port) => parse_port("REDIS_PORT", &port)?,
            None => 6379,
        };
        config.mode = RedisMode::Standalone(NodeAddr::new(host, port));
    }
    if let Some(nodes) = var("REDIS_CLUSTER_NODES") {
        config.mode = RedisMode::Cluster(parse_nodes("REDIS_CLUSTER_NODES", &nodes)?);
    }
    match (var("REDIS_SENTINELS"), var("REDIS_SENTINEL_MASTER")) {
        (Some(sentinels), Some(master_name)) => {
            config.mode = RedisMode::Sentinel {
                sentinels: parse_nodes("REDIS_SENTINELS", &sentinels)?,
                master_name,
            };
        }
        (Some(_), None) => {
            return Err(config_error(
                "REDIS_SENTINELS is set without REDIS_SENTINEL_MASTER, the master's name",
            ));
        }
        (None, Some(_)) => {
            return Err(config_error(
                "REDIS_SENTINEL_MASTER is set without REDIS_SENTINELS",
            ));
        }
        (None, None) => {}
    }
    if let Some(username) = var("REDIS_USERNAME") {
        config.username = Some(username);
    }
    if let Some(password) = var("REDIS_PASSWORD") {
        config.password = Some(password);
    }
    if let Some(db) = var("REDIS_DB") {
        config.db = db
            .parse()
            .map_err(|_| invalid("REDIS_DB", &db, "a database number"))?;
    }
    if let Some(prefix) = var("REDIS_KEY_PREFIX") {
        config.key_prefix = prefix;
    }
    if let Some(tls) = var("REDIS_TLS") {
        config.tls = parse_bool("REDIS_TLS", &tls)?;
    }
    if let Some(path) = var("REDIS_TLS_CA_CERT") {
        config.tls = true;
        config.tls_config.ca_cert_pem = Some(read_pem("REDIS_TLS_CA_CERT", &path)?);
    }
    match (var("REDIS_TLS_CLIENT_CERT"), var("REDIS_TLS_CLIENT_KEY")) {
        (Some(cert), Some(key)) => {
            config.tls = true;
            config.tls_config.client_cert_pem = Some((
                read_pem("REDIS_TLS_CLIENT_CERT", &cert)?,
                read_pem("REDIS_TLS_CLIENT_KEY", &key)?,
            ));
        }
        (None, None) => {}
        _ => {
            return Err(config_error(
                "REDIS_TLS_CLIENT_CERT and REDIS_TLS_CLIENT_KEY go together: set both or neither",
            ));
        }
    }
    if let Some(username) = var("REDIS_SENTINEL_USERNAME") {
        config.sentinel_username = Some(username);
    }
    if let Some(password) = var("REDIS_SENTINEL_PASSWORD") {
        config.sentinel_password = Some(password);
    }
    if let Some(tls) = var("REDIS_SENTINEL_TLS") {
        config.sentinel_tls = parse_bool("REDIS_SENTINEL_TLS", &tls)?;
    }
    if let Some(timeout) = var("REDIS_CONNECT_TIMEOUT") {
        config.connect_timeout = parse_duration("REDIS_CONNECT_TIMEOUT", &timeout)?;
    }
    if let Some(timeout) = var("REDIS_COMMAND_TIMEOUT") {
        config.command_timeout = parse_duration("REDIS_COMMAND_TIMEOUT", &timeout)?;
    }
    if let Some(interval) = var("REDIS_HEALTH_CHECK_INTERVAL") {
        config.health_check_interval = parse_duration("REDIS_HEALTH_CHECK_INTERVAL", &interval)?;
    }
    if let Some(retries) = var("REDIS_RETRIES") {
        let max_retries = retries
            .parse()
            .map_err(|_| invalid("REDIS_RETRIES", &retries, "a whole number"))?;
        config.retry = RetryPolicy {
            max_retries,
            ..config.retry
        };
    }
    config.validate()?;
    Ok(config)
}

fn config_error(message: &str) -> Error {
    Error::new(ErrorKind::Config, message)
}

/// `name` holds `value`, which is not `expected`. A secret's value is not shown.
fn invalid(name: &str, value: &str, expected: &str) -> Error {
    let shown = if SECRET.contains(&name) {
        "(not shown)".to_owned()
    } else {
        format!("{value:?}")
    };
    config_error(&format!("{name} must be {expected}, got {shown}"))
}

fn named(name: &str, why: &str) -> Error {
    config_error(&format!("{name}: {why}"))
}

fn parse_port(name: &str, value: &str) -> Result<u16> {
    value
        .parse()
        .ok()
        .filter(|&port| port != 0)
        .ok_or_else(|| invalid(name, value, "a port number from 1 to 65535"))
}

/// `host:port,host:port,…` (spaces around the commas allowed).
fn parse_nodes(name: &str, value: &str) -> Result<Vec<NodeAddr>> {
    value
        .split(',')
        .map(str::trim)
        .filter(|node| !node.is_empty())
        .map(|node| {
            let (host, port) = node
                .rsplit_once(':')
                .filter(|(host, _)| !host.is_empty())
                .ok_or_else(|| invalid(name, value, "a list of host:port"))?;
            Ok(NodeAddr::new(host, parse_port(name, port)?))
        })
        .collect()
}

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(name, value, "true or false")),
    }
}

fn parse_duration(name: &str, value: &str) -> Result<Duration> {
    humantime::parse_duration(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| invalid(name, value, "a duration such as 250ms or 2s, above zero"))
}

fn read_pem(name: &str, path: &str) -> Result<Vec<u8>> {
    std::fs::read(Path::new(path)).map_err(|e| {
        Error::new(
            ErrorKind::Config,
            format!("{name}: cannot read the PEM file {path:?}"),
        )
        .with_source(e)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<RedisConfig> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn host_port_and_the_rest() {
        let c = from(&[
            ("REDIS_HOST", "cache.internal"),
            ("REDIS_PORT", "6380"),
            ("REDIS_USERNAME", "app"),
            ("REDIS_PASSWORD", "s3cret"),
            ("REDIS_DB", "2"),
            ("REDIS_KEY_PREFIX", "shop:"),
            ("REDIS_TLS", "true"),
            ("REDIS_CONNECT_TIMEOUT", "500ms"),
            ("REDIS_COMMAND_TIMEOUT", "2s"),
            ("REDIS_RETRIES", "5"),
            ("REDIS_SENTINEL_TLS", ""),
        ])
        .unwrap();
        assert_eq!(
            c.mode,
            RedisMode::Standalone(NodeAddr::new("cache.internal", 6380))
        );
        assert_eq!(
            (c.username.as_deref(), c.password.as_deref()),
            (Some("app"), Some("s3cret"))
        );
        assert_eq!((c.db, c.key_prefix.as_str(), c.tls), (2, "shop:", true));
        assert_eq!(c.connect_timeout, Duration::from_millis(500));
        assert_eq!(c.command_timeout, Duration::from_secs(2));
        assert_eq!(c.retry.max_retries, 5);
    }

    #[test]
    fn url_then_overrides() {
        let c = from(&[
            ("REDIS_URL", "rediss://u:p@h:7000/1"),
            ("REDIS_PASSWORD", "newer"),
        ])
        .unwrap();
        assert_eq!(c.mode, RedisMode::Standalone(NodeAddr::new("h", 7000)));
        assert!(c.tls);
        assert_eq!((c.password.as_deref(), c.db), (Some("newer"), 1));
        assert_eq!(
            from(&[("REDIS_HOST", "h")]).unwrap().mode,
            RedisMode::Standalone(NodeAddr::new("h", 6379))
        );
    }

    #[test]
    fn cluster_and_sentinel() {
        let c = from(&[("REDIS_CLUSTER_NODES", "a:7000, b:7001,c:7002")]).unwrap();
        assert_eq!(
            c.mode,
            RedisMode::Cluster(vec![
                NodeAddr::new("a", 7000),
                NodeAddr::new("b", 7001),
                NodeAddr::new("c", 7002)
            ])
        );
        let s = from(&[
            ("REDIS_SENTINELS", "s1:26379,s2:26379"),
            ("REDIS_SENTINEL_MASTER", "mymaster"),
            ("REDIS_SENTINEL_PASSWORD", "watch"),
            ("REDIS_SENTINEL_TLS", "yes"),
        ])
        .unwrap();
        assert!(
            matches!(s.mode, RedisMode::Sentinel { ref master_name, ref sentinels } if master_name == "mymaster" && sentinels.len() == 2)
        );
        assert_eq!(s.sentinel_password.as_deref(), Some("watch"));
        assert!(s.sentinel_tls);
    }

    #[test]
    fn bad_values_name_their_variable_and_never_show_a_secret() {
        for (vars, named) in [
            (vec![], "no Redis is configured"),
            (
                vec![("REDIS_URL", "redis://h"), ("REDIS_HOST", "h")],
                "REDIS_URL and REDIS_HOST",
            ),
            (
                vec![("REDIS_HOST", "h"), ("REDIS_PORT", "70000")],
                "REDIS_PORT",
            ),
            (vec![("REDIS_HOST", "h"), ("REDIS_PORT", "0")], "REDIS_PORT"),
            (
                vec![("REDIS_PORT", "6379")],
                "REDIS_PORT is set without REDIS_HOST",
            ),
            (vec![("REDIS_HOST", "h"), ("REDIS_DB", "two")], "REDIS_DB"),
            (
                vec![("REDIS_HOST", "h"), ("REDIS_TLS", "maybe")],
                "REDIS_TLS",
            ),
            (
                vec![("REDIS_HOST", "h"), ("REDIS_COMMAND_TIMEOUT", "soon")],
                "REDIS_COMMAND_TIMEOUT",
            ),
            (
                vec![("REDIS_HOST", "h"), ("REDIS_CONNECT_TIMEOUT", "0s")],
                "REDIS_CONNECT_TIMEOUT",
            ),
            (
                vec![("REDIS_HOST", "h"), ("REDIS_RETRIES", "-1")],
                "REDIS_RETRIES",
            ),
            (
                vec![("REDIS_CLUSTER_NODES", "a:1,b")],
                "REDIS_CLUSTER_NODES",
            ),
            (
                vec![("REDIS_CLUSTER_NODES", "a:1"), ("REDIS_DB", "3")],
                "database 0",
            ),
            (vec![("REDIS_SENTINELS", "s:1")], "REDIS_SENTINEL_MASTER"),
            (
                vec![("REDIS_HOST", "h"), ("REDIS_TLS_CLIENT_CERT", "/c.pem")],
                "REDIS_TLS_CLIENT_KEY",
            ),
            (
                vec![
                    ("REDIS_HOST", "h"),
                    ("REDIS_TLS_CA_CERT", "/nonexistent/ca.pem"),
                ],
                "REDIS_TLS_CA_CERT",
            ),
            (vec![("REDIS_URL", "http://u:topsecret@h")], "REDIS_URL"),
            (
                vec![("REDIS_URL", "redis://u:topsecret@h?x=1")],
                "REDIS_URL",
            ),
        ] {
            let e = from(&vars).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{vars:?}");
            assert!(e.to_string().contains(named), "{vars:?}: {e}");
            assert!(!e.to_string().contains("topsecret"), "{e}");
        }
        let e = from(&[
            ("REDIS_HOST", "h"),
            ("REDIS_PASSWORD", "topsecret"),
            ("REDIS_DB", "x"),
        ])
        .unwrap_err();
        assert!(!e.to_string().contains("topsecret"), "{e}");
    }

    #[test]
    fn every_variable_read_is_listed() {
        let source = include_str!("env.rs");
        let read: std::collections::BTreeSet<&str> = source
            .split('"')
            .filter(|s| {
                s.len() > "REDIS_".len()
                    && s.starts_with("REDIS_")
                    && s.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            })
            .collect();
        let listed: std::collections::BTreeSet<&str> =
            VARIABLES.iter().map(|(name, _)| *name).collect();
        assert_eq!(read, listed);
    }
}
