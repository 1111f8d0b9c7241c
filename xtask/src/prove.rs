//! `cargo xtask prove`: the generated-sequence tests and the fuzz targets, with far more cases than `cargo xtask test`
//! runs (proptest's default of 256).

use anyhow::Result;
use xshell::{Shell, cmd};

use crate::{redis, step};

pub(crate) fn run(sh: &Shell, cases: u32) -> Result<()> {
    let _cases = sh.push_env("PROPTEST_CASES", cases.to_string());
    step(&format!(
        "model-based tests of MemoryStore, {cases} sequences each"
    ));
    cmd!(
        sh,
        "cargo test --release --locked -p cache-conformance --test model_memory"
    )
    .run()?;
    step(&format!(
        "differential tests of RedisStore against the model, {cases} sequences each"
    ));
    redis::run_tests(
        sh,
        &["redis", "redis_cluster"],
        &["--release"],
        &["answers_every_sequence_as_the_model"],
    )
}
