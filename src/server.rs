//! Assembling and running the Pingora server: the proxy behind the head deadline on its
//! listener, the upstream health checks of every site, the demo upstream, the metrics
//! listener, and the lifecycle watcher.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use pingora_core::listeners::{L4BufferSettings, ListenerConfig};
use pingora_core::server::configuration::Opt;
use pingora_core::server::{RunArgs, Server};
use pingora_core::services::background::GenBackgroundService;
use pingora_core::services::listening::Service;

use crate::config::Loaded;
use crate::demo::DemoUpstream;
use crate::http::deadline::HeadDeadline;
use crate::outbound::Outbound;
use crate::proxy::Relay;
use crate::state::RelayState;

/// Write buffer of each client connection (Pingora's default: 1460 bytes). A response head and
/// a body of up to this size leave in one `send` instead of two; Pingora flushes it at the end
/// of each response, and at once for chunked (streaming) bodies.
const CLIENT_WRITE_BUFFER: usize = 16 * 1024;

/// Pingora's process flags, as given on the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerFlags {
    /// Take over the listening sockets of a running relay (`-u`).
    pub upgrade: bool,
    /// Run in the background (`-d`).
    pub daemon: bool,
    /// Test the configuration and exit (`-t`).
    pub test: bool,
}

/// Runs the relay until it is stopped; never returns on success (the process exits through
/// [`crate::lifecycle::exit`]). `demo` is the built-in demo upstream, already bound;
/// `on_listening` gets the relay's address once it is set up, just before it starts serving.
pub fn serve(
    flags: ServerFlags,
    loaded: Loaded,
    demo: Option<DemoUpstream>,
    on_listening: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let Loaded {
        config,
        server_conf,
        warnings,
        file,
    } = loaded;
    crate::logging::init(config.log_format, config.debug);
    if let Some(f) = &file {
        log::info!("configuration loaded from {}", f.display());
    }
    for w in &warnings {
        log::warn!("{w}");
    }
    let listen = SocketAddr::new(
        config.host.parse().context("HOST is not an IP address")?,
        config.port,
    );
    let opt = Opt {
        upgrade: flags.upgrade,
        daemon: flags.daemon,
        nocapture: false,
        test: flags.test,
        conf: None,
    };
    let mut server = Server::new_with_opt_and_conf(opt, server_conf);
    server.bootstrap();

    let outbound = Outbound::new(&config).map_err(|e| anyhow!(e))?;
    let state = Arc::new(RelayState::new(config).map_err(|e| anyhow!(e))?);
    let relay = Relay {
        state: state.clone(),
        outbound,
    };
    let relay = pingora_proxy::http_proxy(&server.configuration, relay);
    // The proxy inside the request-head deadline (slowloris, `HEADER_TIMEOUT_MS`; kept-alive
    // connections idle at most `CLIENT_TIMEOUT_MS`, re-armed by the proxy's `logging`).
    // With PROXY_PROTOCOL, each connection's PROXY header is read first, within the same time.
    let guarded = HeadDeadline::new(
        relay,
        state.config.limits.header_timeout,
        state.config.proxy_protocol,
    );
    let mut proxy = Service::new("pqrelay".into(), guarded);
    proxy.add_listener(
        ListenerConfig::tcp(listen.to_string())
            .l4_buffer(L4BufferSettings::default().write(CLIENT_WRITE_BUFFER)),
    );
    server.add_service(proxy);
    for site in state.sites.all() {
        if site.upstreams.len() > 1 {
            let name = match &site.host {
                Some(host) => format!("upstream health checks of {host}"),
                None => "upstream health checks".into(),
            };
            server.add_service(GenBackgroundService::new(name, site.upstreams.balancer()));
        }
    }
    let demo_addr = demo.as_ref().map(|d| d.addr);
    if let Some(demo) = demo {
        let service = GenBackgroundService::new("demo upstream".into(), Arc::new(demo));
        server.add_service(service);
    }
    let metrics_addr = state
        .config
        .metrics_port
        .map(|port| SocketAddr::new(listen.ip(), port));
    if let Some(addr) = metrics_addr {
        let store = state.store.clone();
        let counts = store
            .pairs()
            .is_some()
            .then(|| Box::new(move || store.pairs()) as crate::metrics::PairCounter);
        crate::metrics::init(counts);
        server.add_service(crate::metrics::service(&addr.to_string()));
    }
    crate::lifecycle::watch(server.watch_execution_phase());

    for line in crate::keys::describe(&state.config) {
        log::info!("{line}");
    }
    for warning in compare_keys(&state) {
        log::warn!("{warning}");
    }
    log::info!("pqrelay instantiated successfully.");
    log::info!("Server listening at http://{}", bracketed(listen));
    if let Some(addr) = metrics_addr {
        let path = crate::metrics::METRICS_PATH;
        log::info!("metrics at http://{}{path}", bracketed(addr));
    }
    if let Some(addr) = demo_addr {
        log::info!("demo upstream at http://{addr}");
    }
    on_listening(listen);
    server.run(RunArgs {
        shutdown_signal: Box::new(crate::lifecycle::Signals),
    });
    crate::lifecycle::exit()
}

/// Announces this relay's keys to a shared store and returns the warnings of
/// [`crate::keys::compare_with_fleet`] (within a few seconds; nothing when Redis is down).
fn compare_keys(state: &RelayState) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let Ok(runtime) = runtime else {
        return Vec::new();
    };
    let compare = crate::keys::compare_with_fleet(&state.config, state.store.as_ref(), true);
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(3), compare).await })
        .unwrap_or_default()
}

/// For `check-config`: compares the configured relay keys with those a relay sharing the
/// configured Redis announced, without announcing them.
pub fn check_fleet_keys(config: &crate::config::Config) -> Vec<String> {
    let Ok(state) = RelayState::new(config.clone()) else {
        return Vec::new();
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let Ok(runtime) = runtime else {
        return Vec::new();
    };
    let compare = crate::keys::compare_with_fleet(&state.config, state.store.as_ref(), false);
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(3), compare).await })
        .unwrap_or_default()
}

/// `[ip]:port`, as the vendor relay prints its address (IPv4 in brackets too).
fn bracketed(addr: SocketAddr) -> String {
    format!("[{}]:{}", addr.ip(), addr.port())
}
