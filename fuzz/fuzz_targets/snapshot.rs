//! Any bytes given to the snapshot reader give objects or a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rewind_format::{Limits, SnapshotReader};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_block_bytes: 16 << 20,
        ..Limits::default()
    };
    let Ok(mut r) = SnapshotReader::open(data, Some("fuzz"), limits) else {
        return;
    };
    let types = r.header().types.len();
    for t in 0..types {
        let _ = r.read_namespace(t, Some("ns-1"));
        let _ = r.get(t, None, "a");
    }
    let _ = r.crds();
    let _ = r.iter().count();
    let _ = r.verify();
});
