//! The HTTP API, shaped like Vault's so Vault clients work unchanged. The only module that
//! knows about HTTP: it turns requests into engine calls and engine results into responses.

mod error;
pub mod internal;
mod router;
mod secrets;
mod setup;
mod sys;
mod token;
mod vault;

pub use router::app;

use std::sync::Arc;

use crate::engine::Engine;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
}
