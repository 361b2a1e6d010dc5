//! The `pqrelay` binary: command line, configuration, and the Pingora server.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context as _};
use clap::{Parser, Subcommand};

use pqrelay::config::{self, show, Sources};
use pqrelay::demo::DemoUpstream;
use pqrelay::{serve, ServerFlags};

/// mimalloc: glibc's malloc took a fifth of the relay's CPU time under load (bench/profile.sh).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Write a new relay key to FILE and print its fingerprint (the last line of the output).
    Keygen {
        /// Where to write the key (readable by its owner only); use it as RELAY_KEYS=FILE.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Print the table of settings (the configuration reference).
    ConfigFields {
        /// As JSON (one object per setting) instead of Markdown.
        #[arg(long)]
        json: bool,
    },
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
    let flags = ServerFlags {
        upgrade: cli.upgrade,
        daemon: cli.daemon,
        test: cli.test,
    };
    match &cli.command {
        Some(Command::ConfigFields { json: true }) => {
            println!("{}", show::fields_json());
            return Ok(());
        }
        Some(Command::ConfigFields { json: false }) => {
            print!("{}", show::reference_markdown());
            return Ok(());
        }
        Some(Command::Keygen { out, force }) => {
            let fingerprint = pqrelay::keys::keygen(out, *force)?;
            println!(
                "wrote a relay key to {} (set RELAY_KEYS={0})",
                out.display()
            );
            println!("{fingerprint}");
            return Ok(());
        }
        _ => {}
    }
    let env: HashMap<String, String> = std::env::vars().collect();
    let mut sources = Sources::new(env, file.as_deref())?;
    match cli.command {
        Some(Command::ConfigFields { .. } | Command::Keygen { .. }) => Ok(()),
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
            print!("{}", show::masked_yaml(&loaded.config, &loaded.server_conf));
            for line in pqrelay::keys::describe(&loaded.config) {
                println!("# {line}");
            }
            for w in pqrelay::check_fleet_keys(&loaded.config) {
                eprintln!("{w}");
            }
            eprintln!("configuration is valid");
            Ok(())
        }
        Some(Command::Demo) => {
            let demo = DemoUpstream::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .context("cannot bind the demo upstream")?;
            set_demo_defaults(&mut sources, demo.addr)?;
            let loaded = config::load(&sources)?;
            let upstream = demo.addr;
            serve(flags, loaded, Some(demo), |relay| {
                print_demo_help(relay.port(), upstream)
            })
        }
        Some(Command::Run) | None => {
            let loaded = config::load(&sources)?;
            serve(flags, loaded, None, |_| {})
        }
    }
}

/// Tells the user of `pqrelay demo` where to look (stdout; the logs go to stderr).
fn print_demo_help(port: u16, upstream: SocketAddr) {
    println!("pqrelay demo is running: open http://localhost:{port}/demo/");
    println!("  echo:       http://localhost:{port}/api/mte-echo/hello");
    println!("  discovery:  curl -I http://localhost:{port}/api/mte-relay");
    println!("  upstream:   http://{upstream} (echo, login, upload, events, headers)");
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
