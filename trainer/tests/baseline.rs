//! The checked-in baseline model (`models/baseline/`) must be usable by this build.

#[test]
fn the_baseline_model_loads_with_this_builds_feature_schema() {
    let registry = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo test"))
        .join("../models/baseline");
    let model = platform::registry::load_current(&registry).unwrap_or_else(|e| {
        panic!("{e:#}\nthe feature definition changed: run models/baseline/regenerate and commit it")
    });
    assert_eq!(model.feature_schema, models::feature_schema_hash());
    assert!(model.calibration.is_some(), "the baseline is calibrated");
    assert!(model.score_at_top_share(0.01).is_some(), "the baseline records its score distribution");
}
