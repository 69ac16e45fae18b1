#![no_main]
// See e2e_tests::invariants::event_bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| e2e_tests::invariants::event_bytes(data));
