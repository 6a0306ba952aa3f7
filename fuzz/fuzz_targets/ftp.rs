//! Server bytes for one parser (see authprobe::fuzzing::ftp): any input must end, without
//! a panic, a hang or an unbounded allocation. Seeds: fuzz/seeds/ftp.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    authprobe::install_crypto_provider();
    authprobe::fuzzing::ftp(data);
});
