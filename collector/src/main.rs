use clap::Parser;

fn main() -> std::process::ExitCode {
    match kaoqin_collector::cli::run(kaoqin_collector::cli::Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kaoqin-collector: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
