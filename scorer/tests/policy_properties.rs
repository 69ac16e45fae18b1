//! The policy loader on arbitrary and mutated input: a validated policy or an error, never a
//! panic.

use proptest::prelude::*;
use scorer::policy::Policy;

fn shipped() -> String {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo");
    std::fs::read_to_string(std::path::Path::new(&dir).join("../config/policy.toml")).expect("the shipped policy")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_text_is_a_policy_or_an_error(text in "\\PC{0,400}") {
        let _ = Policy::parse(&text);
    }

    #[test]
    fn the_shipped_policy_with_one_character_changed_is_a_policy_or_an_error(at in 0usize..4000, c in any::<char>()) {
        let text = shipped();
        let at = at % text.chars().count().max(1);
        let mutated: String = text.chars().enumerate().map(|(i, x)| if i == at { c } else { x }).collect();
        let _ = Policy::parse(&mutated);
    }

    #[test]
    fn numbers_anywhere_in_the_shipped_policy_are_validated_not_trusted(n in prop_oneof![
        Just(f64::NAN), Just(f64::INFINITY), Just(-1.0), Just(1e300), any::<f64>()
    ]) {
        let text = shipped().replace("0.", &format!("{n}"));
        let _ = Policy::parse(&text);
    }
}
