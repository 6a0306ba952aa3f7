//! Server bytes for one parser (see authprobe::fuzzing::known_hosts): any input must end, without
//! a panic, a hang or an unbounded allocation. Seeds: fuzz/seeds/known_hosts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    authprobe::install_crypto_provider();
    authprobe::fuzzing::known_hosts(data);
});
