//! A sweep over every real-world configuration in ../shared/corpus (written by Istio users,
//! docs and demos): no panic, clear parse errors for damaged files, mutated objects still valid
//! Istio, and a reviewed snapshot of what the rules say about each file.
//!
//! `FG_UPDATE_SNAPSHOTS=1 cargo test --test corpus` rewrites tests/snapshots/corpus.txt; review
//! the diff like code.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::fmt::Write as _;

use failover_guard::{
    config::Config,
    engine::{self, Pass},
    offline::{self, read_inputs},
};

#[test]
fn corpus_snapshot() {
    let corpus = common::shared_dir().join("corpus");
    assert!(corpus.is_dir(), "corpus missing at {}", corpus.display());
    let config = Config::example();
    let (inputs, errors) = read_inputs(std::slice::from_ref(&corpus));
    assert!(inputs.len() > 50, "only {} corpus files", inputs.len());
    let report = offline::check(&inputs, &config);

    let strip = |file: &str| {
        file.strip_prefix(&corpus.display().to_string())
            .unwrap_or(file)
            .trim_start_matches('/')
            .to_owned()
    };
    let mut snapshot = String::new();
    let _ = writeln!(
        snapshot,
        "# failover-guard check over ../shared/corpus with the example config.\n# {} files, {} objects, {} findings, {} input errors",
        report.files,
        report.objects,
        report.findings.len(),
        errors.len()
    );
    for error in &errors {
        let _ = writeln!(
            snapshot,
            "{} line {}: ERROR {}",
            strip(&error.file),
            error.line.unwrap_or(0),
            error.message
        );
    }
    for f in &report.findings {
        let _ = writeln!(
            snapshot,
            "{} doc {} line {}: {} {}",
            strip(&f.file),
            f.document,
            f.line,
            f.action.as_str(),
            f.message
        );
    }
    let path = common::repo_path("tests/snapshots/corpus.txt");
    if std::env::var_os("FG_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &snapshot).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != snapshot {
        let diff = similar::TextDiff::from_lines(&expected, &snapshot);
        panic!(
            "the findings on the corpus changed; review and run FG_UPDATE_SNAPSHOTS=1 cargo test --test corpus\n{}",
            diff.unified_diff()
                .context_radius(1)
                .header("tests/snapshots/corpus.txt", "now")
        );
    }
}

#[test]
fn corpus_mutations_stay_valid_istio() {
    let corpus = common::shared_dir().join("corpus");
    let config = Config::example();
    let schemas = common::CrdSchemas::load();
    let (inputs, _) = read_inputs(std::slice::from_ref(&corpus));
    let (mut checked, mut patched_objects) = (0, 0);
    for file in offline::mutate(&inputs, &config) {
        for change in &file.changes {
            let pairs: Vec<(&serde_json::Value, &serde_json::Value)> =
                match (change.before.get("items"), change.after.get("items")) {
                    (Some(b), Some(a)) => b
                        .as_array()
                        .into_iter()
                        .flatten()
                        .zip(a.as_array().into_iter().flatten())
                        .collect(),
                    _ => vec![(&change.before, &change.after)],
                };
            for (before, after) in pairs {
                // The webhook's patch, built from where the fixes wrote, reproduces the
                // mutation on every object of the corpus that gets one.
                let mut mutated = before.clone();
                let evaluation =
                    engine::evaluate(&mut mutated, &config, None, "default", Pass::Mutate);
                let mut patched = before.clone();
                json_patch::patch(&mut patched, &engine::patch(&mutated, &evaluation.changes))
                    .unwrap_or_else(|e| {
                        panic!("{} doc {}: patch: {e}", file.name, change.document)
                    });
                assert_eq!(
                    patched, mutated,
                    "{} doc {}: patch",
                    file.name, change.document
                );
                patched_objects += 1;
                let Some(errors_before) = schemas.errors(before) else {
                    continue;
                };
                if !errors_before.is_empty() {
                    continue;
                }
                checked += 1;
                let errors = schemas.errors(after).unwrap_or_default();
                assert!(
                    errors.is_empty(),
                    "{} doc {}: mutated object is not valid Istio: {errors:?}\n{after:#}",
                    file.name,
                    change.document
                );
            }
        }
    }
    assert!(
        checked > 10,
        "only {checked} mutated corpus objects were schema-checked"
    );
    assert!(
        patched_objects >= checked,
        "{patched_objects} patches checked"
    );
}
