//! The kaoqin wire protocol, package `kaoqin.v1`.
//!
//! The `.proto` files under `proto/kaoqin/v1/` are the contract between agents and
//! the collector. They evolve by adding fields only: a removed field's tag and name
//! are `reserved`, never reused, so an old agent and a new collector (or the reverse)
//! always understand each other.
//!
//! Protobuf types stop at the edge: the agent and the collector convert them into
//! their own domain types in one place each.

pub mod classify;
pub mod codec;
pub mod convert;
pub mod event;
pub mod limits;

/// Generated messages and services of `kaoqin.v1`.
#[allow(unreachable_pub, clippy::all)]
pub mod v1 {
    tonic::include_proto!("kaoqin.v1");
    // The servers, generated apart so they use [`crate::codec::StrictCodec`].
    include!(concat!(env!("OUT_DIR"), "/servers/kaoqin.v1.rs"));

    /// The encoded `FileDescriptorSet`, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("kaoqin_descriptor");
}

/// Metadata key that carries the agent's id on every authenticated call.
pub const AGENT_ID_HEADER: &str = "x-kaoqin-agent-id";
/// Metadata key that carries `Bearer <agent key>` on every authenticated call.
pub const AUTHORIZATION_HEADER: &str = "authorization";
