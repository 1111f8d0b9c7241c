//! Redis servers for the conformance suite and the benchmark (filled in by the Redis backend work).

use anyhow::{Result, bail};
use xshell::Shell;

pub(crate) fn conformance(_sh: &Shell, backend: &str) -> Result<()> {
    bail!("the {backend} conformance run is not implemented yet")
}

pub(crate) fn bench(_sh: &Shell) -> Result<()> {
    bail!("the redis benchmark is not implemented yet")
}
