//! Any bytes given to the columnar block decoder (snapshot format version
//! 3, `docs/FORMAT.md` section 8.2.2) give objects or a typed error, and
//! decoded objects survive being written and read again byte for byte.
//!
//! Whole files reach this decoder only past their CRCs, which random
//! mutations rarely get through; this target feeds the payload directly.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = rewind_format::snapshot::fuzzing::columnar_block(data) {
        panic!("{e}");
    }
});
