//! The Lambda's entry point: builds the AWS clients once per cold start and hands each event
//! to [`chunkprov_lambda::Env::handle`].

use chunkprov_lambda::aws::{configs, AwsPublisher, AwsRegistry, DynamoState};
use chunkprov_lambda::handler::system_clock;
use chunkprov_lambda::{event, Config, Env, Outcome};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Stop retrying this long before the invocation's deadline, to answer in time.
const MARGIN: Duration = Duration::from_millis(1500);

async fn data_endpoint(iot: &aws_sdk_iot::Client) -> Result<String, Error> {
    if let Ok(e) = std::env::var("IOT_DATA_ENDPOINT") {
        return Ok(e);
    }
    let out = iot
        .describe_endpoint()
        .endpoint_type("iot:Data-ATS")
        .send()
        .await?;
    let host = out
        .endpoint_address()
        .ok_or("DescribeEndpoint: no address")?;
    Ok(format!("https://{host}"))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let table = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let probe = aws_sdk_iot::Client::new(&sdk);
    let endpoint = data_endpoint(&probe).await?;
    let (iot, data, ddb) = configs(&sdk, &endpoint);
    let iot = aws_sdk_iot::Client::from_conf(iot);
    let env = Env {
        config,
        registry: Arc::new(AwsRegistry::new(iot.clone(), iot)),
        publisher: Arc::new(AwsPublisher::new(aws_sdk_iotdataplane::Client::from_conf(
            data,
        ))),
        state: Arc::new(DynamoState::new(
            aws_sdk_dynamodb::Client::from_conf(ddb),
            table,
        )),
        clock: system_clock(),
    };
    let env = &env;
    // The benchmark times start-up to this line (a proxy for AWS's Init Duration).
    tracing::info!("initialized: waiting for invocations");
    lambda_runtime::run(service_fn(
        move |ev: LambdaEvent<serde_json::Value>| async move {
            let deadline_ms = ev.context.deadline;
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            let left = if deadline_ms > now_ms {
                Duration::from_millis(deadline_ms - now_ms).saturating_sub(MARGIN)
            } else {
                // A deadline already past on arrival is no deadline at all (local Runtime
                // APIs such as `cargo lambda watch` send a constant): retry within the
                // configured budget alone rather than not at all.
                tracing::warn!(
                    deadline_ms,
                    "invocation deadline in the past; using the retry budget"
                );
                env.config.budget
            };
            let deadline = tokio::time::Instant::now() + left;
            let event = match event::parse(ev.payload) {
                Ok(e) => e,
                Err(e) => {
                    // Nothing to answer and nothing a retry could fix.
                    tracing::error!(error = %e, "ignored an event that is not chunkprov's");
                    return Ok(serde_json::json!({ "outcome": "ignored" }));
                }
            };
            let outcome: Outcome = env.handle(event, deadline).await?;
            Ok::<_, Error>(serde_json::json!({ "outcome": format!("{outcome:?}") }))
        },
    ))
    .await
}
