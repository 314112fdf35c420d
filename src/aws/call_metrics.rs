//! Counts and times every AWS call by service, operation and outcome, from one SDK interceptor
//! that both clients carry; error codes are counted where errors are interpreted
//! (`AwsError::from_sdk`).

use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

#[derive(Debug)]
pub(crate) struct CallMetrics;

/// When the call started, kept in the call's own config bag.
#[derive(Debug, Clone, Copy)]
struct CallStart(Instant);

impl Storable for CallStart {
    type Storer = StoreReplace<Self>;
}

fn names(cfg: &ConfigBag) -> (String, String) {
    cfg.load::<Metadata>().map_or_else(
        || ("unknown".into(), "unknown".into()),
        |m| (m.service().to_owned(), m.name().to_owned()),
    )
}

impl Intercept for CallMetrics {
    fn name(&self) -> &'static str {
        "iamlease::CallMetrics"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(CallStart(Instant::now()));
        Ok(())
    }

    /// Every attempt, retries included, with the HTTP status AWS answered (or `none`).
    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = names(cfg);
        let status = context
            .response()
            .map_or_else(|| "none".to_owned(), |r| r.status().as_u16().to_string());
        metrics::counter!("iamlease_aws_attempts_total", "service" => service, "operation" => operation, "status" => status)
            .increment(1);
        Ok(())
    }

    /// Every call once, after the SDK's retries.
    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = names(cfg);
        let outcome = match context.output_or_error() {
            Some(Ok(_)) => "ok",
            _ => "error",
        };
        if let Some(CallStart(started)) = cfg.load::<CallStart>() {
            // Retries and backoff included: what the call cost the request that made it.
            metrics::histogram!("iamlease_aws_call_duration_seconds", "service" => service.clone(), "operation" => operation.clone())
                .record(started.elapsed().as_secs_f64());
        }
        metrics::counter!("iamlease_aws_calls_total", "service" => service, "operation" => operation, "outcome" => outcome)
            .increment(1);
        Ok(())
    }
}
