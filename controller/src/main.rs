//! `controller`: the administrator's CLI.

use std::process::ExitCode;

use clap::Parser;
use sms_controller::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    sms_controller::output::quiet_on_closed_stdout();
    let cli = Cli::parse();
    match cli.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("controller: {}", sms_controller::client::error_text(&e));
            ExitCode::FAILURE
        }
    }
}
