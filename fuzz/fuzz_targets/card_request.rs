//! Bytes from anyone who can reach a check card (see authprobe::fuzzing::card_request): any input must end, without
//! a panic, a hang or an unbounded allocation. Seeds: fuzz/seeds/card_request.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    authprobe::install_crypto_provider();
    authprobe::fuzzing::card_request(data);
});
