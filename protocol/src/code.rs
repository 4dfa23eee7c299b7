//! The one list of rejection codes. Codes 1–63 are reasons the cloud rejects a request, pull or
//! confirmation (sent in a [`Rejection`](crate::reject::Rejection)); codes 64–127 are reasons
//! the device rejects a frame (reported to the firmware, never sent). A decoder that meets an
//! unknown code keeps its number ([`RejectCode::from_u16`] returns `None`) and treats it as final.

macro_rules! codes {
    ($( $(#[$doc:meta])* $name:ident = $value:literal, $retry:literal; )*) => {
        /// Why a message was rejected. The numeric values are part of the wire format.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum RejectCode {
            $( $(#[$doc])* $name = $value, )*
        }

        impl RejectCode {
            /// Every code, in numeric order.
            pub const ALL: &'static [RejectCode] = &[$(RejectCode::$name,)*];

            /// The code with this number, if it is one this version knows.
            pub const fn from_u16(value: u16) -> Option<Self> {
                match value {
                    $( $value => Some(RejectCode::$name), )*
                    _ => None,
                }
            }

            /// The code's name as used in logs and documentation.
            pub const fn name(self) -> &'static str {
                match self {
                    $( RejectCode::$name => stringify!($name), )*
                }
            }

            /// Whether the same message may succeed if sent again later (the device should back
            /// off and retry) rather than being wrong in itself.
            pub const fn retryable(self) -> bool {
                match self {
                    $( RejectCode::$name => $retry, )*
                }
            }
        }
    };
}

codes! {
    /// The payload is not valid JSON of the expected shape.
    Malformed = 1, false;
    /// The payload has a field this version does not define.
    UnknownField = 2, false;
    /// The client id is not in the claim namespace (`<claimPrefix><serial>`).
    ClientIdNotClaim = 3, false;
    /// `SerialNumber` or `ThingName` in the payload disagrees with the connection's client id.
    IdentityMismatch = 4, false;
    /// The client id in the rule's event disagrees with the topic.
    TopicMismatch = 5, false;
    /// The topic is longer than 256 bytes or has more than 7 slashes.
    TopicInvalid = 6, false;
    /// The nonce is not 16 hexadecimal digits.
    NonceInvalid = 7, false;
    /// The CSR cannot be decoded or its signature does not verify.
    CsrInvalid = 8, false;
    /// The CSR's key is not RSA ≥ 2048 bits or ECDSA P-256/P-384.
    CsrKeyUnsupported = 9, false;
    /// The CSR's subject CN is not the serial number.
    CsrSubjectMismatch = 10, false;
    /// This deployment requires a CSR (key mode is disabled).
    CsrRequired = 11, false;
    /// The packet limit is outside `MIN_PACKET_LIMIT..=MAX_PACKET_LIMIT`, or too small for a
    /// frame on this topic.
    PacketLimitInvalid = 12, false;
    /// The window is outside `MIN_WINDOW..=MAX_WINDOW`.
    WindowInvalid = 13, false;
    /// The serial is not on the deployment's allow-list.
    NotAllowed = 14, false;
    /// The serial has used up its re-provisioning attempts.
    ReprovisionLimit = 15, false;
    /// The serial already has an active, confirmed certificate.
    AlreadyProvisioned = 16, false;
    /// The pull names a transfer or nonce the cloud does not have in progress.
    UnknownTransfer = 17, false;
    /// The pull asks for a frame index outside the transfer.
    FrameIndexInvalid = 18, false;
    /// The bundle would exceed `MAX_BUNDLE_LEN` or `MAX_FRAMES` frames.
    BundleTooLarge = 19, false;
    /// The confirmation names a certificate that is not the one issued to this thing.
    CertificateMismatch = 20, false;
    /// The cloud is rate-limited; retry with backoff.
    Throttled = 21, true;
    /// The cloud failed for a reason of its own; retry with backoff.
    Internal = 22, true;
    /// The thing name derived from the serial is not a valid AWS IoT thing name, or a
    /// confirmation arrived under a client id that is not a thing name the deployment derives.
    ThingNameInvalid = 23, false;

    /// The frame is not CBOR of the frame's shape.
    FrameMalformed = 64, false;
    /// The message ended before the frame did.
    FrameTruncated = 65, false;
    /// The message has bytes after the frame's payload.
    FrameOversized = 66, false;
    /// The payload's CRC-32 does not match the header.
    FrameCrc = 67, false;
    /// The frame carries another request's nonce.
    ForeignNonce = 68, false;
    /// The frame's index, count, bundle length or payload length are inconsistent, or the frame
    /// lies past the bundle's end.
    FrameOutOfRange = 69, false;
    /// The frame's count, length or digest disagree with earlier frames of the same transfer.
    FrameInconsistent = 70, false;
    /// The bundle does not fit the credential slot.
    SlotTooSmall = 71, false;
    /// Every frame arrived but the bundle's SHA-256 does not match.
    DigestMismatch = 72, false;
    /// The verified bundle is not a valid bundle.
    BundleInvalid = 73, false;
    /// Flash already held different bytes where the frame goes; the page was erased and the
    /// frames on it must be sent again.
    FlashMismatch = 74, true;
    /// The frame belongs to an older transfer than the one in progress (transfer ids only grow).
    StaleTransfer = 75, false;
}

impl From<RejectCode> for u16 {
    fn from(code: RejectCode) -> u16 {
        code as u16
    }
}

impl core::fmt::Display for RejectCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_are_unique() {
        for (i, c) in RejectCode::ALL.iter().enumerate() {
            assert_eq!(RejectCode::from_u16(*c as u16), Some(*c));
            for d in &RejectCode::ALL[i + 1..] {
                assert!((*c as u16) < (*d as u16), "{c} before {d}");
            }
        }
        assert_eq!(RejectCode::from_u16(0), None);
        assert_eq!(RejectCode::from_u16(63), None);
    }

    #[test]
    fn ranges_by_side() {
        for c in RejectCode::ALL {
            let n = *c as u16;
            assert!((1..128).contains(&n));
        }
        assert!((RejectCode::Internal as u16) < 64);
        assert!((RejectCode::FrameMalformed as u16) >= 64);
    }
}
