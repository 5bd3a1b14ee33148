//! kaoqin-agent: observes sessions and application categories on an office PC,
//! spools them durably and delivers them to the collector.
//!
//! ```text
//! probe --observations--> recorder (classify) --events--> spool --batches--> uplink ==gRPC==> collector
//! ```

/// Application -> category: the rules the collector sends, applied on the PC.
pub use kaoqin_proto::classify;
pub mod cli;
pub mod clock;
pub mod config;
/// The events the agent records (shared with the collector).
pub use kaoqin_proto::event;
pub mod probe;
pub mod recorder;
pub mod runner;
pub mod service;
pub mod spool;
pub mod state;
pub mod uplink;
