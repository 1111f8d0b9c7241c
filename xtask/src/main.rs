#![doc = include_str!("../README.md")]

mod bench;
mod chart;
mod conformance;
mod prove;
mod redis;
mod test;
mod wasm;

use anyhow::{Result, bail};
use xshell::Shell;

const HELP: &str = "\
cargo xtask <command>

  test                          fmt, clippy, every test, every conformance backend, wasm build
  conformance --backend NAME    the conformance suite against one backend:
                                memory | redis | redis-cluster | redis-tls | redis-acl | redis-sentinel | wasm
  prove [--cases N]             the model-based tests (memory), fuzz targets and differential
                                tests (Redis, Cluster) with N cases each (default 10 000)
  bench memory|typed|redis|wasm|tiered  benchmarks against the peers: a table of ratios, and a chart in docs/bench/
  wasm                          build the npm package into bindings-wasm/pkg
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["test"] => test::run(&sh),
        ["conformance", "--backend", backend] => conformance::run(&sh, backend),
        ["bench", target] => bench::run(&sh, target),
        ["prove"] => prove::run(&sh, 10_000),
        ["prove", "--cases", cases] => prove::run(&sh, cases.parse()?),
        ["wasm"] => wasm::build_package(&sh),
        [] | ["help"] | ["--help"] | ["-h"] => {
            print!("{HELP}");
            Ok(())
        }
        _ => bail!("unknown command {args:?}\n\n{HELP}"),
    }
}

fn project_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Whether we run under CI, where a missing component is a failure rather than a skip.
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Prints a section header so the log shows what runs.
pub(crate) fn step(name: &str) {
    eprintln!("\n==> {name}");
}
