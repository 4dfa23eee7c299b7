//! Validation of every field of a rule event, before anything is created.

use crate::csr::{self, CheckedCsr};
use crate::event::RuleEvent;
use crate::Config;
use base64::Engine as _;
use chunkprov_protocol::chunking::max_chunk;
use chunkprov_protocol::confirm::Confirmation;
use chunkprov_protocol::pull::Pull;
use chunkprov_protocol::request::Request;
use chunkprov_protocol::topic::{self, Kind};
use chunkprov_protocol::{is_valid_client_id, is_valid_thing_name, Nonce, RejectCode};
use serde_json::{Map, Value};

/// A refusal: the code and message go to `reply_to`'s rejection topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The id whose `<prefix>/<id>/rejected` topic gets the rejection: always the connection's
    /// own client id (never an id taken from the topic or payload), `None` if it cannot be used
    /// in a topic.
    pub reply_to: Option<String>,
    /// The request's nonce, if it could be read.
    pub nonce: Option<Nonce>,
    /// Why.
    pub code: RejectCode,
    /// A short message (no secrets).
    pub message: String,
}

/// Who sent a request or pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The connection's claim client id.
    pub client_id: String,
    /// The serial, taken from the client id.
    pub serial: String,
    /// The thing name derived from the serial.
    pub thing_name: String,
}

/// What the device asked for in a request, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The request's nonce.
    pub nonce: Nonce,
    /// The CSR; `None` in key mode.
    pub csr: Option<CheckedCsr>,
    /// The device's packet limit.
    pub packet_limit: u32,
    /// The device's window.
    pub window: u16,
    /// The largest frame payload for that packet limit on the frame topic.
    pub max_chunk: u32,
}

/// A validated event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Valid {
    /// A provisioning request.
    Request(Claim, Wanted),
    /// A pull.
    Pull(Claim, Pull),
    /// A confirmation: the thing name, its serial, the transfer and certificate ids.
    Confirm {
        /// The thing name (the connection's client id).
        thing_name: String,
        /// The serial the thing name was derived from.
        serial: String,
        /// The confirmed transfer.
        transfer_id: u32,
        /// The confirmed certificate.
        certificate_id: String,
    },
}

struct Ctx<'a> {
    reply_to: Option<&'a str>,
    nonce: Option<Nonce>,
}

impl Ctx<'_> {
    fn no(&self, code: RejectCode, message: impl Into<String>) -> Refusal {
        Refusal {
            reply_to: self.reply_to.map(str::to_string),
            nonce: self.nonce,
            code,
            message: message.into(),
        }
    }
}

const REQUEST_FIELDS: &[&str] = &[
    "ThingName",
    "SerialNumber",
    "Nonce",
    "Csr",
    "PacketLimit",
    "Window",
];
const PULL_FIELDS: &[&str] = &["Nonce", "TransferId", "Next", "Missing"];
const CONFIRM_FIELDS: &[&str] = &["TransferId", "CertificateId"];

/// Checks a JSON object's field names and reads its nonce (if it has a valid one).
fn object(ctx: &mut Ctx<'_>, payload: &[u8], fields: &[&str]) -> Result<Value, Refusal> {
    let value: Value = serde_json::from_slice(payload)
        .map_err(|_| ctx.no(RejectCode::Malformed, "payload is not JSON"))?;
    let map: &Map<String, Value> = value
        .as_object()
        .ok_or_else(|| ctx.no(RejectCode::Malformed, "payload is not a JSON object"))?;
    if let Some(Value::String(n)) = map.get("Nonce") {
        ctx.nonce = Nonce::from_hex(n);
    }
    if let Some(k) = map.keys().find(|k| !fields.contains(&k.as_str())) {
        let k: String = k.chars().take(40).collect();
        return Err(ctx.no(RejectCode::UnknownField, format!("unknown field {k}")));
    }
    if fields.contains(&"Nonce") && ctx.nonce.is_none() {
        return Err(match map.get("Nonce") {
            None => ctx.no(RejectCode::Malformed, "missing Nonce"),
            Some(_) => ctx.no(RejectCode::NonceInvalid, "Nonce is not 16 hex digits"),
        });
    }
    Ok(value)
}

/// Validates a rule event under `config`.
pub fn validate(config: &Config, ev: &RuleEvent) -> Result<Valid, Refusal> {
    let client_id = ev.client_id.as_str();
    let mut ctx = Ctx {
        reply_to: is_valid_client_id(client_id).then_some(client_id),
        nonce: None,
    };
    if ctx.reply_to.is_none() {
        return Err(ctx.no(RejectCode::TopicMismatch, "client id unusable in a topic"));
    }
    if topic::check(&ev.topic).is_err() {
        return Err(ctx.no(RejectCode::TopicInvalid, "topic breaks AWS IoT limits"));
    }
    let Some((id, kind)) = topic::parse(&config.prefix, &ev.topic) else {
        return Err(ctx.no(RejectCode::TopicMismatch, "topic is not a chunkprov topic"));
    };
    if id != client_id {
        return Err(ctx.no(
            RejectCode::TopicMismatch,
            "client id disagrees with the topic",
        ));
    }
    let payload = base64::engine::general_purpose::STANDARD
        .decode(ev.payload.as_bytes())
        .map_err(|_| ctx.no(RejectCode::Malformed, "payload is not base64"))?;
    match kind {
        Kind::Request | Kind::Pull => {
            let claim = claim(config, &ctx, client_id)?;
            if kind == Kind::Request {
                request(config, &mut ctx, claim, &payload)
            } else {
                let value = object(&mut ctx, &payload, PULL_FIELDS)?;
                let pull: Pull = serde_json::from_value(value)
                    .map_err(|_| ctx.no(RejectCode::Malformed, "not a pull"))?;
                if pull.next.is_none() && pull.missing.is_empty() {
                    return Err(ctx.no(RejectCode::Malformed, "pull asks for nothing"));
                }
                Ok(Valid::Pull(claim, pull))
            }
        }
        Kind::Confirm => {
            let serial = config
                .serial_of_thing(client_id)
                .filter(|s| is_valid_thing_name(s))
                .ok_or_else(|| {
                    ctx.no(
                        RejectCode::ThingNameInvalid,
                        "thing name does not follow the rule",
                    )
                })?;
            let value = object(&mut ctx, &payload, CONFIRM_FIELDS)?;
            let text = value.to_string();
            let c: Confirmation<'_> = serde_json::from_str(&text)
                .map_err(|_| ctx.no(RejectCode::Malformed, "not a confirmation"))?;
            if c.certificate_id.is_empty()
                || c.certificate_id.len() > chunkprov_protocol::MAX_CERTIFICATE_ID_LEN
            {
                return Err(ctx.no(RejectCode::Malformed, "bad CertificateId"));
            }
            Ok(Valid::Confirm {
                thing_name: client_id.to_string(),
                serial: serial.to_string(),
                transfer_id: c.transfer_id,
                certificate_id: c.certificate_id.to_string(),
            })
        }
        Kind::Frame | Kind::Rejected | Kind::ConfirmAccepted => {
            Err(ctx.no(RejectCode::TopicMismatch, "not a device-to-cloud topic"))
        }
    }
}

fn claim(config: &Config, ctx: &Ctx<'_>, client_id: &str) -> Result<Claim, Refusal> {
    let serial = client_id
        .strip_prefix(config.claim_prefix.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ctx.no(
                RejectCode::ClientIdNotClaim,
                "client id not in claim namespace",
            )
        })?;
    let thing_name = config.thing_name(serial);
    if !is_valid_thing_name(&thing_name) {
        return Err(ctx.no(RejectCode::ThingNameInvalid, "derived thing name invalid"));
    }
    let mut buf = [0u8; chunkprov_protocol::MAX_TOPIC_LEN];
    for (id, kind) in [
        (client_id, Kind::Frame),
        (client_id, Kind::Rejected),
        (thing_name.as_str(), Kind::Confirm),
        (thing_name.as_str(), Kind::ConfirmAccepted),
        (thing_name.as_str(), Kind::Rejected),
    ] {
        if topic::build(&config.prefix, id, kind, &mut buf).is_err() {
            return Err(ctx.no(
                RejectCode::TopicInvalid,
                "a reply topic breaks AWS IoT limits",
            ));
        }
    }
    Ok(Claim {
        client_id: client_id.to_string(),
        serial: serial.to_string(),
        thing_name,
    })
}

fn request(
    config: &Config,
    ctx: &mut Ctx<'_>,
    claim: Claim,
    payload: &[u8],
) -> Result<Valid, Refusal> {
    let value = object(ctx, payload, REQUEST_FIELDS)?;
    let r: Request<String> = serde_json::from_value(value)
        .map_err(|_| ctx.no(RejectCode::Malformed, "not a request"))?;
    if r.serial_number != claim.serial {
        return Err(ctx.no(
            RejectCode::IdentityMismatch,
            "SerialNumber is not the client id's",
        ));
    }
    if r.thing_name
        .as_ref()
        .is_some_and(|t| *t != claim.thing_name)
    {
        return Err(ctx.no(
            RejectCode::IdentityMismatch,
            "ThingName is not the derived one",
        ));
    }
    r.check_bounds()
        .map_err(|code| ctx.no(code, "PacketLimit or Window out of bounds"))?;
    let frame_topic_len = config.prefix.len() + claim.client_id.len() + "//frame".len();
    let max_chunk = max_chunk(r.packet_limit, frame_topic_len as u32).ok_or_else(|| {
        ctx.no(
            RejectCode::PacketLimitInvalid,
            "PacketLimit too small for a frame on this topic",
        )
    })?;
    if config
        .allow_list
        .as_ref()
        .is_some_and(|l| !l.contains(&claim.serial))
    {
        return Err(ctx.no(RejectCode::NotAllowed, "serial not on the allow-list"));
    }
    let csr = match &r.csr {
        None if !config.key_mode => {
            return Err(ctx.no(RejectCode::CsrRequired, "this deployment requires a CSR"))
        }
        None => None,
        Some(text) => Some(csr::check(text, &claim.serial).map_err(|(code, m)| ctx.no(code, m))?),
    };
    Ok(Valid::Request(
        claim,
        Wanted {
            nonce: r.nonce,
            csr,
            packet_limit: r.packet_limit,
            window: r.window,
            max_chunk,
        },
    ))
}
