//! Real `redis-server` processes on loopback: a single node (plain, or TLS with feature
//! `tls`) and a three-master cluster, killed (and their files removed) on drop.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, Proc, TempDir};

/// How long [`RedisCluster::start`] waits for `cluster_state:ok`.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether `program` (`redis-server`, `redis-cli`) cannot be run here (`<program> --version`
/// fails); if so, says on stderr that the calling test is skipped. Use:
/// `if redis::missing("redis-server") { return; }`.
pub fn missing(program: &str) -> bool {
    let runs = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !runs {
        eprintln!("skipped: {program} is not installed");
    }
    !runs
}

/// A `redis-server` command for 127.0.0.1:`port` without persistence, its files in `dir`,
/// logging to stdout (a [`Proc`] puts that in its log file).
pub fn command(dir: &Path, port: u16) -> Command {
    let mut cmd = server_command(dir);
    cmd.args(["--port", &port.to_string()]);
    cmd
}

/// The arguments every test server has (no port yet).
fn server_command(dir: &Path) -> Command {
    let mut cmd = Command::new("redis-server");
    cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir);
    cmd
}

/// TLS files of a test server: a CA, and a server certificate for `localhost` and 127.0.0.1.
#[cfg(feature = "tls")]
pub struct TlsFiles {
    /// The CA certificate (PEM).
    pub ca: std::path::PathBuf,
    /// The server certificate (PEM).
    pub cert: std::path::PathBuf,
    /// The server key (PEM).
    pub key: std::path::PathBuf,
}

#[cfg(feature = "tls")]
impl TlsFiles {
    /// Generates a CA and a server certificate into `dir`.
    ///
    /// # Panics
    /// When generating or writing them fails.
    pub fn generate(dir: &Path) -> TlsFiles {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pqrelay test CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let key = rcgen::KeyPair::generate().expect("server key");
        let params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("server parameters");
        let cert = params
            .signed_by(&key, &ca, &ca_key)
            .expect("server certificate");
        let files = TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        };
        std::fs::write(&files.ca, ca.pem()).expect("writing the CA");
        std::fs::write(&files.cert, cert.pem()).expect("writing the certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("writing the key");
        files
    }
}

/// One `redis-server` on loopback, without persistence, killed on drop.
pub struct RedisServer {
    proc: Option<Proc>,
    /// Its port on 127.0.0.1 (the TLS port for a TLS server).
    pub port: u16,
    dir: TempDir,
    /// Set when the server listens with TLS only.
    #[cfg(feature = "tls")]
    pub tls: Option<TlsFiles>,
    extra: Vec<String>,
}

impl RedisServer {
    /// A plain server on a free port.
    ///
    /// # Panics
    /// When `redis-server` cannot be started or does not listen within 30 s.
    pub fn start() -> RedisServer {
        Self::start_with(free_port(), &[])
    }

    /// A TLS-only server (`rediss://`) on a free port, with a fresh CA.
    ///
    /// # Panics
    /// As [`RedisServer::start`].
    #[cfg(feature = "tls")]
    pub fn start_tls() -> RedisServer {
        let dir = scratch();
        let tls = TlsFiles::generate(dir.path());
        let mut server = RedisServer {
            proc: None,
            port: free_port(),
            dir,
            tls: Some(tls),
            extra: Vec::new(),
        };
        server.spawn();
        server
    }

    /// A plain server on `port` with extra arguments (e.g. cluster mode).
    ///
    /// # Panics
    /// As [`RedisServer::start`].
    pub fn start_with(port: u16, extra: &[&str]) -> RedisServer {
        let mut server = RedisServer {
            proc: None,
            port,
            dir: scratch(),
            #[cfg(feature = "tls")]
            tls: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    fn command(&self) -> Command {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            let mut cmd = server_command(self.dir.path());
            cmd.args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(&tls.cert)
                .arg("--tls-key-file")
                .arg(&tls.key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca)
                .args(["--tls-auth-clients", "no"]);
            return cmd;
        }
        command(self.dir.path(), self.port)
    }

    fn spawn(&mut self) {
        let mut cmd = self.command();
        cmd.args(&self.extra);
        let log = self.dir.path().join("redis.log");
        let name = format!("redis-server on port {}", self.port);
        let mut proc = Proc::spawn(&name, &mut cmd, log).unwrap_or_else(|e| panic!("{e}"));
        proc.wait_port(self.port).unwrap_or_else(|e| panic!("{e}"));
        self.proc = Some(proc);
    }

    /// Its scratch directory (data files, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `redis://127.0.0.1:<port>` (or `rediss://localhost:<port>` with TLS).
    pub fn url(&self) -> String {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return format!("rediss://localhost:{}", self.port);
        }
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (its data is gone).
    pub fn stop(&mut self) {
        self.proc = None;
    }

    /// Starts it again on the same port (empty).
    ///
    /// # Panics
    /// As [`RedisServer::start`].
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Runs `redis-cli` against this (plain) server and returns its standard output.
    ///
    /// # Panics
    /// When `redis-cli` cannot be run.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli: {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A scratch directory for one server.
fn scratch() -> TempDir {
    TempDir::new("pqrelay-redis").unwrap_or_else(|e| panic!("redis scratch directory: {e}"))
}

/// Three masters in cluster mode on loopback, slots spread by `redis-cli --cluster create`.
pub struct RedisCluster {
    /// The nodes.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the cluster and waits (up to 20 s) until every node reports `cluster_state:ok`.
    ///
    /// # Panics
    /// When a node does not start, `redis-cli --cluster create` fails, or the cluster does not
    /// become ok in time.
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(
                    free_port(),
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ],
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli: {e}"));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        while !nodes
            .iter()
            .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"))
        {
            assert!(
                Instant::now() < deadline,
                "the redis cluster on {addrs:?} never reported cluster_state:ok"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        RedisCluster { nodes }
    }

    /// The URL of the first node (the others are discovered).
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }
}
