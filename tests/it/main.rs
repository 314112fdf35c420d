//! Integration tests: the real server against a real AWS emulator (moto, auth on). One binary,
//! a module per feature. Each test gets its own server, store and mount (so its own IAM path).

mod support;

mod acl;
mod agent;
mod api;
mod audit;
mod chaos;
mod cli;
mod connections;
mod credential_process;
mod endpoints;
mod exec;
mod hardening;
mod iam_user;
mod key_map;
mod kms;
mod layering;
mod limits;
mod logins;
mod openapi;
mod recovery;
mod replicas;
mod rolling;
mod secrets;
mod setup;
mod spelling;
mod static_roles;
mod store;
mod sts;
mod sweep;
mod systemd_unit;
mod tls;
mod tokens;
mod ui;
mod vault_shapes;
mod wait_ready;
mod whois;
