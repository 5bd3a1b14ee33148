use clap::Parser;

/// mimalloc: a Report's many small allocations (HTTP/2 frames, headers, the
/// decoded batch) cost about half of what they do in the system allocator,
/// measured on the ingest path (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    match kaoqin_collector::cli::run(kaoqin_collector::cli::Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kaoqin-collector: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
