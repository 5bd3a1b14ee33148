//! kaoqin end to end: the real collector and agent binaries on loopback, with the
//! real servers they talk to (PostgreSQL, OpenLDAP, SMTP and HTTP receivers,
//! headless Chromium, Wine), all in one test binary.
//!
//! One module per area, and `util` for what several areas share; starting a
//! collector, running an agent and bounded waits (`eventually`) are in the
//! `kaoqin-tests` library (`tests/src/lib.rs`). Run one area with `cargo test -p kaoqin-tests --test it
//! web::`, one test by its name.

mod attendance;
mod console;
mod e2e;
mod faults;
mod hostile;
mod ldap;
mod loadgen;
mod logs;
mod notify;
mod offline;
mod operations;
mod packages;
mod postgres;
mod previous_agent;
mod report_api;
mod requests;
mod trust;
mod upgrades;
mod util;
mod web;
mod windows;
