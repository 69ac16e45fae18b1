//! The short form of the fuzz targets in `fuzz/`, run in CI: every file of each target's
//! corpus (the checked-in seeds plus whatever a fuzzing run saved there) through the same
//! invariant, and a few thousand deterministic mutations of each seed.

use e2e_tests::invariants;
use e2e_tests::stack::repo_root;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = repo_root().join("fuzz/corpus").join(target);
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).collect();
    assert!(!files.is_empty(), "{} has no seeds", dir.display());
    files.into_iter().map(|f| std::fs::read(f.unwrap().path()).unwrap()).collect()
}

/// Each seed, then each seed with bytes flipped, cut and duplicated at many positions.
fn replay(target: &str, check: fn(&[u8])) {
    let mut n = 0;
    for seed in corpus(target) {
        check(&seed);
        let step = (seed.len() / 200).max(1);
        for at in (0..seed.len()).step_by(step) {
            for byte in [0x00, b'"', b'{', b'}', b'\\', 0xff, 0xc3] {
                let mut m = seed.clone();
                m[at] = byte;
                check(&m);
            }
            check(&seed[..at]);
            let mut dup = seed[..at].to_vec();
            dup.extend_from_slice(&seed[at..]);
            dup.extend_from_slice(&seed[at..]);
            check(&dup);
            n += 9;
        }
    }
    assert!(n > 100, "{target}: only {n} inputs");
}

#[test]
fn the_event_decoder_corpus_and_its_mutations_hold_the_invariant() {
    replay("event_decode", invariants::event_bytes);
}

#[test]
fn the_log_line_corpus_and_its_mutations_hold_the_invariant() {
    replay("log_line", invariants::log_bytes);
}

#[test]
fn the_policy_corpus_and_its_mutations_hold_the_invariant() {
    replay("policy", invariants::policy_bytes);
}

#[test]
fn the_routes_corpus_and_its_mutations_hold_the_invariant() {
    replay("routes", invariants::routes_bytes);
}
