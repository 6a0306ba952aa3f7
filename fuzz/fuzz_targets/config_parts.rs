//! A big config cut into parts around arbitrary text: read in parts (the later parts
//! parsed on another thread) it must be the file read whole, or both invalid.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    authprobe::fuzzing::config_parts(data);
});
