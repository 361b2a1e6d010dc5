//! The `pqrelay` binary: command line, configuration, and the Pingora server.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _};
use clap::{Parser, Subcommand};
use pingora_core::listeners::{L4BufferSettings, ListenerConfig};
use pingora_core::server::configuration::Opt;
use pingora_core::server::{RunArgs, Server};
use pingora_core::services::background::GenBackgroundService;
use pingora_core::services::listening::Service;

use pqrelay::config::{self, Loaded, Sources};
use pqrelay::demo::DemoUpstream;
use pqrelay::head_deadline::HeadDeadline;
use pqrelay::proxy::Relay;
use pqrelay::state::RelayState;

/// mimalloc: glibc's malloc took a fifth of the relay's CPU time under load (bench/profile.sh).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Write buffer of each client connection (Pingora's default: 1460 bytes). A response head and
/// a body of up to this size leave in one `send` instead of two; Pingora flushes it at the end
/// of each response, and at once for chunked (streaming) bodies.
const CLIENT_WRITE_BUFFER: usize = 16 * 1024;

/// Exit status for an invalid configuration.
const EXIT_CONFIG: u8 = 2;
/// Exit status for a failure to start.
const EXIT_START: u8 = 1;

#[derive(Parser, Debug)]
#[command(
    name = "pqrelay",
    version,
    about = "Post-quantum end-to-end encrypting HTTP relay"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// YAML config file (pqrelay keys in camelCase, Pingora keys in snake_case).
    #[arg(long, global = true, env = "CONFIG_FILE", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Pingora's config flag; the same file format as --config.
    #[arg(short = 'c', long = "conf", global = true, value_name = "FILE")]
    conf: Option<PathBuf>,
    /// Take over the listening sockets of a running relay (zero-downtime upgrade).
    #[arg(short, long, global = true)]
    upgrade: bool,
    /// Run in the background.
    #[arg(short, long, global = true)]
    daemon: bool,
    /// Test the configuration and exit.
    #[arg(short, long, global = true)]
    test: bool,
    /// Ignored (accepted so `cargo test` style invocations do not fail).
    #[arg(long, hide = true, global = true)]
    nocapture: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the relay (the default).
    Run,
    /// Run the relay with a built-in demo upstream and sane defaults.
    Demo,
    /// Validate the configuration and print it, secrets masked.
    CheckConfig,
    /// Run only the demo upstream.
    DemoUpstream {
        /// Port to listen on (0 picks a free port).
        #[arg(long, default_value_t = 8081)]
        port: u16,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(errors) = e.downcast_ref::<config::ConfigErrors>() {
                eprintln!("{errors}");
                eprintln!(
                    "pqrelay: invalid configuration ({} problem(s))",
                    errors.0.len()
                );
                ExitCode::from(EXIT_CONFIG)
            } else {
                eprintln!("pqrelay: {e:#}");
                ExitCode::from(EXIT_START)
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let file = match (&cli.config, &cli.conf) {
        (Some(a), Some(b)) if a != b => {
            bail!("--config and -c/--conf name different files; use one file for both")
        }
        (a, b) => a.clone().or_else(|| b.clone()),
    };
    let env: HashMap<String, String> = std::env::vars().collect();
    let mut sources = Sources::new(env, file.as_deref())?;
    match cli.command {
        Some(Command::DemoUpstream { port, host }) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the runtime")?;
            rt.block_on(pqrelay::demo::run_standalone(
                SocketAddr::new(host, port),
                |addr| println!("demo upstream listening at http://{addr}"),
            ))
            .context("demo upstream failed")
        }
        Some(Command::CheckConfig) => {
            let loaded = config::load(&sources)?;
            for w in &loaded.warnings {
                eprintln!("{w}");
            }
            print!("{}", loaded.config.to_masked_yaml(&loaded.server_conf));
            eprintln!("configuration is valid");
            Ok(())
        }
        Some(Command::Demo) => {
            let demo = DemoUpstream::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .context("cannot bind the demo upstream")?;
            set_demo_defaults(&mut sources, demo.addr)?;
            let loaded = config::load(&sources)?;
            serve(cli, loaded, Some(demo))
        }
        Some(Command::Run) | None => {
            let loaded = config::load(&sources)?;
            serve(cli, loaded, None)
        }
    }
}

fn set_demo_defaults(sources: &mut Sources, upstream: SocketAddr) -> anyhow::Result<()> {
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.trim().parse::<u16>().ok())
        .unwrap_or(config::DEFAULT_PORT);
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret).map_err(|e| anyhow!("random generator failed: {e}"))?;
    let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    sources.set_default("UPSTREAM", format!("http://{upstream}"));
    sources.set_default("CLIENT_ID_SECRET", secret);
    sources.set_default(
        "CORS_ORIGINS",
        format!("http://localhost:{port},http://127.0.0.1:{port}"),
    );
    sources.set_default("DEMO", "true".into());
    Ok(())
}

fn serve(cli: Cli, loaded: Loaded, demo: Option<DemoUpstream>) -> anyhow::Result<()> {
    let Loaded {
        config,
        server_conf,
        warnings,
        file,
    } = loaded;
    pqrelay::logging::init(config.log_format, config.debug);
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
    let demo_line = demo.as_ref().map(|d| d.addr);

    let opt = Opt {
        upgrade: cli.upgrade,
        daemon: cli.daemon,
        nocapture: cli.nocapture,
        test: cli.test,
        conf: None,
    };
    let mut server = Server::new_with_opt_and_conf(opt, server_conf);
    server.bootstrap();

    let state = Arc::new(RelayState::new(config).map_err(|e| anyhow!(e))?);
    // The proxy inside the first-request-head deadline (slowloris, `HEADER_TIMEOUT_MS`).
    let relay = pingora_proxy::http_proxy(
        &server.configuration,
        Relay {
            state: state.clone(),
        },
    );
    let header_timeout = state.config.limits.header_timeout;
    let mut proxy = Service::new("pqrelay".into(), HeadDeadline::new(relay, header_timeout));
    proxy.add_listener(
        ListenerConfig::tcp(listen.to_string())
            .l4_buffer(L4BufferSettings::default().write(CLIENT_WRITE_BUFFER)),
    );
    server.add_service(proxy);
    if state.upstreams.len > 1 {
        server.add_service(GenBackgroundService::new(
            "upstream health checks".into(),
            state.upstreams.balancer(),
        ));
    }
    for (host, site) in state.sites.iter().flat_map(|s| s.all()) {
        if site.upstreams.len > 1 {
            server.add_service(GenBackgroundService::new(
                format!("upstream health checks of {host}"),
                site.upstreams.balancer(),
            ));
        }
    }
    if let Some(demo) = demo {
        server.add_service(GenBackgroundService::new(
            "demo upstream".into(),
            Arc::new(demo),
        ));
    }
    let metrics_addr = state
        .config
        .metrics_port
        .map(|port| SocketAddr::new(listen.ip(), port));
    if let Some(addr) = metrics_addr {
        pqrelay::metrics::init(state.store.clone());
        server.add_service(pqrelay::metrics::service(&addr.to_string()));
    }
    pqrelay::lifecycle::watch(server.watch_execution_phase());

    log::info!("pqrelay instantiated successfully.");
    let shown = bracketed(listen);
    log::info!("Server listening at http://{shown}");
    if let Some(addr) = metrics_addr {
        let path = pqrelay::metrics::METRICS_PATH;
        log::info!("metrics at http://{}{path}", bracketed(addr));
    }
    if let Some(addr) = demo_line {
        log::info!("demo upstream at http://{addr}");
        let port = listen.port();
        println!("pqrelay demo is running: open http://localhost:{port}/demo/");
        println!("  echo:       http://localhost:{port}/api/mte-echo/hello");
        println!("  discovery:  curl -I http://localhost:{port}/api/mte-relay");
        println!("  upstream:   http://{addr} (echo, login, upload, events, headers)");
    }
    server.run(RunArgs {
        shutdown_signal: Box::new(pqrelay::lifecycle::Signals),
    });
    pqrelay::lifecycle::exit()
}

/// `[ip]:port`, as the vendor relay prints its address (IPv4 in brackets too).
fn bracketed(addr: SocketAddr) -> String {
    format!("[{}]:{}", addr.ip(), addr.port())
}
