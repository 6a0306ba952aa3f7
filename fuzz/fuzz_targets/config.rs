//! Config loading on arbitrary input: it must report errors, never panic, whatever the
//! bytes. References resolve against an empty environment; `${file:...}` may still name
//! real files, which loading reads with a size cap.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        authprobe::install_crypto_provider();
        let _ = authprobe::runner::suite::load_str(std::path::Path::new("fuzz.toml"), text.to_string(), &|_| None);
    }
});
