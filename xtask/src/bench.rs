//! `cargo xtask bench TARGET`: benchmarks that run the peers side by side and print ratios; each
//! leaves its results in `target/bench/TARGET.json`, drawn into `docs/bench/TARGET.svg`.

use anyhow::{Result, bail};
use xshell::{Shell, cmd};

use crate::{chart, redis, step, wasm};

pub(crate) fn run(sh: &Shell, target: &str) -> Result<()> {
    step(&format!("bench {target}"));
    bench(sh, target)?;
    let svg = chart::draw(&sh.current_dir(), target)?;
    eprintln!("chart: {}", svg.display());
    Ok(())
}

fn bench(sh: &Shell, target: &str) -> Result<()> {
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
        // Starts its own redis-server on 127.0.0.1 for its L2 rows unless REDIS_URL is set.
        "typed" => {
            cmd!(sh, "cargo bench --locked -p examples --bench typed").run()?;
            Ok(())
        }
        // Starts its own redis-server and a 3-primary Cluster on 127.0.0.1.
        "coherence" => {
            cmd!(sh, "cargo bench --locked -p examples --bench coherence").run()?;
            Ok(())
        }
        other => bail!(
            "unknown benchmark {other:?}; choose memory, typed, redis, wasm, tiered or coherence"
        ),
    }
}
