//! `pqrelay-curl`: send one request through a pqrelay (see `pqrelay_client::curl`).

use clap::Parser as _;
use pqrelay_client::curl::{run, Args};

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args).await {
        eprintln!("pqrelay-curl: {e}");
        std::process::exit(match e {
            pqrelay_client::Error::InvalidRequest(_) => 2,
            _ => 1,
        });
    }
}
