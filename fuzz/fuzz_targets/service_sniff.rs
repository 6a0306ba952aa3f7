//! Server bytes for one parser (see authprobe::fuzzing::service_sniff): any input must end, without
//! a panic, a hang or an unbounded allocation. Seeds: fuzz/seeds/service_sniff.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    authprobe::fuzzing::service_sniff(data);
});
