//! The wasm32 build, the npm package (`bindings-wasm/pkg`), its tests and its benchmark.
//!
//! Rust-side steps run here; JS-side work is in node scripts under `bindings-wasm/js/`, whose
//! tools (binaryen's wasm-opt, keyv, lru-cache, playwright-core) `npm ci` installs from the
//! committed lock file into `bindings-wasm/js/node_modules`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::{in_ci, step};

/// Must equal the `wasm-bindgen` crate version pinned in the root `Cargo.toml`.
const WASM_BINDGEN_VERSION: &str = "0.2.130";
const JS_DIR: &str = "bindings-wasm/js";
const PKG_DIR: &str = "bindings-wasm/pkg";
const CHROMIUM: &str = "/usr/bin/chromium";
/// wasm-bindgen's `--target` and the package folder it goes to.
const TARGETS: &[(&str, &str)] = &[("web", "web"), ("nodejs", "node"), ("bundler", "bundler")];
/// The wasm features rustc enables by default for wasm32-unknown-unknown, which wasm-opt must keep.
const WASM_FEATURES: &[&str] = &[
    "--enable-bulk-memory",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-reference-types",
    "--enable-multivalue",
];

/// `cargo xtask wasm`: builds, binds, optimises and assembles the npm package, and prints its size.
pub(crate) fn build_package(sh: &Shell) -> Result<()> {
    step("npm package: bindings-wasm/pkg");
    js_tools(sh)?;
    check_wasm_bindgen(sh)?;
    cmd!(
        sh,
        "cargo build --locked --release --target wasm32-unknown-unknown -p bindings-wasm"
    )
    .run()?;
    let wasm = target_dir(sh)?.join("wasm32-unknown-unknown/release/bindings_wasm.wasm");
    let wasm_opt = sh
        .current_dir()
        .join(JS_DIR)
        .join("node_modules/.bin/wasm-opt");
    sh.remove_path(PKG_DIR)?;
    for (target, dir) in TARGETS {
        let out = format!("{PKG_DIR}/{dir}");
        cmd!(sh, "wasm-bindgen --target {target} --out-dir {out} {wasm}").run()?;
        let bg = format!("{out}/bindings_wasm_bg.wasm");
        cmd!(sh, "{wasm_opt} -Oz {WASM_FEATURES...} {bg} -o {bg}").run()?;
    }
    cmd!(sh, "node {JS_DIR}/scripts/assemble.mjs {PKG_DIR}").run()?;
    Ok(())
}

/// `cargo xtask conformance --backend wasm`: the shared suite against `MemoryStore` compiled to
/// wasm32, under wasm-bindgen-test in Node.
pub(crate) fn conformance(sh: &Shell) -> Result<()> {
    if !require(sh, "node", "apt-get install -y nodejs (node 20)")? {
        return Ok(());
    }
    check_wasm_bindgen(sh)?;
    // No `-q`: wasm-bindgen-test-runner rejects `--quiet`.
    cmd!(
        sh,
        "cargo test --locked -p cache-conformance --target wasm32-unknown-unknown --test wasm"
    )
    .run()?;
    Ok(())
}

/// Everything wasm-related that `cargo xtask test` runs: the wasm conformance suite, the package
/// build, the node:test suite against the Node build and the headless-Chromium test of the web build.
pub(crate) fn test_all(sh: &Shell) -> Result<()> {
    if !require(sh, "node", "apt-get install -y nodejs (node 20)")? {
        return Ok(());
    }
    step("conformance --backend wasm");
    conformance(sh)?;
    build_package(sh)?;
    step("node:test against the nodejs build");
    // --expose-gc: the churn test measures the heap after a collection.
    cmd!(sh, "node --expose-gc --test {JS_DIR}/test/").run()?;
    step("headless Chromium against the web build");
    if std::path::Path::new(CHROMIUM).exists() {
        cmd!(sh, "node {JS_DIR}/scripts/browser-test.mjs {PKG_DIR}")
            .env("CHROMIUM", CHROMIUM)
            .run()?;
    } else if in_ci() {
        bail!("{CHROMIUM} is missing: apt-get install -y chromium (CI=true makes this a failure)");
    } else {
        eprintln!("skipping: {CHROMIUM} is missing (apt-get install -y chromium)");
    }
    Ok(())
}

/// `cargo xtask bench wasm`: the package against lru-cache in Node, on the Zipf workload.
pub(crate) fn bench(sh: &Shell) -> Result<()> {
    build_package(sh)?;
    step("bench: @cachekit/wasm vs lru-cache (node)");
    cmd!(sh, "node --expose-gc {JS_DIR}/scripts/bench.mjs {PKG_DIR}").run()?;
    Ok(())
}

/// Installs the JS tools from the lock file unless they are installed from this very lock file.
fn js_tools(sh: &Shell) -> Result<()> {
    if !require(sh, "npm", "apt-get install -y nodejs npm (node 20)")? {
        bail!("npm is needed to build the package: apt-get install -y nodejs npm (node 20)");
    }
    // npm writes node_modules/.package-lock.json on every install: older than the lock file, the
    // tools are from before its last change.
    let modified = |path: String| {
        std::fs::metadata(crate::project_root().join(path))
            .and_then(|m| m.modified())
            .ok()
    };
    let installed = modified(format!("{JS_DIR}/node_modules/.package-lock.json"));
    let locked = modified(format!("{JS_DIR}/package-lock.json"));
    if matches!((installed, locked), (Some(installed), Some(locked)) if installed >= locked) {
        return Ok(());
    }
    let _dir = sh.push_dir(JS_DIR);
    // playwright-core never downloads a browser; the variable makes sure nothing else does.
    cmd!(sh, "npm ci --no-audit --no-fund")
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .run()?;
    Ok(())
}

fn check_wasm_bindgen(sh: &Shell) -> Result<()> {
    let version = cmd!(sh, "wasm-bindgen --version").read().with_context(|| {
        format!(
            "wasm-bindgen CLI not found: cargo install wasm-bindgen-cli --version {WASM_BINDGEN_VERSION}"
        )
    })?;
    if !version.ends_with(WASM_BINDGEN_VERSION) {
        bail!(
            "{version} found, but the wasm-bindgen crate is pinned to {WASM_BINDGEN_VERSION}: \
             cargo install wasm-bindgen-cli --version {WASM_BINDGEN_VERSION} --force"
        );
    }
    Ok(())
}

/// Whether `program` is on PATH. Missing is an error under CI, and a skip (false) otherwise.
fn require(sh: &Shell, program: &str, install: &str) -> Result<bool> {
    if cmd!(sh, "{program} --version").quiet().read().is_ok() {
        return Ok(true);
    }
    if in_ci() {
        bail!("{program} is missing: {install} (CI=true makes this a failure)");
    }
    eprintln!("skipping the wasm steps: {program} is missing ({install})");
    Ok(false)
}

fn target_dir(sh: &Shell) -> Result<PathBuf> {
    Ok(match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => sh.current_dir().join("target"),
    })
}
