use clap::Parser;

fn main() -> std::process::ExitCode {
    match kaoqin_agent::cli::run(kaoqin_agent::cli::Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kaoqin-agent: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
