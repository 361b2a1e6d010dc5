//! `bare-pingora`: the smallest Pingora proxy, the base the relay stands on.
//!
//! A `ProxyHttp` whose only filter is `upstream_peer` (one fixed upstream), run with the
//! relay's own server settings so that the bench can compare CPU per request with the relay's
//! pass-through route: the same Pingora version and features, `threads`, `work_stealing: false`,
//! `upstream_keepalive_pool_size`, a 16 KiB write buffer on client connections, mimalloc, and
//! the relay's upstream peer options (60 s idle timeout, one connection-pool group per thread).
//!
//! `bare-pingora --listen 127.0.0.1:8080 --upstream 127.0.0.1:9090 --threads 2 --dir /tmp/x`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use clap::Parser;
use pingora_core::listeners::{L4BufferSettings, ListenerConfig};
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_proxy::{ProxyHttp, Session};

/// The relay's allocator (src/main.rs), so that the comparison is of the proxies' work.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The relay's write buffer of each client connection (src/server.rs).
const CLIENT_WRITE_BUFFER: usize = 16 * 1024;
/// The relay's idle timeout of pooled upstream connections (src/upstream.rs).
const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Parser, Debug)]
#[command(
    name = "bare-pingora",
    about = "The smallest Pingora proxy, with the relay's server settings"
)]
struct Cli {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// The one plain-HTTP upstream.
    #[arg(long)]
    upstream: SocketAddr,
    /// Pingora worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Idle upstream connections kept (Pingora `upstream_keepalive_pool_size`).
    #[arg(long, default_value_t = 1024)]
    keepalive_pool: usize,
    /// Directory for the pid file and upgrade socket.
    #[arg(long, default_value = "/tmp")]
    dir: PathBuf,
}

/// The proxy: every request goes to one upstream.
struct Bare {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> pingora_core::Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        peer.options.idle_timeout = Some(UPSTREAM_IDLE_TIMEOUT);
        peer.group_key = thread_pool_group();
        Ok(Box::new(peer))
    }
}

/// One connection-pool group per proxy thread, as the relay does (src/upstream.rs): a pooled
/// upstream connection is reused only by the thread (runtime) that opened it.
fn thread_pool_group() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static GROUP: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    GROUP.with(|group| *group)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let conf = ServerConf {
        threads: cli.threads.max(1),
        work_stealing: false,
        upstream_keepalive_pool_size: cli.keepalive_pool,
        pid_file: cli.dir.join("bare-pingora.pid").display().to_string(),
        upgrade_sock: cli.dir.join("bare-pingora.sock").display().to_string(),
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: false,
        daemon: false,
        nocapture: false,
        test: false,
        conf: None,
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    let mut proxy = pingora_proxy::http_proxy_service(
        &server.configuration,
        Bare {
            upstream: cli.upstream,
        },
    );
    proxy.add_listener(
        ListenerConfig::tcp(cli.listen.to_string())
            .l4_buffer(L4BufferSettings::default().write(CLIENT_WRITE_BUFFER)),
    );
    server.add_service(proxy);
    eprintln!(
        "bare-pingora listening at http://{} → http://{}",
        cli.listen, cli.upstream
    );
    server.run_forever()
}
