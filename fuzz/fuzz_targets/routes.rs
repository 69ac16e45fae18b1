#![no_main]
// The invariant lives in tests/src/invariants.rs (shared with the CI corpus replay): routes_bytes.
#[path = "../../tests/src/invariants.rs"]
#[allow(dead_code)] // each target uses one of the invariants
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::routes_bytes(data));
