//! Compiles the previous release's agent protocol (`proto/previous/`, frozen) into
//! a client, so the tests can speak to the collector as an agent of that release.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(&protoc);
    tonic_prost_build::configure()
        .build_server(false)
        .compile_with_config(
            config,
            &["proto/previous/kaoqin/v1/agent.proto"],
            &["proto/previous"],
        )?;
    println!("cargo:rerun-if-changed=proto/previous");
    Ok(())
}
