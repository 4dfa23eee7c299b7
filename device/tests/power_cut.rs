//! Power-cut sweep: a whole provisioning (transfer out of order with duplicates, commit,
//! confirm) with power cut after every flash operation in turn, and in the middle of every
//! write and erase. After each cut the device reboots and must find the previous credentials,
//! a resumable partial transfer, a verified pending bundle or the confirmed new credentials,
//! never a torn or unverified bundle presented as valid, and must then finish asking only for
//! the frames it does not hold.

mod support;

use chunkprov_device::journal::SlotId;
use chunkprov_device::protocol::chunking::Plan;
use chunkprov_device::protocol::{frame, RejectCode};
use chunkprov_device::reassembler::{Error, Outcome};
use chunkprov_device::store::{Partition, Store};
use chunkprov_device::{Geometry, Reassembler};
use support::nor::{NorSim, SimError};
use support::{frames, sample_bundle, NONCE};

/// Pages of a partition for geometry (W, E): the journal, then two slots with header pages
/// for 256 frames' markers and data pages for a ~3 KB bundle.
fn pages<const W: usize, const E: usize>() -> usize {
    let header = (64 + 256 * 3 * W).div_ceil(E);
    let data = 3200usize.div_ceil(E);
    2 + 2 * (header + data)
}

fn partition<const W: usize, const E: usize>() -> Partition {
    Partition {
        offset: 0,
        size: (pages::<W, E>() * E) as u32,
    }
}

struct Transfer {
    bundle: Vec<u8>,
    msgs: Vec<Vec<u8>>,
    chunk: usize,
    order: Vec<usize>,
}

fn transfer(tid: u32, key: bool) -> Transfer {
    let bundle = sample_bundle(key);
    let msgs = frames(&bundle, 256, tid, NONCE);
    let (h, _) = frame::decode(&msgs[0]).unwrap();
    let chunk = Plan::from_header(h.bundle_len, h.count).unwrap().chunk() as usize;
    // Out of order, every third frame twice.
    let n = msgs.len();
    let mut order: Vec<usize> = (0..n)
        .rev()
        .filter(|i| i % 2 == 0)
        .chain((0..n).filter(|i| i % 2 == 1))
        .collect();
    order.extend((0..n).step_by(3));
    Transfer {
        bundle,
        msgs,
        chunk,
        order,
    }
}

fn is_cut(e: &Error<SimError>) -> bool {
    matches!(e, Error::Flash(SimError::PowerCut) | Error::Aborted)
}

fn deliver<const W: usize, const E: usize>(
    r: &mut Reassembler,
    flash: &mut NorSim<W, E>,
    msg: &[u8],
) -> Result<Outcome, Error<SimError>> {
    for piece in msg.chunks(50) {
        match r.feed(flash, piece) {
            Err(e) if is_cut(&e) => return Err(e),
            _ => {}
        }
    }
    r.end(flash)
}

#[derive(Default, Debug)]
struct Run {
    /// Frames delivered while they were not held.
    asked: Vec<usize>,
    /// Pages erased because they held stale bytes (a unit left half written by a cut).
    repairs: usize,
}

/// Boots the device and runs it until its new credentials are confirmed. `Err` when power is
/// cut. Frames are only delivered when missing: what a device asks for.
fn device<const W: usize, const E: usize>(
    flash: &mut NorSim<W, E>,
    t: &Transfer,
    run: &mut Run,
) -> Result<(), Error<SimError>> {
    let g = Geometry::of::<NorSim<W, E>>().unwrap();
    let mut store = Store::open(flash, g, partition::<W, E>())?;
    loop {
        if store.state().pending.is_some() {
            // Reconnect with the pending credentials; the confirmation round trip succeeds.
            store.confirm(flash)?;
            return Ok(());
        }
        let mut r = match store.resume(flash)? {
            Some(r) => r,
            None => store.receive(flash, NONCE)?,
        };
        let mut rounds = 0;
        while !r.is_complete() {
            rounds += 1;
            assert!(
                rounds < 10,
                "no progress: held {} of {}, missing {:?}",
                r.held(),
                r.count(),
                r.missing().collect::<Vec<_>>()
            );
            let missing: Vec<usize> = if r.transfer_id().is_some() {
                r.missing().map(usize::from).collect()
            } else {
                t.order.clone()
            };
            for &i in t.order.iter().filter(|i| missing.contains(i)) {
                if !r.is_held(i as u16) {
                    run.asked.push(i);
                }
                match deliver(&mut r, flash, &t.msgs[i]) {
                    Ok(Outcome::Complete(_)) => break,
                    Ok(_) => {}
                    Err(e) if is_cut(&e) => return Err(e),
                    Err(Error::Rejected(RejectCode::FlashMismatch)) => run.repairs += 1,
                    Err(Error::Rejected(c)) => panic!("frame {i}: {c:?}"),
                    Err(e) => panic!("frame {i}: {e:?}"),
                }
            }
        }
        store.commit(flash, &r)?;
    }
}

/// What a rebooted device finds must be one of the four allowed states.
fn check_invariant<const W: usize, const E: usize>(
    flash: &mut NorSim<W, E>,
    t: &Transfer,
    old: Option<&Transfer>,
) -> &'static str {
    let g = Geometry::of::<NorSim<W, E>>().unwrap();
    let store = Store::open(flash, g, partition::<W, E>()).unwrap();
    let s = *store.state();
    let holds = |flash: &mut NorSim<W, E>, slot: SlotId, want: &Transfer| {
        let layout = store
            .verify(flash, slot)
            .expect("a slot the journal names verifies");
        let data = store.regions().slot(slot).1.offset as usize;
        assert_eq!(&flash.mem[data..data + want.bundle.len()], &want.bundle[..]);
        layout
    };
    if let Some(p) = s.pending {
        holds(flash, p, t);
        return "pending";
    }
    match (s.confirmed, old) {
        (Some(c), Some(o)) if c == SlotId::A => {
            holds(flash, c, o);
        }
        (Some(c), _) => {
            holds(flash, c, t);
            return "confirmed";
        }
        (None, None) => {}
        (None, Some(_)) => panic!("the old confirmed credentials were lost"),
    }
    // Previous credentials in use: any partial transfer must hold only intact frames.
    if let Some(r) = store.resume(flash).unwrap() {
        let data = r.slot().offset as usize;
        for i in 0..r.count() {
            if r.is_held(i) {
                let at = i as usize * t.chunk;
                let end = (at + t.chunk).min(t.bundle.len());
                assert_eq!(
                    &flash.mem[data + at..data + end],
                    &t.bundle[at..end],
                    "held frame {i} is torn"
                );
            }
        }
        if r.held() > 0 {
            return "resumable";
        }
    }
    "previous"
}

fn sweep<const W: usize, const E: usize>(old: Option<&Transfer>, t: &Transfer) {
    // A clean run first: how many flash operations a whole provisioning takes.
    let base = || {
        let mut f = NorSim::<W, E>::new(pages::<W, E>());
        if let Some(o) = old {
            device(&mut f, o, &mut Run::default()).unwrap();
        }
        f
    };
    let mut clean = base();
    let start_ops = clean.ops();
    let before = clean.counts;
    device(&mut clean, t, &mut Run::default()).unwrap();
    let total = clean.ops() - start_ops;
    let c = clean.counts;
    let frames = t.msgs.len() as u64;
    // The minimum: the header pages the markers use and the data pages the bundle uses, each
    // erased once; every payload unit, one marker unit per frame, the transfer record and two
    // journal records (commit, confirm) written once.
    let header_pages = (64 + frames as usize * 3 * W).div_ceil(E) as u64;
    let data_pages = t.bundle.len().div_ceil(E) as u64;
    let (payload, record, journal) = (
        t.bundle.len().div_ceil(W) as u64,
        (64 / W) as u64,
        (2 * 32 / W) as u64,
    );
    println!(
        "geometry {W}/{E}: {frames} frames, {} bytes; {total} flash ops; pages erased {} (minimum {}); units written {} (minimum: payload {payload} + markers {frames} + transfer record {record} + journal {journal})",
        t.bundle.len(),
        c.pages - before.pages,
        header_pages + data_pages,
        c.units - before.units,
    );
    assert_eq!(
        c.pages - before.pages,
        header_pages + data_pages,
        "pages touched, each once"
    );
    assert_eq!(
        c.units - before.units,
        payload + frames + record + journal,
        "each unit written once"
    );

    let mut tried = 0;
    let mut survived = 0;
    let mut repaired = 0;
    let mut seen = std::collections::BTreeMap::new();
    for half in [false, true] {
        for cut in 1..=total {
            let mut flash = base();
            flash.cut_at = Some(flash.ops() + cut);
            flash.cut_half = half;
            let mut first = Run::default();
            let result = device(&mut flash, t, &mut first);
            tried += 1;
            assert!(result.is_err(), "cut {cut} was after the end");
            flash.reboot();
            let found = check_invariant(&mut flash, t, old);
            *seen.entry(found).or_insert(0) += 1;
            // Held frames are never asked for again.
            let g = Geometry::of::<NorSim<W, E>>().unwrap();
            let held: Vec<usize> = match Store::open(&mut flash, g, partition::<W, E>())
                .unwrap()
                .resume(&mut flash)
                .unwrap()
            {
                Some(r) => (0..r.count())
                    .filter(|&i| r.is_held(i))
                    .map(usize::from)
                    .collect(),
                None => vec![],
            };
            let mut second = Run::default();
            device(&mut flash, t, &mut second)
                .unwrap_or_else(|e| panic!("cut {cut} half {half}: {e:?}"));
            if second.repairs == 0 {
                for i in &second.asked {
                    assert!(
                        !held.contains(i),
                        "cut {cut}: frame {i} was held but asked for again"
                    );
                }
            } else {
                // A unit left half written cannot be finished on NOR: its page was erased and
                // every frame on it asked for again.
                repaired += 1;
            }
            assert_eq!(check_invariant(&mut flash, t, old), "confirmed");
            survived += 1;
        }
    }
    println!(
        "power-cut sweep {W}/{E}: {tried} cut points tried, {survived} survived ({repaired} needed a page repair); states found after the cut: {seen:?}"
    );
    assert_eq!(tried, survived);
    // The last operation is the confirmation record: a cut there leaves it pending.
    for state in ["previous", "resumable", "pending"] {
        assert!(
            seen.contains_key(state),
            "no cut left the device in state {state}: {seen:?}"
        );
    }
}

#[test]
fn first_provisioning_survives_a_cut_at_every_flash_operation() {
    let t = transfer(1, false);
    assert!(t.msgs.len() >= 12);
    sweep::<4, 4096>(None, &t);
}

#[test]
fn other_geometries_survive_every_cut_too() {
    // native_sim (1-byte writes), 16-byte units on small pages, 32-byte units, 64 KB pages.
    let t = transfer(1, false);
    sweep::<1, 4096>(None, &t);
    sweep::<16, 256>(None, &t);
    sweep::<32, 2048>(None, &t);
    sweep::<8, 65536>(None, &t);
}

#[test]
fn renewal_keeps_the_confirmed_credentials_through_every_cut() {
    let old = transfer(1, true);
    let new = transfer(2, false);
    sweep::<4, 4096>(Some(&old), &new);
}
