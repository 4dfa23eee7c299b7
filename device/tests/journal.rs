//! The journal keeps the newest complete record through power cuts at any point.

mod support;

use chunkprov_device::journal::{Journal, SlotId, State};
use chunkprov_device::Geometry;
use support::nor::NorSim;

type Flash = NorSim<4, 256>;

fn geometry() -> Geometry {
    Geometry::of::<Flash>().unwrap()
}

fn state(i: u16) -> State {
    State {
        confirmed: if i % 2 == 0 { Some(SlotId::A) } else { None },
        pending: Some(SlotId::B),
        pending_transfer: u32::from(i) * 7,
        confirm_attempts: i,
        boots: i + 1,
        provisions: i + 2,
        ..State::default()
    }
}

fn same_fields(a: &State, b: &State) -> bool {
    State { seq: 0, ..*a } == State { seq: 0, ..*b }
}

#[test]
fn empty_journal_is_the_claim_state() {
    let mut flash = Flash::new(2);
    let j = Journal::open(&mut flash, &geometry(), 0).unwrap();
    assert_eq!(*j.state(), State::default());
    assert_eq!(j.state().confirmed, None);
}

#[test]
fn records_survive_reopen_and_wrap_across_pages() {
    let mut flash = Flash::new(3);
    let g = geometry();
    let mut j = Journal::open(&mut flash, &g, 256).unwrap();
    // 256-byte pages hold 8 records: 30 appends wrap several times.
    for i in 0..30 {
        j.append(&mut flash, state(i)).unwrap();
        let again = Journal::open(&mut flash, &g, 256).unwrap();
        assert!(same_fields(again.state(), &state(i)), "after {i}");
        assert_eq!(again.state().seq, u32::from(i) + 1);
    }
    // The page before the journal was never touched.
    assert!(flash.mem[..256].iter().all(|&b| b == 0xFF));
    assert_eq!(
        flash.counts.pages, 3,
        "one erase per 8 records after the first page"
    );
}

#[test]
fn a_cut_at_any_operation_keeps_the_old_or_the_new_record() {
    let g = geometry();
    let mut tried = 0;
    for half in [false, true] {
        for cut in 1..=25u64 {
            let mut flash = Flash::new(2);
            let mut j = Journal::open(&mut flash, &g, 0).unwrap();
            let mut last_ok = State::default();
            let mut appended = 0;
            flash.cut_at = Some(cut);
            flash.cut_half = half;
            for i in 0..20 {
                match j.append(&mut flash, state(i)) {
                    Ok(()) => {
                        last_ok = state(i);
                        appended += 1;
                    }
                    Err(_) => break,
                }
            }
            flash.reboot();
            let mut j = Journal::open(&mut flash, &g, 0).unwrap();
            let now = *j.state();
            let new = state(appended);
            assert!(
                same_fields(&now, &last_ok) || same_fields(&now, &new),
                "cut {cut} half {half}: {now:?} is neither {last_ok:?} nor {new:?}"
            );
            // And the journal keeps working after the cut.
            j.append(&mut flash, state(99)).unwrap();
            assert!(same_fields(
                Journal::open(&mut flash, &g, 0).unwrap().state(),
                &state(99)
            ));
            tried += 1;
        }
    }
    assert_eq!(tried, 50);
}

#[test]
fn torn_and_foreign_bytes_are_not_records() {
    let s = state(3);
    let mut r = s.encode();
    assert_eq!(State::decode(&r), Some(s));
    r[9] ^= 1;
    assert_eq!(State::decode(&r), None);
    assert_eq!(State::decode(&[0xFF; 32]), None);
    assert_eq!(State::decode(&[0; 32]), None);
}
