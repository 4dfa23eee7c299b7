//! The reassembler against a NOR flash simulator, with frames cut as the cloud cuts them.

mod support;

use chunkprov_device::protocol::bundle::locate_in;
use chunkprov_device::protocol::frame::{self, FrameHeader};
use chunkprov_device::protocol::{Nonce, RejectCode};
use chunkprov_device::{Error, Geometry, Outcome, Reassembler, Slot};
use embedded_storage::nor_flash::NorFlash;
use proptest::prelude::*;
use support::nor::{NorSim, SimError};
use support::{frames, sample_bundle, NONCE};

type Nrf = NorSim<4, 4096>;

fn setup<const W: usize, const E: usize>(pages: usize) -> (NorSim<W, E>, Reassembler) {
    let flash = NorSim::<W, E>::new(pages);
    let slot = Slot {
        offset: E as u32,
        size: ((pages - 1) * E) as u32,
    };
    let r = Reassembler::new(&flash, Geometry::of::<NorSim<W, E>>().unwrap(), slot, NONCE).unwrap();
    (flash, r)
}

/// Feeds one message in pieces of `piece` bytes and returns the verdict.
fn deliver<F: NorFlash>(
    r: &mut Reassembler,
    flash: &mut F,
    msg: &[u8],
    piece: usize,
) -> Result<Outcome, Error<F::Error>> {
    for p in msg.chunks(piece.max(1)) {
        let _ = r.feed(flash, p);
    }
    r.end(flash)
}

fn check_complete<const W: usize, const E: usize>(
    flash: &NorSim<W, E>,
    r: &Reassembler,
    bundle: &[u8],
    outcome: Outcome,
) {
    let Outcome::Complete(layout) = outcome else {
        panic!("expected Complete, got {outcome:?}")
    };
    let base = r.slot().offset as usize;
    assert_eq!(&flash.mem[base..base + bundle.len()], bundle);
    let rel = locate_in(bundle).unwrap();
    assert_eq!(
        layout.certificate.offset as usize,
        base + rel.certificate.offset as usize
    );
    assert_eq!(layout.certificate.len, rel.certificate.len);
    let cert = &flash.mem[layout.certificate.offset as usize..][..layout.certificate.len as usize];
    assert!(cert.starts_with(b"-----BEGIN CERTIFICATE-----\n"));
    assert_eq!(cert.last(), Some(&0));
    assert!(r.is_complete());
}

#[test]
fn happy_path_in_order_whole_messages() {
    let bundle = sample_bundle(false);
    let msgs = frames(&bundle, 256, 7, NONCE);
    assert!(msgs.len() >= 12, "{} frames", msgs.len());
    let (mut flash, mut r) = setup::<4, 4096>(4);
    let mut last = None;
    for (i, m) in msgs.iter().enumerate() {
        assert!(m.len() <= 256 - 37 - 6, "frame {i} is {} bytes", m.len());
        last = Some(deliver(&mut r, &mut flash, m, usize::MAX).unwrap());
        if i + 1 < msgs.len() {
            assert_eq!(last, Some(Outcome::Accepted { index: i as u16 }));
            assert_eq!(r.held(), i as u16 + 1);
        }
    }
    check_complete(&flash, &r, &bundle, last.unwrap());
    // Minimum flash work: pages touched erased once, every unit written once.
    assert_eq!(flash.counts.pages, bundle.len().div_ceil(4096) as u64);
    assert_eq!(flash.counts.units, bundle.len().div_ceil(4) as u64);
    // Duplicates after completion change nothing.
    assert_eq!(
        deliver(&mut r, &mut flash, &msgs[3], 7),
        Ok(Outcome::Duplicate { index: 3 })
    );
    assert!(r.is_complete());
}

#[test]
fn every_piece_size_gives_the_same_result() {
    let bundle = sample_bundle(true);
    let msgs = frames(&bundle, 512, 1, NONCE);
    let longest = msgs.iter().map(Vec::len).max().unwrap();
    for piece in 1..=longest + 1 {
        let (mut flash, mut r) = setup::<4, 4096>(3);
        let mut last = None;
        for m in &msgs {
            last = Some(deliver(&mut r, &mut flash, m, piece).unwrap());
        }
        check_complete(&flash, &r, &bundle, last.unwrap());
    }
}

fn rejected<E: core::fmt::Debug>(result: Result<Outcome, Error<E>>) -> RejectCode {
    match result {
        Err(Error::Rejected(code)) => code,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn every_device_rejection_code() {
    let bundle = sample_bundle(false);
    let msgs = frames(&bundle, 256, 7, NONCE);
    let (h, payload) = frame::decode(&msgs[1]).unwrap();
    let payload = payload.to_vec();
    let (mut flash, mut r) = setup::<4, 4096>(4);

    // Malformed: not a frame at all.
    assert_eq!(
        rejected(deliver(&mut r, &mut flash, b"\x83\x01\x02\x03", 1)),
        RejectCode::FrameMalformed
    );
    // Truncated: cut anywhere, including inside the header and an empty message.
    for cut in [0, 1, 10, 60, msgs[1].len() - 1] {
        assert_eq!(
            rejected(deliver(&mut r, &mut flash, &msgs[1][..cut], 3)),
            RejectCode::FrameTruncated,
            "cut {cut}"
        );
    }
    // Oversized: a byte after the payload.
    let mut long = msgs[0].clone();
    long.push(0);
    assert_eq!(
        rejected(deliver(&mut r, &mut flash, &long, 50)),
        RejectCode::FrameOversized
    );
    // CRC: one payload byte flipped (frame 2: frame 1's bytes are in flash from the cuts above).
    let (h2, p2) = frame::decode(&msgs[2]).unwrap();
    let mut bad = p2.to_vec();
    bad[5] ^= 0x20;
    let crc_bad = support::encode(&h2, &bad);
    assert_eq!(
        rejected(deliver(&mut r, &mut flash, &crc_bad, 16)),
        RejectCode::FrameCrc
    );
    assert!(!r.is_held(2));
    // Foreign nonce: nothing is written.
    let units = flash.counts.units;
    let foreign = support::encode(
        &FrameHeader {
            nonce: Nonce([0; 8]),
            ..h
        },
        &payload,
    );
    assert_eq!(
        rejected(deliver(&mut r, &mut flash, &foreign, 16)),
        RejectCode::ForeignNonce
    );
    assert_eq!(flash.counts.units, units);
    // Out of range: index past the count, and a payload length that does not match the index.
    let past = support::encode(
        &FrameHeader {
            index: h.count,
            ..h
        },
        &payload,
    );
    assert_eq!(
        rejected(deliver(&mut r, &mut flash, &past, 16)),
        RejectCode::FrameOutOfRange
    );
    let short = support::encode(
        &FrameHeader {
            crc32: chunkprov_device::protocol::crc::crc32(&payload[1..]),
            ..h
        },
        &payload[1..],
    );
    assert_eq!(
        rejected(deliver(&mut r, &mut flash, &short, 16)),
        RejectCode::FrameOutOfRange
    );
    // Inconsistent: same transfer, another digest.
    assert_eq!(
        deliver(&mut r, &mut flash, &msgs[0], 16),
        Ok(Outcome::Accepted { index: 0 })
    );
    let other = support::encode(
        &FrameHeader {
            sha256: [0; 32],
            ..h
        },
        &payload,
    );
    assert_eq!(
        rejected(deliver(&mut r, &mut flash, &other, 16)),
        RejectCode::FrameInconsistent
    );
    // Stale: an older transfer.
    let stale = support::encode(
        &FrameHeader {
            transfer_id: 6,
            ..h
        },
        &payload,
    );
    assert_eq!(
        rejected(deliver(&mut r, &mut flash, &stale, 16)),
        RejectCode::StaleTransfer
    );
    assert_eq!(r.held(), 1);
    // Slot too small: a valid frame of a bundle larger than the slot.
    let (mut small_flash, mut small) = setup::<4, 1024>(2);
    assert_eq!(
        rejected(deliver(&mut small, &mut small_flash, &msgs[0], 16)),
        RejectCode::SlotTooSmall
    );
}

#[test]
fn digest_mismatch_and_invalid_bundle_restart_the_transfer() {
    let bundle = sample_bundle(false);
    // The cloud's digest is wrong: every frame is fine, the bundle is not.
    let mut wrong = frames(&bundle, 1024, 3, NONCE);
    for m in wrong.iter_mut() {
        let (h, p) = frame::decode(m).unwrap();
        *m = support::encode(
            &FrameHeader {
                sha256: [7; 32],
                ..h
            },
            p,
        );
    }
    let (mut flash, mut r) = setup::<4, 4096>(3);
    let n = wrong.len();
    for m in &wrong[..n - 1] {
        deliver(&mut r, &mut flash, m, 100).unwrap();
    }
    assert_eq!(
        rejected(deliver(&mut r, &mut flash, &wrong[n - 1], 100)),
        RejectCode::DigestMismatch
    );
    assert_eq!(
        (r.held(), r.transfer_id(), r.is_complete()),
        (0, None, false)
    );

    // Bytes that hash right but are not a bundle.
    let junk: Vec<u8> = (0..3000u32).map(|i| (i * 13) as u8).collect();
    let msgs = frames(&junk, 1024, 4, NONCE);
    let mut last = None;
    for m in &msgs {
        last = Some(deliver(&mut r, &mut flash, m, 100));
    }
    assert_eq!(rejected(last.unwrap()), RejectCode::BundleInvalid);
    // The real bundle then completes in the same slot: the restart erased it again.
    let mut last = None;
    for m in frames(&bundle, 1024, 5, NONCE) {
        last = Some(deliver(&mut r, &mut flash, &m, 100).unwrap());
    }
    check_complete(&flash, &r, &bundle, last.unwrap());
}

#[test]
fn a_new_transfer_id_drops_the_partial_bundle() {
    let first = sample_bundle(true);
    let second = sample_bundle(false);
    let a = frames(&first, 256, 10, NONCE);
    let b = frames(&second, 256, 11, NONCE);
    let (mut flash, mut r) = setup::<4, 4096>(4);
    for m in &a[..5] {
        deliver(&mut r, &mut flash, m, 64).unwrap();
    }
    assert_eq!((r.transfer_id(), r.held()), (Some(10), 5));
    let mut last = None;
    for m in b.iter().rev() {
        last = Some(deliver(&mut r, &mut flash, m, 64).unwrap());
    }
    assert_eq!(r.transfer_id(), Some(11));
    check_complete(&flash, &r, &second, last.unwrap());
    // The old transfer's frames are now stale.
    assert_eq!(
        rejected(deliver(&mut r, &mut flash, &a[6], 64)),
        RejectCode::StaleTransfer
    );
}

#[test]
fn stale_bytes_in_flash_erase_the_page_and_drop_its_frames() {
    let bundle = sample_bundle(false);
    let msgs = frames(&bundle, 256, 1, NONCE);
    let (mut flash, mut r) = setup::<4, 1024>(8);
    for m in &msgs[..4] {
        deliver(&mut r, &mut flash, m, 32).unwrap();
    }
    let held_before = r.held();
    // Something left different bytes where frame 5 goes.
    let (h5, _) = frame::decode(&msgs[5]).unwrap();
    let plan =
        chunkprov_device::protocol::chunking::Plan::from_header(h5.bundle_len, h5.count).unwrap();
    let at = (r.slot().offset + 5 * plan.chunk()) as usize;
    flash.write(at as u32, &[0, 0, 0, 0]).unwrap();
    let pages = flash.counts.pages;
    assert_eq!(
        rejected(deliver(&mut r, &mut flash, &msgs[5], 32)),
        RejectCode::FlashMismatch
    );
    assert_eq!(flash.counts.pages, pages + 1);
    // Every held frame on that page was forgotten; asked again, they all complete the bundle.
    let page = at / 1024 * 1024;
    let dropped: Vec<u16> = (0..4).filter(|&i| !r.is_held(i)).collect();
    for &i in &dropped {
        let start = r.slot().offset as usize + i as usize * plan.chunk() as usize;
        assert!(start < page + 1024 && start + plan.chunk() as usize > page);
    }
    assert_eq!(r.held() as usize, held_before as usize - dropped.len());
    let missing: Vec<u16> = r.missing().collect();
    let mut last = None;
    for i in missing {
        last = Some(deliver(&mut r, &mut flash, &msgs[i as usize], 32).unwrap());
    }
    check_complete(&flash, &r, &bundle, last.unwrap());
}

#[test]
fn a_frame_cut_short_and_delivered_again_writes_only_the_rest() {
    let bundle = sample_bundle(false);
    let msgs = frames(&bundle, 512, 1, NONCE);
    let (mut flash, mut r) = setup::<16, 4096>(3);
    // The first delivery is cut after 200 bytes: its bytes so far are in flash.
    assert_eq!(
        rejected(deliver(&mut r, &mut flash, &msgs[2][..200], 64)),
        RejectCode::FrameTruncated
    );
    let units = flash.counts.units;
    assert!(units > 0);
    assert_eq!(
        deliver(&mut r, &mut flash, &msgs[2], 64),
        Ok(Outcome::Accepted { index: 2 })
    );
    let (_, p) = frame::decode(&msgs[2]).unwrap();
    assert_eq!(
        flash.counts.units,
        (p.len() / 16) as u64,
        "only the rest was written"
    );
}

#[test]
fn flash_errors_are_surfaced() {
    let bundle = sample_bundle(false);
    let msgs = frames(&bundle, 256, 1, NONCE);
    let (mut flash, mut r) = setup::<4, 4096>(4);
    flash.fail_op = Some(1); // the erase that starts the transfer
    assert_eq!(
        r.feed(&mut flash, &msgs[0]),
        Err(Error::Flash(SimError::Injected))
    );
    assert_eq!(r.end(&mut flash), Err(Error::Aborted));
    assert_eq!(r.transfer_id(), None);
    flash.fail_op = Some(3); // a write
    assert_eq!(
        deliver(&mut r, &mut flash, &msgs[0], 300),
        Err(Error::Aborted)
    );
    assert!(!r.is_held(0));
    assert_eq!(
        deliver(&mut r, &mut flash, &msgs[0], 300),
        Ok(Outcome::Accepted { index: 0 })
    );
}

#[test]
fn geometry_and_slot_are_checked() {
    let flash = Nrf::new(4);
    let g = Geometry::of::<Nrf>().unwrap();
    let nonce = NONCE;
    assert!(Reassembler::new(
        &flash,
        g,
        Slot {
            offset: 100,
            size: 4096
        },
        nonce
    )
    .is_err());
    assert!(Reassembler::new(
        &flash,
        g,
        Slot {
            offset: 0,
            size: 5 * 4096
        },
        nonce
    )
    .is_err());
    assert!(Reassembler::new(&flash, g, Slot { offset: 0, size: 0 }, nonce).is_err());
    assert!(Reassembler::new(
        &flash,
        Geometry::new(2, 4096).unwrap(),
        Slot {
            offset: 0,
            size: 4096
        },
        nonce
    )
    .is_err());
    assert!(Geometry::new(64, 4096).is_err());
    assert!(Geometry::new(3, 4096).is_err());
    assert!(Geometry::new(4, 2).is_err());
}

#[test]
fn state_is_small_and_fixed() {
    let size = core::mem::size_of::<Reassembler>();
    println!(
        "Reassembler: {size} bytes, align {}",
        core::mem::align_of::<Reassembler>()
    );
    assert!(
        size <= 256 + chunkprov_device::MAX_WRITE_SIZE as usize,
        "{size}"
    );
}

fn shuffled_with_duplicates(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).chain((0..n).step_by(3)).collect();
    let mut s = seed | 1;
    for i in (1..order.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        order.swap(i, (s % (i as u64 + 1)) as usize);
    }
    order
}

fn run_any_order<const W: usize, const E: usize>(limit: u32, seed: u64, piece: usize) {
    let bundle = sample_bundle(seed % 2 == 0);
    let msgs = frames(&bundle, limit, 1, NONCE);
    let pages = (bundle.len().div_ceil(E) + 1).max(2);
    let (mut flash, mut r) = setup::<W, E>(pages);
    let mut complete = None;
    for i in shuffled_with_duplicates(msgs.len(), seed) {
        match deliver(&mut r, &mut flash, &msgs[i], piece).unwrap() {
            Outcome::Complete(l) => complete = Some(Outcome::Complete(l)),
            Outcome::Accepted { index } | Outcome::Duplicate { index } => {
                assert_eq!(index as usize, i)
            }
        }
    }
    check_complete(&flash, &r, &bundle, complete.expect("completed"));
    assert_eq!(
        flash.counts.pages,
        bundle.len().div_ceil(E) as u64,
        "each page erased once"
    );
    assert_eq!(
        flash.counts.units,
        bundle.len().div_ceil(W) as u64,
        "each unit written once"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn any_order_duplicates_geometry_and_split(limit in 256u32..3000, seed in any::<u64>(), piece in 1usize..400, g in 0usize..6) {
        match g {
            0 => run_any_order::<1, 4096>(limit, seed, piece),
            1 => run_any_order::<4, 4096>(limit, seed, piece),
            2 => run_any_order::<16, 256>(limit, seed, piece),
            3 => run_any_order::<32, 2048>(limit, seed, piece),
            4 => run_any_order::<8, 65536>(limit, seed, piece),
            _ => run_any_order::<4, 512>(limit, seed, piece),
        }
    }
}
