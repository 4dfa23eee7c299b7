//! The events the Lambda receives.
//!
//! A topic rule's event (request, pull, confirmation), from SQL of the form
//! `SELECT encode(*, 'base64') AS payload, clientid() AS clientId, topic() AS topic,
//! timestamp() AS timestamp FROM '<prefix>/+/json'`:
//!
//! ```json
//! {"payload":"eyJTZXJpYWxOdW1iZXIiOi…","clientId":"claim-352656100000000",
//!  "topic":"chunkprov/claim-352656100000000/json","timestamp":1764412345678}
//! ```
//!
//! The payload is base64 so its fields can never collide with the rule's own. The sweep is an
//! EventBridge scheduled event (`{"source":"aws.events","detail-type":"Scheduled Event",…}`).

use serde::Deserialize;

/// A topic rule's event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleEvent {
    /// The device's payload, base64.
    pub payload: String,
    /// The MQTT client id of the connection that published (`clientid()`).
    #[serde(rename = "clientId")]
    pub client_id: String,
    /// The topic it was published on (`topic()`).
    pub topic: String,
    /// The broker's timestamp, milliseconds since the epoch (`timestamp()`).
    pub timestamp: i64,
}

/// What an invocation is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A request, pull or confirmation (told apart by the topic).
    Rule(RuleEvent),
    /// The scheduled sweep.
    Sweep,
}

/// Reads an invocation's payload.
pub fn parse(value: serde_json::Value) -> Result<Event, String> {
    if value.get("detail-type").and_then(|v| v.as_str()) == Some("Scheduled Event") {
        return Ok(Event::Sweep);
    }
    serde_json::from_value(value)
        .map(Event::Rule)
        .map_err(|e| format!("not a chunkprov rule event or scheduled event: {e}"))
}
