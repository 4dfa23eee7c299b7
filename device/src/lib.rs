//! The chunkprov device library: `no_std`, no heap, no panics.
//!
//! [`Reassembler`] takes the bytes of frame messages in pieces of any size and streams each
//! frame's payload straight into a credential [`Slot`] on NOR flash through
//! [`embedded_storage::nor_flash::NorFlash`]. Its state is a fixed-size struct of fixed-width
//! fields, independent of certificate and chunk size. When every frame is held it reads the slot
//! back, checks the bundle's SHA-256 and reports where each credential lies
//! ([`chunkprov_protocol::bundle::Layout`]), so the firmware can hand them to its TLS stack or
//! modem straight from flash.
//!
//! The wire format is [`chunkprov_protocol`], re-exported as [`protocol`].
#![no_std]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
#![warn(missing_docs)]

pub use chunkprov_protocol as protocol;

mod bitmap;
pub mod client;
mod diag;
mod flash;
pub mod journal;
pub mod markers;
pub mod reassembler;
mod record;
pub mod store;

pub use flash::{Geometry, GeometryError, Slot, MAX_WRITE_SIZE};
pub use reassembler::{Error, Outcome, Reassembler};
