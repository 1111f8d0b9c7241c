//! `cargo xtask test`: every check and every test, in the order CI runs them.

use anyhow::Result;
use xshell::{Shell, cmd};

use crate::{conformance, step, wasm};

pub(crate) fn run(sh: &Shell) -> Result<()> {
    step("cargo fmt --check");
    cmd!(sh, "cargo fmt --all -- --check").run().map_err(|e| {
        anyhow::anyhow!("{e}\nformatting differs: run `cargo fmt --all` and commit the result")
    })?;

    step("cargo clippy --all-targets --all-features -D warnings");
    cmd!(
        sh,
        "cargo clippy --workspace --all-targets --all-features --locked -- -D warnings"
    )
    .run()?;

    // The conformance crate's server suites run once each, below, after Docker and the image are
    // ready; here only its memory suite runs.
    step("cargo test (unit, doc, example and memory conformance tests)");
    cmd!(
        sh,
        "cargo test --workspace --all-features --locked --exclude cache-conformance"
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
    forget_packaged_copies(&sh.current_dir())?;
    cmd!(
        sh,
        "cargo package --locked --allow-dirty -p cache-core -p backend-memory -p backend-redis -p cache-conformance"
    )
    .run()?;

    step("wasm32 build of backend-memory, and of cache-core with every feature");
    cmd!(
        sh,
        "cargo build --locked -p backend-memory --target wasm32-unknown-unknown"
    )
    .run()?;
    cmd!(
        sh,
        "cargo build --locked -p cache-core --all-features --target wasm32-unknown-unknown"
    )
    .run()?;

    for backend in conformance::SERVER_BACKENDS {
        conformance::run(sh, backend)?;
    }
    wasm::test_all(sh)?;
    Ok(())
}

/// The crates this workspace publishes.
const PUBLISHED: [&str; 4] = [
    "cache-core",
    "backend-memory",
    "backend-redis",
    "cache-conformance",
];

/// Removes the copies of our crates that an earlier `cargo package` unpacked from its temporary
/// registry, and what was built from them. Cargo takes a registry crate of an unchanged version to
/// be unchanged: it reuses the unpacked `name-version` directory as it is, and the build of it in
/// `target/debug`, so without this a tarball would be verified against the previous run's copy of
/// the crates it depends on (seen: backend-redis checked against a cache-core without a new
/// trait method). Our crates' own builds are redone too, since the two cannot be told apart by
/// name.
fn forget_packaged_copies(root: &std::path::Path) -> Result<()> {
    if let Ok(fingerprints) = std::fs::read_dir(root.join("target/debug/.fingerprint")) {
        for built in fingerprints.flatten() {
            let name = built.file_name().to_string_lossy().into_owned();
            if PUBLISHED
                .iter()
                .any(|krate| name.starts_with(&format!("{krate}-")))
            {
                std::fs::remove_dir_all(built.path())?;
            }
        }
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".cargo"))
        });
    let Some(sources) = cargo_home.map(|home| home.join("registry/src")) else {
        return Ok(());
    };
    let Ok(registries) = std::fs::read_dir(&sources) else {
        return Ok(());
    };
    for registry in registries.flatten() {
        // Temporary registries are unpacked under names without a host, such as "-14cd1cce…".
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        for unpacked in std::fs::read_dir(registry.path())?.flatten() {
            let name = unpacked.file_name().to_string_lossy().into_owned();
            if PUBLISHED
                .iter()
                .any(|krate| name.starts_with(&format!("{krate}-")))
            {
                std::fs::remove_dir_all(unpacked.path())?;
            }
        }
    }
    Ok(())
}
