//! kaoqin-collector: enrols agents, ingests their events exactly once, stores
//! them, and judges attendance from them.

pub mod attendance;
pub mod cli;
pub mod config;
pub mod error;
pub mod ingest;
pub mod server;
pub mod store;
