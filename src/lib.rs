//! iamlease: dynamic, short-lived AWS credentials behind a Vault-compatible HTTP API.
//!
//! `api` (HTTP) → `engine` (decisions, lease state machine) → `store` (SQL) and `aws` (SDK).
//! See ARCHITECTURE.md for the map and the invariants.

pub mod api;
pub mod audit;
pub mod auth;
pub mod aws;
pub mod clock;
pub mod config;
pub mod duration;
pub mod engine;
pub mod idp;
pub mod key_map;
pub mod model;
pub mod seal;
pub mod server;
pub mod setup;
pub mod store;
pub mod telemetry;
pub mod ui;
