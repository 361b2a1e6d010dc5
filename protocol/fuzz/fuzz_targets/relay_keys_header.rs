#![no_main]
use libfuzzer_sys::fuzz_target;
fuzz_target!(|data: &[u8]| pqrelay_protocol::fuzzing::relay_keys_header(data));
