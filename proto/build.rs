//! Compiles `proto/kaoqin/v1/*.proto` with the vendored protoc, so a fresh machine
//! needs nothing but the Rust toolchain.
//!
//! Two passes: the messages and the clients with tonic's own codec, then the servers
//! alone with [`StrictCodec`](../src/codec.rs), which answers a request that does not
//! decode with InvalidArgument. The client keeps the stock codec: an agent must treat
//! an undecodable answer as a fault to retry, never as a refusal of its events.

const PROTOS: [&str; 2] = [
    "proto/kaoqin/v1/agent.proto",
    "proto/kaoqin/v1/report.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);

    let mut config = prost_build::Config::new();
    config.protoc_executable(&protoc);
    tonic_prost_build::configure()
        .build_server(false)
        .file_descriptor_set_path(out_dir.join("kaoqin_descriptor.bin"))
        .compile_with_config(config, &PROTOS, &["proto"])?;

    let servers = out_dir.join("servers");
    std::fs::create_dir_all(&servers)?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(&protoc);
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .out_dir(&servers)
        .extern_path(".kaoqin.v1", "crate::v1")
        .codec_path("crate::codec::StrictCodec")
        .compile_with_config(config, &PROTOS, &["proto"])?;

    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
