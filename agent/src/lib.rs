//! kaoqin-agent: observes sessions and application categories on an office PC,
//! spools them durably and delivers them to the collector.

/// The events the agent records (shared with the collector).
pub use kaoqin_proto::event;
pub mod probe;
