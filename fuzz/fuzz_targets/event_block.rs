//! Any bytes given to the event-block decoder give records or a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rewind_format::{Limits, decode_block, decode_record};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_block_bytes: 16 << 20,
        ..Limits::default()
    };
    if let Ok(records) = decode_block(data, &limits) {
        // What decodes must re-encode to a block that decodes the same.
        let again = rewind_format::encode_block(&records, 1).expect("re-encode");
        assert_eq!(decode_block(&again, &limits).expect("re-decode"), records);
    }
    let _ = decode_record(data);
});
