//! Any text given as rewindd's config file gives a validated config or a
//! typed error that names a setting; never a panic or a hang.
//!
//! Both parsers run, as `rewindd run` runs them: the journal's
//! (`config::parse_file` + `Config::from_settings`) and the service
//! sections' (`Sections::parse` + `validate`).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rewind_daemon::config::{self, Config, Settings};
use rewind_daemon::service::Sections;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = config::parse_file(Path::new("fuzz.toml"), text)
        && let Err(config::Error::Invalid { setting, .. }) =
            Config::from_settings(&Settings::default(), &file)
    {
        assert!(!setting.is_empty(), "an invalid value names its setting");
    }
    if let Ok(mut sections) = Sections::parse(text) {
        // Recipient files are read from disk: a generated path such as
        // /dev/zero would make the fuzzer test the filesystem, not the parser.
        sections.encryption.recipients_files.clear();
        let _ = sections.validate(Path::new("/nonexistent/rewind-fuzz"));
    }
});
