//! Redis servers for the conformance suite and the benchmark: make sure Docker answers, build the
//! local image from the host's `redis-server` when it is missing, then run the tests or the bench.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

/// The image the tests start (nothing can be pulled on CI machines, so it is built locally).
const IMAGE: &str = "local/redis:7";
/// The label the test fixtures put on their containers.
const PID_LABEL: &str = "cache-conformance.pid";

/// Runs the conformance crate's test binaries `tests` on servers of our image (never a
/// developer's `REDIS_URL`), with `cargo_args` for cargo and `test_args` for the tests.
pub(crate) fn run_tests(
    sh: &Shell,
    tests: &[&str],
    cargo_args: &[&str],
    test_args: &[&str],
) -> Result<()> {
    ensure_docker(sh)?;
    ensure_image(sh)?;
    let _image = sh.push_env("CACHE_TEST_REDIS_IMAGE", IMAGE);
    // The standalone suite must start its own server, not reuse a developer's REDIS_URL.
    let _url = sh.push_env("REDIS_URL", "");
    let mut result: Result<()> = Ok(());
    for test in tests {
        result = cmd!(
            sh,
            "cargo test {cargo_args...} --locked -p cache-conformance --test {test} -- {test_args...}"
        )
        .run()
        .map_err(Into::into);
        if result.is_err() {
            break;
        }
    }
    remove_test_containers(sh);
    result
}

/// `cargo xtask conformance --backend redis|redis-cluster|redis-tls|redis-acl|redis-sentinel`.
pub(crate) fn conformance(sh: &Shell, backend: &str) -> Result<()> {
    let tests: &[&str] = match backend {
        // The fault test restarts Redis under load; it belongs to the standalone run.
        "redis" => &["redis", "redis_fault", "patterns_redis"],
        "redis-cluster" => &[
            "redis_cluster",
            "patterns_redis_cluster",
            "redis_cluster_failover",
        ],
        "redis-tls" => &["redis_tls"],
        "redis-acl" => &["redis_acl"],
        "redis-sentinel" => &["redis_sentinel"],
        other => bail!(
            "unknown Redis backend {other:?}; choose redis, redis-cluster, redis-tls, redis-acl or redis-sentinel"
        ),
    };
    run_tests(sh, tests, &[], &[])?;
    if backend == "redis" {
        // The collections example switches to Redis with REDIS_URL.
        with_server(sh, "example", |sh| {
            cmd!(
                sh,
                "cargo run --locked -p examples --example jobs_and_leaderboard"
            )
            .run()?;
            Ok(())
        })?;
    }
    Ok(())
}

/// `cargo xtask bench redis`: one server in a container, the bench binary against it.
pub(crate) fn bench(sh: &Shell) -> Result<()> {
    with_server(sh, "bench", |sh| {
        cmd!(sh, "cargo bench --locked -p backend-redis --bench redis").run()?;
        Ok(())
    })
}

/// Runs `work` with `REDIS_URL` set to a fresh server in a container, removed afterwards.
pub(crate) fn with_server(
    sh: &Shell,
    what: &str,
    work: impl FnOnce(&Shell) -> Result<()>,
) -> Result<()> {
    ensure_docker(sh)?;
    ensure_image(sh)?;
    let port = free_port()?.to_string();
    let name = format!("cache-{what}-redis-{}", std::process::id());
    cmd!(
        sh,
        "docker run -d --rm --name {name} --network host {IMAGE} redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no"
    )
    .run()?;
    let result = wait_for_port(&port).and_then(|()| {
        let _url = sh.push_env("REDIS_URL", format!("redis://127.0.0.1:{port}"));
        work(sh)
    });
    let _ = cmd!(sh, "docker rm -f {name}")
        .quiet()
        .ignore_stdout()
        .run();
    result
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for_port(port: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("Redis on 127.0.0.1:{port} did not start within 10 s")
}

fn docker_answers(sh: &Shell) -> bool {
    cmd!(sh, "docker info")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
}

/// Starts `dockerd` (no bridge, no iptables: containers use the host network) if Docker does not
/// answer, and waits for it.
fn ensure_docker(sh: &Shell) -> Result<()> {
    if docker_answers(sh) {
        return Ok(());
    }
    eprintln!("$ dockerd --bridge=none --iptables=false --ip-masq=false  (in the background)");
    let log = std::fs::File::create(std::env::temp_dir().join("xtask-dockerd.log"))?;
    Command::new("dockerd")
        .args(["--bridge=none", "--iptables=false", "--ip-masq=false"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context(
            "Docker does not answer and dockerd cannot be started; install it with \
             `apt-get install -y docker.io` (and run as root)",
        )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if docker_answers(sh) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    bail!("dockerd started but `docker info` still fails after 60 s; see /tmp/xtask-dockerd.log")
}

/// Builds `local/redis:7` from the host's `redis-server` and the libraries it links, unless it
/// exists. Nothing is pulled.
fn ensure_image(sh: &Shell) -> Result<()> {
    if cmd!(sh, "docker image inspect {IMAGE}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
    {
        return Ok(());
    }
    let server = cmd!(sh, "which redis-server").quiet().read().context(
        "building the Redis test image needs the host's redis-server: `apt-get install -y redis-server`",
    )?;
    let dir = sh.create_temp_dir()?;
    let root = dir.path();
    let mut files = vec![server.clone()];
    let ldd = cmd!(sh, "ldd {server}").quiet().read()?;
    for line in ldd.lines() {
        // "libssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
        let path = line
            .split("=>")
            .last()
            .and_then(|s| s.split_whitespace().next())
            .filter(|p| p.starts_with('/'));
        if let Some(path) = path {
            files.push(path.to_owned());
        }
    }
    for file in &files {
        let target = root.join(file.trim_start_matches('/'));
        sh.create_dir(target.parent().expect("absolute path has a parent"))?;
        // Follow symlinks: the image gets the real bytes under the linked name.
        std::fs::copy(file, &target).with_context(|| format!("copy {file}"))?;
    }
    let tmp = root.join("tmp");
    sh.create_dir(&tmp)?;
    cmd!(sh, "chmod 1777 {tmp}").run()?;
    eprintln!(
        "$ tar -C {} -c . | docker import -c 'CMD [\"/usr/bin/redis-server\"]' - {IMAGE}",
        root.display()
    );
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()?;
    let status = Command::new("docker")
        .args([
            "import",
            "-c",
            "CMD [\"/usr/bin/redis-server\"]",
            "-",
            IMAGE,
        ])
        .stdin(tar.stdout.take().expect("piped"))
        .stdout(Stdio::null())
        .status()?;
    if !tar.wait()?.success() || !status.success() {
        bail!("building {IMAGE} with docker import failed");
    }
    Ok(())
}

/// Removes the containers of test processes that have exited (the fixtures keep theirs in statics,
/// which are never dropped). Containers of test processes still running are left alone.
fn remove_test_containers(sh: &Shell) {
    let filter = format!("label={PID_LABEL}");
    let format = format!("{{{{.ID}}}} {{{{.Label \"{PID_LABEL}\"}}}}");
    let Ok(list) = cmd!(sh, "docker ps -a --filter {filter} --format {format}")
        .quiet()
        .read()
    else {
        return;
    };
    let orphans: Vec<&str> = list
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(_, pid)| !std::path::Path::new(&format!("/proc/{pid}")).exists())
        .map(|(id, _)| id)
        .collect();
    if !orphans.is_empty() {
        let _ = cmd!(sh, "docker rm -f {orphans...}")
            .quiet()
            .ignore_stdout()
            .run();
    }
}
