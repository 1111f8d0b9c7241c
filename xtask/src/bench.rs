//! `cargo xtask bench TARGET`: benchmarks that run the peers in the same process and print ratios.

use anyhow::{Result, bail};
use xshell::{Shell, cmd};

use crate::{redis, step, wasm};

pub(crate) fn run(sh: &Shell, target: &str) -> Result<()> {
    step(&format!("bench {target}"));
    match target {
        "memory" => {
            cmd!(sh, "cargo bench --locked -p backend-memory --bench memory").run()?;
            Ok(())
        }
        "redis" => redis::bench(sh),
        // Starts its own redis-server on 127.0.0.1 unless REDIS_URL is set.
        "tiered" => {
            cmd!(sh, "cargo bench --locked -p examples --bench tiered").run()?;
            Ok(())
        }
        "wasm" => wasm::bench(sh),
        other => bail!("unknown benchmark {other:?}; choose memory, redis, wasm or tiered"),
    }
}
