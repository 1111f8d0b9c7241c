//! `cargo xtask conformance --backend NAME`.

use anyhow::{Result, bail};
use xshell::{Shell, cmd};

use crate::{redis, step, wasm};

/// Backends that need a server (Docker); `cargo xtask test` runs each of them after the
/// workspace tests and the `memory` suite.
pub(crate) const SERVER_BACKENDS: &[&str] = &[
    "redis",
    "redis-cluster",
    "redis-tls",
    "redis-acl",
    "redis-sentinel",
];

pub(crate) fn run(sh: &Shell, backend: &str) -> Result<()> {
    step(&format!("conformance --backend {backend}"));
    match backend {
        "memory" => {
            cmd!(
                sh,
                "cargo test --locked -p cache-conformance --lib --test memory --test patterns_memory --test model_memory --test fuzz"
            )
            .run()?;
            Ok(())
        }
        "wasm" => wasm::conformance(sh),
        name if name.starts_with("redis") => redis::conformance(sh, name),
        other => bail!("unknown backend {other:?}; see `cargo xtask help`"),
    }
}
