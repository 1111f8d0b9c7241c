//! A Redis for the benchmarks that need one, and how many client threads to give them; shared by
//! the `tiered` and `typed` benches (included by path).
#![allow(dead_code)] // each bench uses part of it

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server on a free loopback port, killed on drop.
pub(crate) struct LocalRedis(Child);

impl LocalRedis {
    /// Takes charge of a started `redis-server`.
    pub(crate) fn new(child: Child) -> Self {
        LocalRedis(child)
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `REDIS_URL` if set, else a fresh `redis-server` on a free port of 127.0.0.1 (stopped when the
/// returned guard drops), else `None`.
pub(crate) fn redis_url() -> Option<(String, Option<LocalRedis>)> {
    if let Ok(url) = std::env::var("REDIS_URL") {
        if !url.is_empty() {
            return Some((url, None));
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let server = LocalRedis(child);
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((format!("redis://127.0.0.1:{port}"), Some(server)))
}

/// Worker threads for the L2 rows: every core but one, which the Redis server (usually on this machine)
/// needs. With as many workers as cores, the client and the server take cores from each other, and on a
/// 2-core machine pairs of 50-task rounds then ranged from 0.7× to 1.9×.
pub(crate) fn client_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}
