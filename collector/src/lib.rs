//! kaoqin-collector: enrols agents, ingests their events exactly once, stores
//! them, and judges attendance from them.

pub mod app;
pub mod attendance;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod i18n;
pub mod ingest;
pub mod integrity;
#[cfg(test)]
mod layering;
pub mod ldap;
pub mod leave;
pub mod metrics;
pub mod notice;
pub mod notify;
pub mod periodic;
pub mod policy;
pub mod ratelimit;
pub mod report_service;
pub mod reports;
pub mod requests;
pub mod server;
pub mod service_manager;
pub mod staff;
pub mod store;
pub mod tls;
pub mod users;
pub mod verdicts;
pub mod web;
