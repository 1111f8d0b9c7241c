//! Fixture code shared by the Redis test files; each binary uses only part of it.
#![allow(dead_code)]

pub(crate) mod differential;
pub(crate) mod escape;
pub(crate) mod redis;
