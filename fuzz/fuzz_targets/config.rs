//! Any text given as rewindd's config file gives a validated config or a
//! typed error that names a setting; never a panic or a hang.
//!
//! The file is parsed and validated as `rewindd run` does it: one schema
//! (`config::parse_file`), then every section validated with the flags over
//! it (`Config::from_settings`).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rewind_daemon::config::{self, Config, Settings};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(mut file) = config::parse_file(Path::new("fuzz.toml"), text) {
        // Recipient files are read from disk: a generated path such as
        // /dev/zero would make the fuzzer test the filesystem, not the parser.
        file.encryption.recipients_files.clear();
        if let Err(config::Error::Invalid { setting, .. }) =
            Config::from_settings(&Settings::default(), &file)
        {
            assert!(!setting.is_empty(), "an invalid value names its setting");
        }
    }
});
