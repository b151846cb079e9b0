//! Any bytes given to the snapshot reader give objects or a typed error.
//!
//! The same bytes also go to `json_meta::extract`, which version-2 snapshots
//! rely on to fill in name, namespace, uid and resourceVersion: it must not
//! panic, and any value it finds must be the one serde_json finds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rewind_format::{Limits, SnapshotReader};

fuzz_target!(|data: &[u8]| {
    if let Some(m) = rewind_format::json_meta::extract(data)
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(data)
    {
        let found = [
            ("name", &m.name),
            ("namespace", &m.namespace),
            ("uid", &m.uid),
            ("resourceVersion", &m.resource_version),
        ];
        for (key, value) in found {
            if let Some(value) = value {
                assert_eq!(v["metadata"][key].as_str(), Some(value.as_ref()), "{key}");
            }
        }
    }
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
