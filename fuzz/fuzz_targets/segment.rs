//! Any bytes given to the segment reader give events or a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rewind_format::Limits;
use rewind_format::segment::SegmentReader;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_block_bytes: 16 << 20,
        ..Limits::default()
    };
    let Ok(mut r) = SegmentReader::open(data, Some("fuzz"), limits) else {
        return;
    };
    let n = r.blocks().len();
    let _ = r.block_for_time(0);
    let _ = r.events_from_seq(r.header().first_seq.saturating_add(1));
    for i in 0..n {
        let _ = r.read_block(i);
    }
    let _ = r.iter().count();
});
