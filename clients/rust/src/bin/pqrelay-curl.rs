//! `pqrelay-curl`: send one request through a pqrelay (see `pqrelay_client::curl`). Exit
//! status: 0 success, 1 failure, 2 invalid arguments, 3 relay not trusted, 4 outcome unknown.

use clap::Parser as _;
use pqrelay_client::curl::{error_message, exit_code, run, Args};

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args).await {
        eprintln!("{}", error_message(&e, &args));
        std::process::exit(exit_code(&e));
    }
}
