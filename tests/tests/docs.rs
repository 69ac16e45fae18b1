//! The reference tables in `docs/` must name everything the code defines.

use e2e_tests::stack::repo_root;

fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).expect("README.md")
}

fn doc(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("docs").join(name)).unwrap_or_else(|e| panic!("docs/{name}: {e}"))
}

#[test]
fn every_feature_is_documented_in_the_feature_table() {
    let text = doc("features.md");
    let missing: Vec<_> =
        models::FEATURES.iter().filter(|f| !text.contains(&format!("| `{}` |", f.name))).map(|f| f.name).collect();
    assert!(missing.is_empty(), "features missing from docs/features.md: {missing:?}");
}

#[test]
fn every_exported_metric_is_in_the_metric_catalogue() {
    let text = doc("metrics.md");
    let names = [
        platform::metrics::EVENTS_CONSUMED,
        platform::metrics::EVENTS_PRODUCED,
        platform::metrics::DLQ_EVENTS,
        platform::metrics::BATCH_SECONDS,
        platform::metrics::BATCH_SIZE,
        platform::metrics::PROCESS_RETRIES,
        platform::metrics::COMMITS,
        platform::metrics::INFLIGHT_BATCH,
        enricher::app::LIST_HITS,
        enricher::app::LIST_ENTRIES,
        enricher::app::DEGRADED,
        platform::metrics::REDIS_SECONDS,
        platform::metrics::REDIS_ERRORS,
        scorer::app::VERDICTS,
        scorer::app::ALERTS,
        scorer::app::SCORE,
        scorer::app::EVENT_TO_VERDICT,
        scorer::app::MODEL_INFO,
        scorer::app::MODEL_RELOAD_ERRORS,
        scorer::app::REASONS,
        scorer::app::SHADOW_SCORE,
        scorer::app::SHADOW_DISAGREEMENTS,
        scorer::app::LIFTS,
        scorer::app::LABELS_PUBLISHED,
        scorer::app::MODEL_CREATED,
        scorer::app::SESSIONS_ACTIVE,
        scorer::app::SESSIONS_STARTED,
        scorer::app::SESSION_ACTIONS,
        scorer::app::ACTION_BUDGET,
        platform::metrics::CONSUMER_LAG,
        platform::trainer_status::RUNS,
        platform::trainer_status::LAST_RUN_TIMESTAMP,
        platform::trainer_status::LAST_RUN_SECONDS,
        platform::trainer_status::LAST_RUN_OUTCOME,
        platform::trainer_status::TEST_METRIC,
        platform::trainer_status::EVENTS_READ,
        trainer::sink::RECORDS,
        trainer::sink::FILES,
        trainer::sink::ROLL_SECONDS,
    ];
    let missing: Vec<_> = names.iter().filter(|n| !text.contains(&format!("| `{n}` |"))).collect();
    assert!(missing.is_empty(), "metrics missing from docs/metrics.md: {missing:?}");
}

#[test]
fn the_readme_test_command_is_what_ci_runs() {
    let ci = std::fs::read_to_string(repo_root().join(".ci/run")).expect(".ci/run");
    assert!(ci.lines().any(|l| l.trim() == "scripts/test"), ".ci/run must run scripts/test");
    assert!(readme().contains("scripts/test "), "the README's quick start names scripts/test");
}

#[test]
fn the_readme_stays_a_product_page_and_links_only_to_docs_that_exist() {
    let text = readme();
    let lines = text.lines().count();
    assert!(lines <= 400, "README.md has {lines} lines; move reference and measurements into docs/");
    for link in text.split("](docs/").skip(1) {
        let file = link.split([')', '#']).next().unwrap();
        assert!(repo_root().join("docs").join(file).is_file(), "README links to docs/{file}, which is missing");
    }
}

#[test]
fn the_readme_crate_table_names_every_workspace_member() {
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).expect("Cargo.toml");
    let members = manifest.lines().find(|l| l.trim_start().starts_with("members")).expect("a members line");
    let names: Vec<&str> = members.split('"').skip(1).step_by(2).collect();
    assert!(names.len() >= 8, "{members}");
    let text = readme();
    let missing: Vec<_> = names.iter().filter(|n| !text.contains(&format!("| `{n}/` |"))).collect();
    assert!(missing.is_empty(), "workspace members missing from the README's crate table: {missing:?}");
}

#[test]
fn the_contract_copy_in_the_repo_matches_the_shared_contract_when_it_is_beside_it() {
    let ours = repo_root().join("contract");
    let names: Vec<String> = std::fs::read_dir(&ours)
        .expect("contract/ in the repo")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "verdict.schema.json") && names.iter().any(|n| n == "CONTRACT.md"), "{names:?}");
    let shared = repo_root().join("../shared/contract");
    if !shared.is_dir() {
        eprintln!("../shared/contract is not beside the repo: the copy is not compared");
        return;
    }
    let mut theirs: Vec<String> =
        std::fs::read_dir(&shared).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    let mut mine = names.clone();
    theirs.sort();
    mine.sort();
    assert_eq!(mine, theirs, "contract/ and ../shared/contract hold different files");
    for n in &names {
        let (a, b) = (std::fs::read(ours.join(n)).unwrap(), std::fs::read(shared.join(n)).unwrap());
        assert!(a == b, "contract/{n} drifted from ../shared/contract/{n}: copy it over (the shared one is normative)");
    }
}
