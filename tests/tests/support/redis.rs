//! Redis servers for the conformance tests, started once per test binary.
//!
//! Order of preference (see STYLE.md): `REDIS_URL` (standalone only), then testcontainers when
//! Docker answers, then `redis-server` processes on free ports. Under `CI=true` a missing Docker is
//! a failure, never a fallback. The image is `CACHE_TEST_REDIS_IMAGE`; unset, it is `redis:7-alpine`
//! if that is present locally, else `local/redis:7`, which is built from the host's `redis-server`
//! (as `cargo xtask` does) when missing, because nothing can be pulled on CI machines.
//!
//! Servers live in a static for the whole process, on a runtime of their own, because every test
//! builds its own runtime. A static is never dropped, so containers are labelled with our pid and
//! the next run (and `cargo xtask`) removes those whose process is gone.

use std::future::Future;
use std::net::TcpListener;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use backend_redis::{NodeAddr, RedisConfig, RedisStore};
use cache_conformance::Fixture;
use cache_core::{CacheStore, Limits};
use testcontainers::core::WaitFor;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, CopyTargetOptions, GenericImage, ImageExt};

/// The label put on every container, holding the pid of the test process that owns it.
pub(crate) const PID_LABEL: &str = "cache-conformance.pid";

/// A store per test over a server shared by the test binary; time passes for real.
pub(crate) struct RedisFixture {
    store: RedisStore,
}

#[async_trait::async_trait]
impl Fixture for RedisFixture {
    fn store(&self) -> Arc<dyn CacheStore> {
        Arc::new(self.store.clone())
    }

    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }
}

/// The settings every fixture shares: a private key prefix per store (so `clear("")` stays inside
/// it), and a value limit small enough that the oversized-value cases run.
pub(crate) fn with_test_settings(config: RedisConfig) -> RedisConfig {
    let mut config = config;
    config.key_prefix = format!("cc{:08x}:", fastrand::u32(..));
    config.limits = Limits::new(1024, 4 << 20);
    config
}

/// Connects a fresh store to `config` (with the test settings).
pub(crate) async fn fixture(config: &RedisConfig) -> RedisFixture {
    // A loaded 2-core CI machine can miss the 1 s connect timeout now and then; say so and retry
    // rather than fail a case that is not about connecting.
    let mut attempt = 1;
    loop {
        match RedisStore::connect(with_test_settings(config.clone())).await {
            Ok(store) => return RedisFixture { store },
            Err(e) if attempt < 3 && e.is_retryable() => {
                eprintln!("cache-conformance: connect attempt {attempt} failed, retrying: {e}");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot connect to the test Redis: {e}"),
        }
    }
}

/// Servers and the config that reaches them, kept for the life of the process.
pub(crate) struct Env {
    /// How to reach the servers.
    pub config: RedisConfig,
    _servers: Vec<Server>,
}

/// A started server; it is never stopped (see the module docs).
pub(crate) enum Server {
    /// A testcontainers container.
    Container(Box<ContainerAsync<GenericImage>>),
    /// A `redis-server` child process.
    Process(Child),
}

impl Server {
    /// Stops the server at once, as if it died.
    pub(crate) async fn stop(&mut self) {
        match self {
            Server::Container(c) => c.stop_with_timeout(Some(0)).await.expect("stop container"),
            Server::Process(child) => {
                child.kill().expect("kill redis-server");
                child.wait().expect("reap redis-server");
            }
        }
    }

    /// Starts a stopped server again on the same `port`, with an empty data set, and waits until it
    /// answers.
    pub(crate) async fn restart(&mut self, port: u16) {
        match self {
            Server::Container(c) => c.start().await.expect("restart container"),
            Server::Process(child) => {
                *child = Command::new("redis-server")
                    .args(base_args(port))
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("respawn redis-server");
            }
        }
        wait_for_ping(port).await;
    }

    /// Ends a process server now; a container is removed when dropped.
    pub(crate) fn kill(&mut self) {
        if let Server::Process(child) = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A test that owns a server ends its process with it (shared servers live in statics, which
/// are never dropped).
impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts a plain standalone server on a free port and waits until it answers.
pub(crate) async fn launch_standalone(launcher: &Launcher) -> (Server, u16) {
    let port = free_port();
    let server = launcher
        .start(&base_args(port), &[], "Ready to accept connections")
        .await;
    wait_for_ping(port).await;
    (server, port)
}

/// Waits until a store connects with `config` (servers that refuse anonymous PINGs); panics
/// naming `what` after 5 s.
async fn wait_for_store(config: &RedisConfig, what: &str) {
    for _ in 0..100 {
        if RedisStore::connect(config.clone()).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} never accepted a connection");
}

/// Starts a Sentinel on a free port that monitors the master on `master_port` as [`MASTER_NAME`]
/// (quorum 1, down after 1 s), and waits until it answers.
pub(crate) async fn launch_sentinel(launcher: &Launcher, master_port: u16) -> (Server, u16) {
    let sentinel_port = free_port();
    let conf_path = tmp_path(&format!("sentinel-{sentinel_port}.conf"));
    // A password on the Sentinel itself, as production setups have, so the store must send it.
    let conf = format!(
        "port {sentinel_port}\nbind 127.0.0.1\ndir /tmp\nrequirepass {SENTINEL_PASSWORD}\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 1\n\
         sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
         sentinel failover-timeout {MASTER_NAME} 5000\n"
    );
    let sentinel = launcher
        .start(
            &[conf_path.clone(), "--sentinel".to_owned()],
            &[(conf_path, conf.into_bytes())],
            "+monitor master",
        )
        .await;
    wait_for_client(&sentinel_client(sentinel_port), sentinel_port).await;
    (sentinel, sentinel_port)
}

/// A client for the test Sentinel on `port`, with its password.
pub(crate) fn sentinel_client(port: u16) -> redis::Client {
    redis::Client::open(format!("redis://:{SENTINEL_PASSWORD}@127.0.0.1:{port}")).expect("a client")
}

/// A config that finds the master through the test Sentinel on `port`.
pub(crate) fn sentinel_config(port: u16) -> backend_redis::RedisConfigBuilder {
    RedisConfig::builder()
        .sentinel([NodeAddr::new("127.0.0.1", port)], MASTER_NAME)
        .sentinel_password(SENTINEL_PASSWORD)
}

type EnvFuture = Pin<Box<dyn Future<Output = Env> + Send>>;

/// Starts `Env` once per process, on a runtime that outlives every test's own runtime.
pub(crate) fn shared(
    cell: &'static OnceLock<Env>,
    start: fn(Launcher) -> EnvFuture,
) -> &'static Env {
    cell.get_or_init(|| {
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a tokio runtime");
            let env = rt.block_on(start(Launcher::detect()));
            // Keep the runtime (and the containers' clients) alive for the rest of the process.
            std::mem::forget(rt);
            env
        })
        .join()
        .expect("starting the test servers panicked")
    })
}

/// How servers are started here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Launcher {
    /// testcontainers, host network.
    Docker,
    /// `redis-server` processes (developers without Docker).
    Process,
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn docker_answers() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Launcher {
    /// Docker if it answers; otherwise `redis-server` processes, except under CI.
    pub(crate) fn detect() -> Self {
        if docker_answers() {
            reap_orphans();
            return Launcher::Docker;
        }
        if in_ci() {
            panic!(
                "CI=true and Docker does not answer (`docker info` failed): the Redis conformance \
                 tests must run through testcontainers in CI. Start dockerd, or run `cargo xtask \
                 conformance --backend redis`, which starts it."
            );
        }
        let has_redis = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            has_redis,
            "neither Docker nor a redis-server binary is available: install Docker (preferred) or \
             redis-server, or set REDIS_URL for the standalone suite"
        );
        eprintln!(
            "cache-conformance: Docker does not answer; falling back to redis-server processes"
        );
        reap_orphan_processes();
        Launcher::Process
    }

    /// Starts `redis-server ARGS…` (the first arg may be a config file). `files` are written to
    /// the same absolute paths in the container (or on the host), and `ready` is the log line that
    /// says the server is up.
    pub(crate) async fn start(
        &self,
        args: &[String],
        files: &[(String, Vec<u8>)],
        ready: &str,
    ) -> Server {
        match self {
            Launcher::Docker => {
                let image = image().to_owned();
                let (name, tag) = match image.rsplit_once(':') {
                    Some((name, tag)) if !tag.contains('/') => (name.to_owned(), tag.to_owned()),
                    _ => (image.clone(), "latest".to_owned()),
                };
                let mut cmd = vec!["redis-server".to_owned()];
                cmd.extend(args.iter().cloned());
                let mut request = GenericImage::new(name, tag)
                    .with_wait_for(WaitFor::message_on_stdout(ready))
                    .with_network("host")
                    .with_label(PID_LABEL, std::process::id().to_string())
                    .with_startup_timeout(Duration::from_secs(30))
                    .with_cmd(cmd);
                for (path, data) in files {
                    // World-writable: Sentinel rewrites its config file, and the official image
                    // runs redis-server as the `redis` user.
                    let target = CopyTargetOptions::new(path.clone()).with_mode(0o666);
                    request = request.with_copy_to(target, data.clone());
                }
                let container = request.start().await.unwrap_or_else(|e| {
                    panic!("cannot start a {image} container (is the image built? `cargo xtask conformance --backend redis` builds local/redis:7): {e}")
                });
                Server::Container(Box::new(container))
            }
            Launcher::Process => {
                for (path, data) in files {
                    std::fs::write(path, data).expect("write a server file");
                }
                let child = Command::new("redis-server")
                    .args(args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn redis-server");
                record_process(child.id());
                Server::Process(child)
            }
        }
    }
}

/// The public image users get by default.
const DEFAULT_IMAGE: &str = "redis:7-alpine";
/// The image built from the host's `redis-server` where nothing can be pulled.
const LOCAL_IMAGE: &str = "local/redis:7";

fn image_exists(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The image to start; see the module docs.
fn image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        if let Ok(image) = std::env::var("CACHE_TEST_REDIS_IMAGE") {
            if !image.is_empty() {
                return image;
            }
        }
        if image_exists(DEFAULT_IMAGE) {
            return DEFAULT_IMAGE.to_owned();
        }
        if image_exists(LOCAL_IMAGE) || build_local_image() {
            return LOCAL_IMAGE.to_owned();
        }
        DEFAULT_IMAGE.to_owned() // testcontainers will try to pull it
    })
}

/// Builds `local/redis:7` from the host's `redis-server` and the libraries `ldd` lists (the same
/// recipe as `cargo xtask`). Returns whether it worked.
fn build_local_image() -> bool {
    let Ok(which) = Command::new("which").arg("redis-server").output() else {
        return false;
    };
    let server = String::from_utf8_lossy(&which.stdout).trim().to_owned();
    if server.is_empty() {
        return false;
    }
    let Ok(ldd) = Command::new("ldd").arg(&server).output() else {
        return false;
    };
    let root = std::env::temp_dir().join(format!("cache-conformance-image-{}", std::process::id()));
    let mut files = vec![server];
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        if let Some(path) = line
            .split("=>")
            .last()
            .and_then(|s| s.split_whitespace().next())
            .filter(|p| p.starts_with('/'))
        {
            files.push(path.to_owned());
        }
    }
    for file in &files {
        let target = root.join(file.trim_start_matches('/'));
        let copied = std::fs::create_dir_all(target.parent().unwrap())
            .and_then(|_| std::fs::copy(file, &target));
        if copied.is_err() {
            return false;
        }
    }
    let tmp = root.join("tmp");
    if std::fs::create_dir_all(&tmp).is_err() {
        return false;
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777));
    }
    eprintln!("cache-conformance: building {LOCAL_IMAGE} from the host's redis-server");
    let Ok(mut tar) = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
    else {
        return false;
    };
    let imported = Command::new("docker")
        .args([
            "import",
            "-c",
            "CMD [\"/usr/bin/redis-server\"]",
            "-",
            LOCAL_IMAGE,
        ])
        .stdin(tar.stdout.take().expect("piped"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let tarred = tar.wait().is_ok_and(|s| s.success());
    let _ = std::fs::remove_dir_all(&root);
    imported && tarred
}

/// Removes containers left by test processes that are gone (statics are never dropped).
fn reap_orphans() {
    let Ok(out) = Command::new("docker")
        .args(["ps", "-a", "--filter"])
        .arg(format!("label={PID_LABEL}"))
        .arg("--format")
        .arg(format!("{{{{.ID}}}} {{{{.Label \"{PID_LABEL}\"}}}}"))
        .output()
    else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((id, pid)) = line.split_once(' ') else {
            continue;
        };
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        if !alive {
            let _ = Command::new("docker")
                .args(["rm", "-f", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Where the fallback records its `redis-server` processes: one empty file `OWNER-CHILD` each.
const PROCESS_DIR: &str = "/tmp/cache-conformance-processes";

fn record_process(child: u32) {
    let _ = std::fs::create_dir_all(PROCESS_DIR);
    let _ = std::fs::write(format!("{PROCESS_DIR}/{}-{child}", std::process::id()), b"");
}

/// Stops the `redis-server` processes of test processes that are gone (statics are never dropped).
fn reap_orphan_processes() {
    let Ok(entries) = std::fs::read_dir(PROCESS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((owner, child)) = name.split_once('-') else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{owner}")).exists() {
            let _ = Command::new("kill")
                .arg(child)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A loopback port that refuses connections for as long as the returned socket lives: bound, never
/// listening. (A port from [`free_port`] may be taken meanwhile by a server another test starts.)
pub(crate) fn refusing_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind(([127, 0, 0, 1], 0).into())
        .expect("bind 127.0.0.1:0");
    let port = socket.local_addr().expect("a bound address").port();
    (socket, port)
}

/// A unique path in /tmp for a file the server reads (the same path in and out of a container).
pub(crate) fn tmp_path(name: &str) -> String {
    format!("/tmp/cache-conformance-{}-{name}", std::process::id())
}

/// Arguments every server gets: loopback only, no persistence, a writable directory.
pub(crate) fn base_args(port: u16) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        "/tmp",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Waits until a plain-TCP server at `port` answers PING (it may still be loading).
pub(crate) async fn wait_for_ping(port: u16) {
    wait_for_client(
        &redis::Client::open(("127.0.0.1", port)).expect("a client"),
        port,
    )
    .await;
}

/// Waits until `client` (for the server at `port`) gets an answer to PING.
async fn wait_for_client(client: &redis::Client, port: u16) {
    for _ in 0..100 {
        if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
            if redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .is_ok()
            {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the Redis server on port {port} never answered PING");
}

// ---------------------------------------------------------------------------------------------
// The five setups.

fn start_standalone(launcher: Launcher) -> EnvFuture {
    Box::pin(async move {
        let (server, port) = launch_standalone(&launcher).await;
        let config = RedisConfig::builder()
            .standalone("127.0.0.1", port)
            .build()
            .expect("a valid config");
        Env {
            config,
            _servers: vec![server],
        }
    })
}

/// Standalone: `REDIS_URL` if set, else a server started for this binary.
pub(crate) async fn standalone() -> RedisFixture {
    static ENV: OnceLock<Env> = OnceLock::new();
    static URL_CONFIG: OnceLock<Option<RedisConfig>> = OnceLock::new();
    let from_url = URL_CONFIG.get_or_init(|| {
        std::env::var("REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .map(|u| RedisConfig::from_url(&u).expect("REDIS_URL is a valid Redis URL"))
    });
    match from_url {
        Some(config) => fixture(config).await,
        None => fixture(&shared(&ENV, start_standalone).config).await,
    }
}

fn start_cluster(launcher: Launcher) -> EnvFuture {
    Box::pin(async move {
        let (servers, ports) = launch_cluster(&launcher).await;
        let config = RedisConfig::builder()
            .cluster(ports.iter().map(|&p| NodeAddr::new("127.0.0.1", p)))
            .build()
            .expect("a valid config");
        Env {
            config,
            _servers: servers,
        }
    })
}

/// A 3-master Redis Cluster.
pub(crate) async fn cluster() -> RedisFixture {
    static ENV: OnceLock<Env> = OnceLock::new();
    fixture(&shared(&ENV, start_cluster).config).await
}

/// The ACL user of the ACL setup.
pub(crate) const ACL_USER: &str = "cacheuser";
/// Its password.
pub(crate) const ACL_PASSWORD: &str = "s3cret-Pa55";

fn start_acl(launcher: Launcher) -> EnvFuture {
    Box::pin(async move {
        let port = free_port();
        let mut args = base_args(port);
        args.extend(
            [
                "--user",
                "default",
                "off",
                "--user",
                ACL_USER,
                "on",
                &format!(">{ACL_PASSWORD}"),
                "~*",
                "&*",
                "+@all",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let server = launcher
            .start(&args, &[], "Ready to accept connections")
            .await;
        let config = RedisConfig::builder()
            .standalone("127.0.0.1", port)
            .username(ACL_USER)
            .password(ACL_PASSWORD)
            .build()
            .expect("a valid config");
        // The default user is off, so wait by connecting as the ACL user.
        wait_for_store(
            &config,
            &format!("the ACL server on port {port}, as {ACL_USER},"),
        )
        .await;
        Env {
            config,
            _servers: vec![server],
        }
    })
}

/// The ACL server's config (user and password set).
pub(crate) fn acl_config() -> RedisConfig {
    static ENV: OnceLock<Env> = OnceLock::new();
    shared(&ENV, start_acl).config.clone()
}

/// A server whose default user is off, reached as an ACL user with a password.
pub(crate) async fn acl() -> RedisFixture {
    fixture(&acl_config()).await
}

fn openssl(args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl (apt-get install -y openssl)");
    assert!(status.success(), "openssl {args:?} failed");
}

/// Makes a CA, a server certificate for 127.0.0.1/localhost and a client certificate, in `dir`.
fn make_certificates(dir: &std::path::Path) {
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=cache-conformance test CA",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.crt"),
    ]);
    std::fs::write(
        p("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(p("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for who in ["server", "client"] {
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={who}"),
            "-keyout",
            &p(&format!("{who}.key")),
            "-out",
            &p(&format!("{who}.csr")),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &p(&format!("{who}.csr")),
            "-CA",
            &p("ca.crt"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &p(&format!("{who}.ext")),
            "-out",
            &p(&format!("{who}.crt")),
        ]);
    }
}

const CERTIFICATES: [&str; 5] = [
    "ca.crt",
    "server.crt",
    "server.key",
    "client.crt",
    "client.key",
];

/// The PEM file `name` of a CA, server and client certificates made once per test process.
fn pem(name: &str) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("cache-conformance-tls-{}", std::process::id()));
    static MADE: OnceLock<()> = OnceLock::new();
    MADE.get_or_init(|| {
        std::fs::create_dir_all(&dir).unwrap();
        make_certificates(&dir);
    });
    std::fs::read(dir.join(name)).unwrap()
}

/// The certificate files a TLS server reads, at their `tmp_path`s.
fn tls_files() -> Vec<(String, Vec<u8>)> {
    CERTIFICATES
        .iter()
        .map(|name| (tmp_path(name), pem(name)))
        .collect()
}

/// Arguments of a TLS-only server (mutual TLS) on `tls_port`.
fn tls_args(tls_port: u16) -> Vec<String> {
    let mut args = base_args(0);
    args.extend([
        "--tls-port".to_owned(),
        tls_port.to_string(),
        "--tls-cert-file".to_owned(),
        tmp_path("server.crt"),
        "--tls-key-file".to_owned(),
        tmp_path("server.key"),
        "--tls-ca-cert-file".to_owned(),
        tmp_path("ca.crt"),
        "--tls-auth-clients".to_owned(),
        "yes".to_owned(),
    ]);
    args
}

fn start_tls(launcher: Launcher) -> EnvFuture {
    Box::pin(async move {
        let port = free_port();
        let server = launcher
            .start(&tls_args(port), &tls_files(), "Ready to accept connections")
            .await;
        let config = RedisConfig::builder()
            .standalone("127.0.0.1", port)
            .tls_ca_cert_pem(pem("ca.crt"))
            .tls_client_cert_pem(pem("client.crt"), pem("client.key"))
            .build()
            .expect("a valid config");
        wait_for_store(&config, &format!("the TLS server on port {port}")).await;
        Env {
            config,
            _servers: vec![server],
        }
    })
}

/// A TLS-only server (mutual TLS) with a CA and certificates made at test time.
pub(crate) async fn tls() -> RedisFixture {
    static ENV: OnceLock<Env> = OnceLock::new();
    fixture(&shared(&ENV, start_tls).config).await
}

/// A TLS-only master behind a TLS-only Sentinel (mutual TLS everywhere; the Sentinel reaches the
/// master with the client certificate), and a config that reaches both over TLS.
pub(crate) async fn launch_tls_sentinel(launcher: &Launcher) -> (Vec<Server>, RedisConfig) {
    let mut files = tls_files();
    let (master_port, sentinel_port) = (free_port(), free_port());
    let master = launcher
        .start(
            &tls_args(master_port),
            &files,
            "Ready to accept connections",
        )
        .await;
    let conf_path = tmp_path(&format!("sentinel-{sentinel_port}.conf"));
    let p = tmp_path;
    let conf = format!(
        "port 0\ntls-port {sentinel_port}\nbind 127.0.0.1\ndir /tmp\n\
         tls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n\
         tls-client-cert-file {}\ntls-client-key-file {}\ntls-replication yes\n\
         tls-auth-clients yes\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 1\n",
        p("server.crt"),
        p("server.key"),
        p("ca.crt"),
        p("client.crt"),
        p("client.key"),
    );
    files.push((conf_path.clone(), conf.into_bytes()));
    let sentinel = launcher
        .start(
            &[conf_path, "--sentinel".to_owned()],
            &files,
            "+monitor master",
        )
        .await;
    let config = RedisConfig::builder()
        .sentinel([NodeAddr::new("127.0.0.1", sentinel_port)], MASTER_NAME)
        .sentinel_tls(true)
        .tls_ca_cert_pem(pem("ca.crt"))
        .tls_client_cert_pem(pem("client.crt"), pem("client.key"))
        .build()
        .expect("a valid config");
    (vec![master, sentinel], config)
}

/// The name Sentinel monitors the master under.
pub(crate) const MASTER_NAME: &str = "cachemaster";
/// The Sentinels' own password (`requirepass` in sentinel.conf).
pub(crate) const SENTINEL_PASSWORD: &str = "sentinel-Pa55";

fn start_sentinel(launcher: Launcher) -> EnvFuture {
    Box::pin(async move {
        let master_port = free_port();
        let master = launcher
            .start(&base_args(master_port), &[], "Ready to accept connections")
            .await;
        wait_for_ping(master_port).await;
        let (sentinel, sentinel_port) = launch_sentinel(&launcher, master_port).await;
        let config = sentinel_config(sentinel_port)
            .build()
            .expect("a valid config");
        Env {
            config,
            _servers: vec![master, sentinel],
        }
    })
}

/// One master behind one Sentinel.
pub(crate) async fn sentinel() -> RedisFixture {
    static ENV: OnceLock<Env> = OnceLock::new();
    fixture(&shared(&ENV, start_sentinel).config).await
}

impl RedisFixture {
    /// The `RedisStore` itself, for tests that need its config (e.g. to connect a `RedisBus`).
    pub(crate) fn redis_store(&self) -> &RedisStore {
        &self.store
    }
}

/// Starts a 3-master Redis Cluster (no replicas) owned by the caller (the shared fixture's, or a
/// test's that stops its nodes), and waits until every node reports `cluster_state:ok`. Returns the servers and their
/// ports, in seed order.
pub(crate) async fn launch_cluster(launcher: &Launcher) -> (Vec<Server>, Vec<u16>) {
    launch_primaries(launcher, "5000").await
}

/// [`launch_cluster`] with the nodes' `cluster-node-timeout` (ms).
async fn launch_primaries(launcher: &Launcher, node_timeout: &str) -> (Vec<Server>, Vec<u16>) {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut servers = Vec::new();
    for &port in &ports {
        servers.push(start_cluster_node(launcher, port, node_timeout).await);
    }
    let per = 16384 / 3;
    for (i, &port) in ports.iter().enumerate() {
        let client = redis::Client::open(("127.0.0.1", port)).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let first = i * per;
        let last = if i == 2 { 16383 } else { (i + 1) * per - 1 };
        redis::cmd("CLUSTER")
            .arg("ADDSLOTSRANGE")
            .arg(first)
            .arg(last)
            .exec_async(&mut conn)
            .await
            .expect("CLUSTER ADDSLOTSRANGE");
        if i > 0 {
            redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(ports[0])
                .exec_async(&mut conn)
                .await
                .expect("CLUSTER MEET");
        }
    }
    'wait: for _ in 0..200 {
        for &port in &ports {
            let client = redis::Client::open(("127.0.0.1", port)).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut conn)
                .await
                .unwrap();
            if !(info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")) {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue 'wait;
            }
        }
        return (servers, ports);
    }
    panic!("the 3-master cluster on ports {ports:?} never reached cluster_state:ok");
}

/// Starts one Cluster-enabled node on `port` with `node_timeout` (ms): after it, a primary that
/// does not answer is failed over to its replica.
async fn start_cluster_node(launcher: &Launcher, port: u16, node_timeout: &str) -> Server {
    let mut args = base_args(port);
    args.extend(
        [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            &tmp_path(&format!("nodes-{port}.conf")),
            "--cluster-node-timeout",
            node_timeout,
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let server = launcher
        .start(&args, &[], "Ready to accept connections")
        .await;
    wait_for_ping(port).await;
    server
}

/// A connection to one node, for cluster administration.
pub(crate) async fn node_connection(port: u16) -> redis::aio::MultiplexedConnection {
    redis::Client::open(("127.0.0.1", port))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A plain redis-rs Cluster connection (not the SDK), for writes made outside it.
pub(crate) async fn cluster_writer(ports: &[u16]) -> redis::cluster_async::ClusterConnection {
    redis::cluster::ClusterClient::new(
        ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>(),
    )
    .expect("a cluster client")
    .get_async_connection()
    .await
    .expect("a cluster connection")
}

/// `ROLE` of the node on `port`: "master" or "slave".
pub(crate) async fn role(port: u16) -> String {
    let role: Vec<redis::Value> = redis::cmd("ROLE")
        .query_async(&mut node_connection(port).await)
        .await
        .unwrap();
    match &role[0] {
        redis::Value::BulkString(r) => String::from_utf8_lossy(r).into_owned(),
        other => panic!("unexpected ROLE reply {other:?}"),
    }
}

/// Waits until the replica on `replica` has every write the primary on `primary` has made:
/// replication is asynchronous, so a primary killed earlier takes its last writes with it.
pub(crate) async fn wait_for_replication(primary: u16, replica: u16) {
    for _ in 0..200 {
        // ROLE on a primary: ["master", offset, [[host, port, acknowledged offset], ...]].
        let reply: Vec<redis::Value> = redis::cmd("ROLE")
            .query_async(&mut node_connection(primary).await)
            .await
            .unwrap();
        let offset: i64 = redis::from_redis_value(reply[1].clone()).unwrap();
        let replicas: Vec<(String, String, String)> =
            redis::from_redis_value(reply[2].clone()).unwrap();
        let port = replica.to_string();
        if replicas
            .iter()
            .any(|(_, p, acked)| *p == port && acked.parse::<i64>().is_ok_and(|a| a >= offset))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the replica on {replica} never caught up with {primary}");
}

/// A 3-primary Cluster with one replica per primary, in sync. Returns the servers (primaries,
/// then replicas) and the ports of the primaries and of their replicas, pairwise.
pub(crate) async fn launch_cluster_with_replicas(
    launcher: &Launcher,
) -> (Vec<Server>, Vec<u16>, Vec<u16>) {
    let (mut servers, primaries) = launch_primaries(launcher, "2000").await;
    let replicas: Vec<u16> = (0..3).map(|_| free_port()).collect();
    for (&primary, &replica) in primaries.iter().zip(&replicas) {
        servers.push(start_cluster_node(launcher, replica, "2000").await);
        let mut conn = node_connection(replica).await;
        redis::cmd("CLUSTER")
            .arg("MEET")
            .arg("127.0.0.1")
            .arg(primaries[0])
            .exec_async(&mut conn)
            .await
            .unwrap();
        let id: String = redis::cmd("CLUSTER")
            .arg("MYID")
            .query_async(&mut node_connection(primary).await)
            .await
            .unwrap();
        // The replica must know the primary before it can follow it.
        let mut replicated = false;
        for _ in 0..200 {
            let followed = redis::cmd("CLUSTER")
                .arg("REPLICATE")
                .arg(&id)
                .exec_async(&mut conn)
                .await;
            if followed.is_ok() {
                replicated = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            replicated,
            "the node on {replica} never learned its primary {primary}"
        );
    }
    for &replica in &replicas {
        let mut synced = false;
        for _ in 0..400 {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut node_connection(replica).await)
                .await
                .unwrap();
            if info.contains("master_link_status:up") {
                synced = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(synced, "the replica on {replica} never synced");
    }
    wait_for_cluster_ok(primaries.iter().chain(&replicas).copied(), 6).await;
    (servers, primaries, replicas)
}

/// Waits until every node on `ports` says `cluster_state:ok` and knows `nodes` nodes.
pub(crate) async fn wait_for_cluster_ok(ports: impl Iterator<Item = u16> + Clone, nodes: usize) {
    let known = format!("cluster_known_nodes:{nodes}");
    for _ in 0..400 {
        let mut all = true;
        for port in ports.clone() {
            let Ok(info) = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async::<String>(&mut node_connection(port).await)
                .await
            else {
                all = false;
                break;
            };
            all &= info.contains("cluster_state:ok") && info.contains(&known);
        }
        if all {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the cluster never reached cluster_state:ok with {nodes} nodes");
}
