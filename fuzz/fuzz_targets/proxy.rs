//! Server bytes for one parser (see authprobe::fuzzing::proxy): any input must end, without
//! a panic, a hang or an unbounded allocation. Seeds: fuzz/seeds/proxy.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    authprobe::install_crypto_provider();
    authprobe::fuzzing::proxy(data);
});
