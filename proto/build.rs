//! Compiles `proto/kaoqin/v1/*.proto` with the vendored protoc, so a fresh machine
//! needs nothing but the Rust toolchain.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("kaoqin_descriptor.bin"))
        .compile_with_config(
            config,
            &[
                "proto/kaoqin/v1/agent.proto",
                "proto/kaoqin/v1/report.proto",
            ],
            &["proto"],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
