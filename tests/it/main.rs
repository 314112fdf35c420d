//! Integration tests: the real server against a real AWS emulator (moto, auth on). One binary,
//! a module per feature. Each test gets its own server, store and mount (so its own IAM path).

mod support;

mod acl;
mod api;
mod audit;
mod cli;
mod iam_user;
mod layering;
mod limits;
mod recovery;
mod secrets;
mod sts;
mod tls;
