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

/// The cluster a docs file is applied to, and the configuration failover-guard runs with
/// there: the page's model (../shared/corpus/istio-docs/SOURCES.md names it per page), its
/// cluster and network names, and the namespace `kubectl apply` puts objects without one in.
struct DocsCluster {
    config: &'static str,
    namespace: &'static str,
    /// The mesh config the page's install gives pilot, where the rules read it.
    mesh: Option<&'static str>,
}

/// Ambient multi-primary on two networks (istio.io "Install ambient multi-primary on different
/// networks"), with the ambient profile's default serviceScopeConfigs (istio/istio
/// manifests/helm-profiles/ambient.yaml: istio.io/global In ["true"] is GLOBAL).
const AMBIENT_1: &str = "cluster: {name: cluster1, network: network1, localities: [region1/zone1]}\nremotes: [{name: cluster2, network: network2, locality: region2/zone3}]\nmulticluster: {model: multiPrimary}\n";
const AMBIENT_2: &str = "cluster: {name: cluster2, network: network2, localities: [region2/zone3]}\nremotes: [{name: cluster1, network: network1, locality: region1/zone1}]\nmulticluster: {model: multiPrimary}\n";
const AMBIENT_MESH: &str = "serviceScopeConfigs:\n- servicesSelector:\n    matchExpressions:\n    - {key: istio.io/global, operator: In, values: [\"true\"]}\n  scope: GLOBAL\n";

const MULTI_PRIMARY: &str = "cluster: {name: cluster1, network: network1, localities: [region1/zone1]}\nremotes: [{name: cluster2, network: network1, locality: region1/zone2}]\nmulticluster: {model: multiPrimary}\n";
const MULTI_PRIMARY_2: &str = "cluster: {name: cluster2, network: network1, localities: [region1/zone2]}\nremotes: [{name: cluster1, network: network1, locality: region1/zone1}]\nmulticluster: {model: multiPrimary}\n";
const MULTI_NETWORK_1: &str = "cluster: {name: cluster1, network: network1, localities: [region1/zone1]}\nremotes: [{name: cluster2, network: network2, locality: region2/zone3}]\nmulticluster: {model: multiPrimary}\n";
const MULTI_NETWORK_2: &str = "cluster: {name: cluster2, network: network2, localities: [region2/zone3]}\nremotes: [{name: cluster1, network: network1, locality: region1/zone1}]\nmulticluster: {model: multiPrimary}\n";
const PRIMARY: &str = "cluster: {name: cluster1, network: network1, localities: [region1/zone1]}\nremotes: [{name: cluster2, network: network1, locality: region1/zone2}]\nmulticluster: {model: primaryRemote, role: primary}\n";
const REMOTE: &str = "cluster: {name: cluster2, network: network1, localities: [region1/zone2]}\nremotes: [{name: cluster1, network: network1, locality: region1/zone1}]\nmulticluster: {model: primaryRemote, role: remote}\n";
const PRIMARY_NET: &str = "cluster: {name: cluster1, network: network1, localities: [region1/zone1]}\nremotes: [{name: cluster2, network: network2, locality: region2/zone3}]\nmulticluster: {model: primaryRemote, role: primary}\n";
const REMOTE_NET: &str = "cluster: {name: cluster2, network: network2, localities: [region2/zone3]}\nremotes: [{name: cluster1, network: network1, locality: region1/zone1}]\nmulticluster: {model: primaryRemote, role: remote}\n";
/// The locality tasks: one primary (region1/zone1) and worker clusters in three regions.
const LOCALITY_PRIMARY: &str = "cluster: {name: cluster1, network: network1, localities: [region1/zone1]}\nremotes:\n- {name: cluster2, network: network1, locality: region1/zone2}\n- {name: cluster3, network: network1, locality: region2/zone3}\n- {name: cluster4, network: network1, locality: region3/zone4}\nmulticluster: {model: primaryRemote, role: primary}\n";
const LOCALITY_REMOTE: &str = "cluster: {name: cluster3, network: network1, localities: [region2/zone3]}\nremotes:\n- {name: cluster1, network: network1, locality: region1/zone1}\n- {name: cluster2, network: network1, locality: region1/zone2}\n- {name: cluster4, network: network1, locality: region3/zone4}\nmulticluster: {model: primaryRemote, role: remote}\n";
/// Reference pages are model-agnostic fragments: judged under the default model.
const REFERENCE: &str = "cluster: {name: cluster1, network: network1, localities: [us-east/us-east-1a]}\nremotes: [{name: cluster2, network: network2, locality: eu-west/eu-west-1a, gateway: {address: 203.0.113.10}}]\n";

/// The clusters (with their configurations) a docs file is checked in; empty for files that
/// are not sidecar-model objects (ambient pages: issue #30; install-time mesh config).
fn docs_clusters(file: &str) -> Vec<DocsCluster> {
    let on = |config, namespace| DocsCluster {
        config,
        namespace,
        mesh: None,
    };
    let ambient = |config, namespace| DocsCluster {
        config,
        namespace,
        mesh: Some(AMBIENT_MESH),
    };
    let (page, section) = file.split_once("__").unwrap_or((file, ""));
    let second = section.contains("cluster2");
    if section.ends_with("-meshconfig.yaml") {
        return Vec::new();
    }
    // Ambient usage, not multicluster: no service scoping.
    if page.starts_with("ambient-traffic-distribution") {
        return vec![on(AMBIENT_1, "default")];
    }
    if page.starts_with("ambient") {
        return vec![ambient(
            if second { AMBIENT_2 } else { AMBIENT_1 },
            "sample",
        )];
    }
    match page {
        "setup-mc-multi-primary" => vec![on(
            if second {
                MULTI_PRIMARY_2
            } else {
                MULTI_PRIMARY
            },
            "default",
        )],
        "setup-mc-multi-primary-multi-network" => {
            vec![on(
                if second {
                    MULTI_NETWORK_2
                } else {
                    MULTI_NETWORK_1
                },
                "default",
            )]
        }
        "setup-mc-primary-remote" => vec![on(if second { REMOTE } else { PRIMARY }, "default")],
        "setup-mc-primary-remote-multi-network" => {
            vec![on(if second { REMOTE_NET } else { PRIMARY_NET }, "default")]
        }
        // The verify page follows each install page: every sidecar model, both clusters.
        "setup-mc-verify" => {
            let all = [
                MULTI_PRIMARY,
                MULTI_PRIMARY_2,
                MULTI_NETWORK_1,
                MULTI_NETWORK_2,
                PRIMARY,
                REMOTE,
                PRIMARY_NET,
                REMOTE_NET,
            ];
            all.into_iter()
                .filter(|c| {
                    !section.contains("cluster1") || c.starts_with("cluster: {name: cluster1")
                })
                .filter(|c| !second || c.starts_with("cluster: {name: cluster2"))
                .map(|c| on(c, "sample"))
                .collect()
        }
        "tasks-locality-before-you-begin"
            if section.contains("region1.zone1") || section.starts_with("create") =>
        {
            vec![
                on(LOCALITY_PRIMARY, "sample"),
                on(LOCALITY_REMOTE, "sample"),
            ]
        }
        "tasks-locality-before-you-begin" => vec![on(LOCALITY_REMOTE, "sample")],
        "tasks-locality-failover" | "tasks-locality-distribute" => {
            vec![on(LOCALITY_PRIMARY, "sample")]
        }
        // The page's hosts are myns's.
        "ops-mc-traffic-management" => vec![on(MULTI_PRIMARY, "myns")],
        // The DestinationRule examples are for hosts in prod.
        "reference-destination-rule" => vec![on(REFERENCE, "prod")],
        p if p.starts_with("reference-") => vec![on(REFERENCE, "default")],
        _ => panic!("{file}: no model for this page; add it to docs_clusters"),
    }
}

/// What Istio's documented setups may still be told, each because the README ("Istio's own
/// documentation") says why the documented setup is unsafe in production: (file, rule).
const DOCS_WARNINGS: &[(&str, &str)] = &[
    // The verify page and the locality tasks deploy Services with no DestinationRule: traffic
    // is spread over every cluster and never fails over (FG402).
    ("setup-mc-verify__deploy-curl.yaml", "FG402"),
    ("setup-mc-verify__deploy-helloworld-service.yaml", "FG402"),
    (
        "tasks-locality-before-you-begin__deploy-curl-region1.zone1.yaml",
        "FG402",
    ),
    (
        "tasks-locality-before-you-begin__deploy-helloworld-region1.zone1.yaml",
        "FG402",
    ),
    // The ambient verify page's Services have no traffic distribution and no waypoint: ztunnel
    // spreads every request over both clusters, with no local-first failover (FG402).
    ("ambient-mc-verify__deploy-curl.yaml", "FG402"),
    ("ambient-mc-verify__deploy-helloworld-service.yaml", "FG402"),
    (
        "ambient-mc-verify__deploy-helloworld-v1-cluster1.yaml",
        "FG402",
    ),
    (
        "ambient-mc-verify__deploy-helloworld-v2-cluster2.yaml",
        "FG402",
    ),
    // The same page applies helloworld before it labels it global (the v1/v2 files), and keeps
    // curl local: until then, and for curl, other clusters' endpoints are dropped (FG410).
    ("ambient-mc-verify__deploy-curl.yaml", "FG410"),
    ("ambient-mc-verify__deploy-helloworld-service.yaml", "FG410"),
    // The distribute task gives region2/zone3 no weight on purpose: that cluster then takes no
    // traffic even when every other one is down (FG106, a warning since v3).
    (
        "tasks-locality-distribute__configure-weighted-distribution.yaml",
        "FG106",
    ),
];

#[test]
fn istio_docs_raise_no_false_alarm() {
    let docs = common::shared_dir().join("corpus/istio-docs");
    let mut files: Vec<_> = std::fs::read_dir(&docs)
        .expect("istio-docs corpus")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    // A page's files applied to one cluster form one scenario: they are checked together.
    let mut pages: std::collections::BTreeMap<
        (String, &str, &str, Option<&str>),
        Vec<std::path::PathBuf>,
    > = std::collections::BTreeMap::new();
    for path in &files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        // Reference pages hold alternative examples, not one setup: each stands alone.
        let page = match name.split_once("__") {
            Some((p, _)) if !p.starts_with("reference-") => p.to_owned(),
            _ => name.clone(),
        };
        for cluster in docs_clusters(&name) {
            pages
                .entry((
                    page.clone(),
                    cluster.config,
                    cluster.namespace,
                    cluster.mesh,
                ))
                .or_default()
                .push(path.clone());
        }
    }
    let (mut checked, mut alarms) = (0, Vec::new());
    let mut warned = std::collections::BTreeSet::new();
    for ((page, config_text, namespace, mesh), paths) in &pages {
        let mut config = failover_guard::engine::parse_config(config_text, page)
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        if let Some(mesh) = mesh {
            config = config.with_mesh(
                failover_guard::istio::mesh::MeshConfig::parse(mesh, page)
                    .unwrap_or_else(|e| panic!("{page}: {e}")),
            );
        }
        let (mut inputs, errors) = read_inputs(paths);
        assert!(errors.is_empty(), "{page}: {errors:?}");
        // `kubectl apply -n NS`: objects without a namespace land in the page's.
        for object in inputs
            .iter_mut()
            .flat_map(|i| &mut i.documents)
            .flat_map(|d| &mut d.objects)
        {
            if let Some(meta) = object.get_mut("metadata").and_then(|m| m.as_object_mut())
                && !meta.contains_key("namespace")
            {
                meta.insert("namespace".into(), (*namespace).into());
            }
        }
        let report = offline::check(&inputs, &config);
        checked += paths.len();
        for f in &report.findings {
            let name = std::path::Path::new(&f.file)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            if f.action.as_str() == "warn" {
                warned.insert((name.clone(), f.rule.to_owned()));
            }
            let allowed = f.action.as_str() == "mutate"
                || (f.action.as_str() == "warn"
                    && DOCS_WARNINGS.contains(&(name.as_str(), f.rule)));
            if !allowed {
                let model = config_text.lines().last().unwrap_or_default();
                alarms.push(format!(
                    "{name} [{model}]: {} {}",
                    f.action.as_str(),
                    f.message
                ));
            }
        }
    }
    assert!(checked > 40, "only {checked} docs files were checked");
    for (file, rule) in DOCS_WARNINGS {
        assert!(
            warned.contains(&(file.to_string(), rule.to_string())),
            "DOCS_WARNINGS lists {file} {rule}, which is no longer warned: remove it (and its README line)"
        );
    }
    assert!(
        alarms.is_empty(),
        "false alarms on Istio's documented setups:\n{}",
        alarms.join("\n")
    );
}
