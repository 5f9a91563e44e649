//! The `custos` service: configuration, the pipeline that composes ingest,
//! ledger and correlation, the HTTP API, and the demo plant.

#![forbid(unsafe_code)]

pub mod account_changes;
pub mod accounts;
pub mod alarms;
pub mod archive;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod clocks;
pub mod config;
mod deadletter;
pub mod demo;
mod error;
pub mod evidence;
pub mod feeds;
pub mod follow;
pub mod health;
pub mod in_force;
mod listfile;
pub mod metrics;
pub mod on_site;
pub mod pipeline;
pub mod reload;
pub mod replay;
pub mod room;
mod schemas;
pub mod search;
pub mod server;
pub mod sign_in;
pub mod silence;
pub mod sql;
pub mod state;
pub mod systemd;
pub mod views;

pub use config::Config;
pub use error::Error;
pub use pipeline::{Custos, IngestNode};
