//! The wasm32 build, the npm package and its tests (filled in by the wasm binding work).

use anyhow::{Result, bail};
use xshell::Shell;

pub(crate) fn build_package(_sh: &Shell) -> Result<()> {
    bail!("the npm package build is not implemented yet")
}

pub(crate) fn conformance(_sh: &Shell) -> Result<()> {
    bail!("the wasm conformance run is not implemented yet")
}

/// Everything wasm-related that `cargo xtask test` runs.
pub(crate) fn test_all(_sh: &Shell) -> Result<()> {
    Ok(())
}

pub(crate) fn bench(_sh: &Shell) -> Result<()> {
    bail!("the wasm benchmark is not implemented yet")
}
