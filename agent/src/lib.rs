//! kaoqin-agent: observes sessions and application categories on an office PC,
//! spools them durably and delivers them to the collector.

pub mod event;
pub mod probe;
