//! kaoqin-collector: enrols agents, ingests their events exactly once, stores
//! them, and judges attendance from them.

pub mod attendance;
pub mod cli;
pub mod config;
pub mod error;
pub mod ingest;
pub mod leave;
pub mod reports;
pub mod server;
pub mod staff;
pub mod store;
pub mod tls;
pub mod verdicts;
