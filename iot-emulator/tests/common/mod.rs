//! What the emulator's tests share: an `aws-sdk-iot` client as the Lambda builds one (static
//! test credentials, the SDK's own retries off), pointed at the emulator.

/// The access key id every test client signs with.
pub const ACCESS_KEY: &str = "AKIDTEST";

/// An `aws-sdk-iot` client for the emulator at `endpoint`.
pub fn iot(endpoint: &str) -> aws_sdk_iot::Client {
    aws_sdk_iot::Client::from_conf(
        aws_sdk_iot::Config::builder()
            .behavior_version(aws_sdk_iot::config::BehaviorVersion::latest())
            .region(aws_sdk_iot::config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_iot::config::Credentials::new(
                ACCESS_KEY, "secret", None, None, "test",
            ))
            .endpoint_url(endpoint)
            .retry_config(aws_sdk_iot::config::retry::RetryConfig::disabled())
            .build(),
    )
}
