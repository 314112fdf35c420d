//! Counts every AWS call by service, operation and outcome, from one SDK interceptor that both
//! clients carry; error codes are counted where errors are interpreted (`AwsError::from_sdk`).

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

#[derive(Debug)]
pub(crate) struct CallMetrics;

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
        metrics::counter!("iamlease_aws_calls_total", "service" => service, "operation" => operation, "outcome" => outcome)
            .increment(1);
        Ok(())
    }
}
