//! `cargo xtask test`: every check and every test, in the order CI runs them.

use anyhow::Result;
use xshell::{Shell, cmd};

use crate::{conformance, step, wasm};

pub(crate) fn run(sh: &Shell) -> Result<()> {
    step("cargo fmt --check");
    cmd!(sh, "cargo fmt --all -- --check").run().map_err(|e| {
        anyhow::anyhow!("{e}\nformatting differs: run `cargo fmt --all` and commit the result")
    })?;

    step("cargo clippy --all-targets -D warnings");
    cmd!(
        sh,
        "cargo clippy --workspace --all-targets --locked -- -D warnings"
    )
    .run()?;

    // The conformance crate's server suites run once each, below, after Docker and the image are
    // ready; here only its memory suite runs.
    step("cargo test (unit, doc, example and memory conformance tests)");
    cmd!(
        sh,
        "cargo test --workspace --locked --exclude cache-conformance"
    )
    .run()?;
    conformance::run(sh, "memory")?;

    step("examples on the memory backend");
    cmd!(sh, "cargo run --locked -p examples --example quickstart").run()?;
    cmd!(
        sh,
        "cargo run --locked -p examples --example jobs_and_leaderboard"
    )
    .env("REDIS_URL", "")
    .run()?;

    step("cargo doc -D warnings (every crate, every feature)");
    cmd!(
        sh,
        "cargo doc --workspace --all-features --no-deps --locked"
    )
    .env("RUSTDOCFLAGS", "-D warnings")
    .run()?;

    step("cargo package of the publishable crates (each built from its tarball)");
    cmd!(
        sh,
        "cargo package --locked --allow-dirty -p cache-core -p backend-memory -p backend-redis -p cache-conformance"
    )
    .run()?;

    step("wasm32 build of backend-memory");
    cmd!(
        sh,
        "cargo build --locked -p backend-memory --target wasm32-unknown-unknown"
    )
    .run()?;

    for backend in conformance::SERVER_BACKENDS {
        conformance::run(sh, backend)?;
    }
    wasm::test_all(sh)?;
    Ok(())
}
