//! Istio in the loop: every object failover-guard's mutation produces is accepted by Istio's
//! own validation (with no error the input did not already have), and the scenarios under
//! tests/scenarios show, with Istio's own pilot, what Envoy gets before and after `mutate`.
//!
//! The harness is tests/istio/main.go (see tests/common/istio.rs); `FG_ISTIO=skip` skips this
//! suite, `FG_ISTIO=required` (CI) fails it when the harness cannot be built.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use common::{istio, repo_path, shared_dir, strategies};
use failover_guard::{
    config::{Config, DiscoveredRemote},
    engine::{Action, Pass, evaluate},
    istio::traffic,
    object::Kind,
    offline,
    world::ManifestWorld,
};
use proptest::{
    strategy::{Strategy, ValueTree},
    test_runner::TestRunner,
};
use serde_json::{Value, json};

/// One object before and after failover-guard's mutation, and where it came from.
struct Mutation {
    origin: String,
    before: Value,
    after: Value,
}

fn is_istio(object: &Value) -> bool {
    matches!(
        Kind::of(object),
        Some(
            Kind::DestinationRule | Kind::ServiceEntry | Kind::AuthorizationPolicy | Kind::Gateway
        )
    )
}

fn mutate_one(object: &Value, config: &Config, world: &ManifestWorld) -> Value {
    let mut after = object.clone();
    evaluate(&mut after, config, Some(world), "default", Pass::Mutate);
    after
}

/// The rule fixtures' objects (src/rules/fixtures), mutated by every rule.
fn fixture_mutations() -> Vec<Mutation> {
    let mut out = Vec::new();
    let dir = repo_path("src/rules/fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    for path in files {
        let cases: Vec<Value> =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&path).expect("read")).expect("yaml");
        for case in cases {
            let mut config = Config::example();
            if case["noRemotes"].as_bool() == Some(true) {
                config.remotes.clear();
            }
            let world_objects: Vec<Value> = case["world"].as_array().cloned().unwrap_or_default();
            let world = ManifestWorld::new(&world_objects, "default", "svc.cluster.local");
            let before = case["object"].clone();
            let after = mutate_one(&before, &config, &world);
            out.push(Mutation {
                origin: format!(
                    "{} {:?}",
                    path.file_name().unwrap().to_string_lossy(),
                    case["name"].as_str().unwrap_or("")
                ),
                before,
                after,
            });
        }
    }
    out
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// Every object of ../shared/corpus, mutated with the other objects of its file as the world.
fn corpus_mutations() -> Vec<Mutation> {
    let config = Config::example();
    let mut files = Vec::new();
    yaml_files(&shared_dir().join("corpus"), &mut files);
    assert!(!files.is_empty(), "the corpus is empty");
    let mut out = Vec::new();
    for path in files {
        let name = path.display().to_string();
        let input = offline::parse_input(&name, &std::fs::read_to_string(&path).expect("read"));
        let world = offline::world_of(std::slice::from_ref(&input), &config);
        for doc in &input.documents {
            for object in &doc.objects {
                out.push(Mutation {
                    origin: format!("{name} document {}", doc.index + 1),
                    before: object.clone(),
                    after: mutate_one(object, &config, &world),
                });
            }
        }
    }
    out
}

/// Generated objects (the property tests' generators), with a fixed seed.
fn property_mutations() -> Vec<Mutation> {
    let config = Config::example();
    let world = ManifestWorld::new(
        [
            &json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
             "metadata": {"name": "reviews", "namespace": "bookinfo"},
             "spec": {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}}),
        ],
        "default",
        "svc.cluster.local",
    );
    let mut runner = TestRunner::deterministic();
    let mut out = Vec::new();
    let mut sample = |kind: &str, strategy: &dyn Fn(&mut TestRunner) -> Value, n: usize| {
        for i in 0..n {
            let before = strategy(&mut runner);
            out.push(Mutation {
                origin: format!("generated {kind} #{i}"),
                after: mutate_one(&before, &config, &world),
                before,
            });
        }
    };
    sample(
        "DestinationRule",
        &|r| {
            strategies::destination_rule()
                .new_tree(r)
                .unwrap()
                .current()
        },
        200,
    );
    sample(
        "ServiceEntry",
        &|r| strategies::service_entry().new_tree(r).unwrap().current(),
        200,
    );
    sample(
        "AuthorizationPolicy",
        &|r| {
            strategies::authorization_policy()
                .new_tree(r)
                .unwrap()
                .current()
        },
        100,
    );
    out
}

#[test]
fn istio_accepts_every_mutation() {
    let Some(harness) = istio::harness() else {
        return;
    };
    let mutations: Vec<Mutation> = [
        fixture_mutations(),
        corpus_mutations(),
        property_mutations(),
    ]
    .into_iter()
    .flatten()
    .filter(|m| is_istio(&m.before) && m.before != m.after)
    .collect();
    assert!(mutations.len() > 300, "only {} mutations", mutations.len());
    // One case, validation only: each object is judged on its own. Istio's verdict on an
    // object can depend on Go's random map order (validateLocalities in
    // pkg/config/validation/agent walks a distribute rule's `to` map and rejects an overlap
    // only when the wider key comes first), so each original is judged several times and a
    // mutation is blamed only for errors none of those verdicts showed.
    const JUDGED: usize = 16;
    let objects: Vec<&Value> = mutations
        .iter()
        .flat_map(|m| std::iter::repeat_n(&m.before, JUDGED).chain([&m.after]))
        .collect();
    let result = &istio::run(
        harness,
        &[json!({"name": "mutations", "validate": true, "objects": objects})],
    )[0];
    assert!(result["error"].is_null(), "harness: {}", result["error"]);
    let verdicts = result["validation"].as_array().expect("validation");
    assert_eq!(verdicts.len(), objects.len());
    let mut failures = Vec::new();
    for (m, verdicts) in mutations.iter().zip(verdicts.chunks(JUDGED + 1)) {
        let (after, before) = verdicts.split_last().expect("JUDGED + 1 verdicts");
        let before: BTreeSet<String> = before.iter().flat_map(istio::error_messages).collect();
        let new: Vec<String> = istio::error_messages(after)
            .into_iter()
            .filter(|e| !before.contains(e))
            .collect();
        if !new.is_empty() {
            failures.push(format!(
                "{}: Istio rejects the mutated object: {}\nmutated: {}",
                m.origin,
                new.join("; "),
                serde_json::to_string(&m.after).unwrap()
            ));
        }
    }
    eprintln!(
        "istio: {} mutated objects checked by Istio's validation, {} rejected",
        mutations.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// One scenario folder: `objects.yaml`, `scenario.yaml`, optionally `config.yaml`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Scenario {
    /// What the scenario shows, in a sentence or two.
    about: String,
    /// Rules whose effect on Envoy this scenario proves.
    #[serde(default)]
    proves: Vec<String>,
    /// Clients to ask for; default: one per configured locality, in the first Service's
    /// namespace.
    #[serde(default)]
    clients: Vec<Value>,
    /// Ask pilot as a multi-network istiod that knows the remote gateways.
    #[serde(default)]
    remote_gateways_in_mesh_networks: bool,
    /// Envoy cluster name (or `name@locality`, `name@namespace@locality` for some clients
    /// only) -> verdict, for the input as written.
    before: BTreeMap<String, String>,
    /// Envoy cluster name -> verdict, after `failover-guard mutate`.
    after: BTreeMap<String, String>,
    /// Rules `failover-guard check` denies on this input (exactly).
    #[serde(default)]
    denied: Vec<String>,
    /// Rules `failover-guard check` warns about on this input (all of them, when given).
    #[serde(default)]
    warned: Vec<String>,
    /// Why an `after` verdict other than failover is fine, when nothing denies it.
    #[serde(default)]
    reason: Option<String>,
    /// What discovery saw in the remote clusters (as `serve` with `discovery` configured):
    /// the scenario's config gains it before `check` and `mutate` run.
    #[serde(default)]
    discovered: Vec<DiscoveredRemote>,
    /// Where pilot puts the remotes' gateway endpoints, before and after `mutate`.
    #[serde(default)]
    remotes: RemoteExpectations,
    /// What ztunnel receives from pilot's ambient index per Service (`namespace/name`), for the
    /// input as written; `simulate`'s ztunnel view must say the same.
    #[serde(default)]
    ztunnel: BTreeMap<String, ZtunnelExpectation>,
    /// A user's report this scenario reproduces (tests/scenarios/users).
    #[serde(default)]
    report: Option<UserReport>,
    /// What failover-guard does about the report: fix, deny, warn or none.
    #[serde(default)]
    outcome: Option<String>,
    /// Why failover-guard does nothing (outcome none), or what its outcome needs said.
    #[serde(default)]
    why: Option<String>,
}

/// A public report of broken failover (issue #33's table).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UserReport {
    /// U1..U25.
    id: String,
    /// The threads, as `owner/repo#N` (or a page's title).
    threads: Vec<String>,
    /// What the user saw, in a line.
    broke: String,
}

/// One Service as ztunnel receives it; a field left out is not checked.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ZtunnelExpectation {
    /// Whether its traffic goes through a waypoint.
    #[serde(default)]
    waypoint: Option<bool>,
    /// GLOBAL or LOCAL (multi-network ambient).
    #[serde(default)]
    scope: Option<String>,
    /// Its workloads: `cluster locality` for a pod, `network gateway` for another network.
    #[serde(default)]
    workloads: Option<Vec<String>>,
}

/// A ztunnel workload as a scenario writes it.
fn workload_key(cluster: &str, network: &str, locality: &str, gateway: bool) -> String {
    if gateway {
        format!("{network} gateway")
    } else {
        format!("{cluster} {locality}")
    }
}

/// The harness's ztunnel view of one Service, in a scenario's terms.
fn pilot_ztunnel(result: &Value, service: &str) -> Option<(bool, String, Vec<String>)> {
    let view = result["ztunnel"].get(service)?;
    let mut workloads: Vec<String> = view["workloads"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            workload_key(
                w["cluster"].as_str().unwrap_or(""),
                w["network"].as_str().unwrap_or(""),
                w["locality"].as_str().unwrap_or(""),
                w["gateway"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    workloads.sort();
    Some((
        view["waypoint"].as_bool().unwrap_or(false),
        view["scope"].as_str().unwrap_or("").to_owned(),
        workloads,
    ))
}

/// Compares pilot's ztunnel view with the scenario's expectations and with `simulate`'s.
fn compare_ztunnel(
    name: &str,
    want: &BTreeMap<String, ZtunnelExpectation>,
    result: &Value,
    objects: &[Value],
    config: &Config,
    failures: &mut Vec<String>,
) {
    let report = failover_guard::simulate::run(
        objects,
        config,
        &failover_guard::simulate::Request::default(),
    );
    for (service, expected) in want {
        let Some((waypoint, scope, workloads)) = pilot_ztunnel(result, service) else {
            failures.push(format!("{name}: pilot has no ztunnel view of {service}"));
            continue;
        };
        let mut check = |what: &str, got: String, want: Option<String>| {
            if let Some(want) = want.filter(|w| *w != got) {
                failures.push(format!(
                    "{name}: ztunnel {what} of {service}: pilot {got}, expected {want}"
                ));
            }
        };
        check(
            "waypoint",
            waypoint.to_string(),
            expected.waypoint.map(|w| w.to_string()),
        );
        check("scope", scope.clone(), expected.scope.clone());
        check(
            "workloads",
            workloads.join(", "),
            expected.workloads.as_ref().map(|w| {
                let mut w = w.clone();
                w.sort();
                w.join(", ")
            }),
        );
        // One model: simulate says what pilot says.
        let (ns, svc) = service.split_once('/').unwrap_or(("default", service));
        let host = failover_guard::istio::service_host(svc, ns, &config.cluster.cluster_domain);
        let Some(model) = report.ztunnel.iter().find(|z| z.host == host) else {
            failures.push(format!("{name}: simulate has no ztunnel view of {service}"));
            continue;
        };
        let mut modelled: Vec<String> = model
            .workloads
            .iter()
            .map(|w| workload_key(&w.cluster, &w.network, &w.locality, w.gateway))
            .collect();
        modelled.sort();
        let modelled_scope = model.scope.map(str::to_uppercase).unwrap_or_default();
        if (model.waypoint.is_some(), modelled_scope.as_str(), &modelled)
            != (waypoint, scope.as_str(), &workloads)
        {
            failures.push(format!(
                "{name}: simulate's ztunnel view of {service} (waypoint {}, scope {modelled_scope}, {modelled:?}) differs from pilot's (waypoint {waypoint}, scope {scope}, {workloads:?})",
                model.waypoint.is_some()
            ));
        }
    }
}

/// Per stage: Envoy cluster name -> remote cluster -> its gateway endpoint, for every client.
/// The remotes listed are all that have an endpoint: one not listed must have none.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RemoteExpectations {
    #[serde(default)]
    before: BTreeMap<String, BTreeMap<String, RemoteEndpoint>>,
    #[serde(default)]
    after: BTreeMap<String, BTreeMap<String, RemoteEndpoint>>,
}

/// What pilot gives one remote's gateway endpoint (or, keyed by address, any other
/// endpoint); a field left out is not checked.
#[derive(serde::Deserialize, Debug, PartialEq, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct RemoteEndpoint {
    /// The priority of its locality group (0 is the first Envoy tries).
    #[serde(default)]
    priority: Option<u64>,
    /// Its load-balancing weight.
    #[serde(default)]
    weight: Option<u64>,
    /// Whether the client talks Istio mTLS to it.
    #[serde(default)]
    mtls: Option<bool>,
}

/// The verdicts of a harness result, by Envoy cluster name, per client.
fn verdicts(result: &Value) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for cluster in result["clusters"].as_array().into_iter().flatten() {
        let client = format!(
            "{}@{}",
            cluster["client"]["namespace"].as_str().unwrap_or(""),
            cluster["client"]["locality"].as_str().unwrap_or("")
        );
        out.entry(cluster["name"].as_str().unwrap_or("").to_owned())
            .or_default()
            .push((client, cluster["verdict"].as_str().unwrap_or("").to_owned()));
    }
    out
}

fn compare(
    name: &str,
    when: &str,
    want: &BTreeMap<String, String>,
    result: &Value,
    failures: &mut Vec<String>,
) {
    if !result["error"].is_null() {
        failures.push(format!(
            "{name} ({when}): harness error {}",
            result["error"]
        ));
        return;
    }
    // A pilot panic is the verdict of every cluster: pilot built none.
    if let Some(panic) = result["panic"].as_str() {
        for (key, verdict) in want {
            if verdict != traffic::PILOT_PANIC {
                failures.push(format!(
                    "{name} ({when}): {key} expected {verdict}, but pilot panicked: {panic}"
                ));
            }
        }
        return;
    }
    let got = verdicts(result);
    for (key, verdict) in want {
        // `cluster@locality` (or `cluster@namespace@locality`) expects the verdict for those
        // clients only.
        let (cluster, only) = match key.split_once('@') {
            Some((cluster, locality)) => (cluster.to_owned(), Some(locality)),
            None => (key.clone(), None),
        };
        let cluster = &cluster;
        let got_for = got
            .get(cluster)
            .map(|per_client| {
                per_client
                    .iter()
                    .filter(|(client, _)| {
                        // `namespace@locality`, or the locality alone.
                        only.is_none_or(|want| {
                            client == want || client.split_once('@').is_some_and(|(_, l)| l == want)
                        })
                    })
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .filter(|v| !v.is_empty());
        match got_for {
            None => failures.push(format!(
                "{name} ({when}): pilot built no cluster {cluster}; it built {:?}",
                got.keys().collect::<Vec<_>>()
            )),
            Some(per_client) => {
                for (client, v) in &per_client {
                    if v != verdict {
                        let table = clusters_named(result, cluster);
                        failures.push(format!(
                            "{name} ({when}): {cluster} for {client} is {v}, expected {verdict}\n{}",
                            serde_json::to_string(&table).unwrap()
                        ));
                    }
                }
            }
        }
    }
}

/// The Envoy clusters of a harness result with this name, one per client.
fn clusters_named<'a>(result: &'a Value, name: &str) -> Vec<&'a Value> {
    result["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["name"] == name)
        .collect()
}

/// Checks the remote gateway endpoints pilot built, per Envoy cluster and client, against
/// `want` (remote cluster -> its endpoint; a remote not in it must have no endpoint).
fn compare_remotes(
    name: &str,
    when: &str,
    want: &BTreeMap<String, BTreeMap<String, RemoteEndpoint>>,
    result: &Value,
    failures: &mut Vec<String>,
) {
    for (cluster, remotes) in want {
        let built = clusters_named(result, cluster);
        if built.is_empty() {
            failures.push(format!("{name} ({when}): pilot built no cluster {cluster}"));
        }
        for c in built {
            // Every endpoint of a remote (one per subset label set in the default cluster),
            // reported with only the fields the scenario asks about.
            let mut got: BTreeMap<String, Vec<RemoteEndpoint>> = BTreeMap::new();
            for p in c["priorities"].as_array().into_iter().flatten() {
                for e in p["endpoints"].as_array().into_iter().flatten() {
                    // A remote's gateway by its cluster; another endpoint by its address,
                    // when asked for.
                    let Some(remote) = e["cluster"]
                        .as_str()
                        .or_else(|| e["address"].as_str().filter(|a| remotes.contains_key(*a)))
                    else {
                        continue;
                    };
                    let asked = remotes.get(remote);
                    let seen = RemoteEndpoint {
                        priority: asked.and_then(|a| a.priority).and(p["priority"].as_u64()),
                        weight: asked
                            .and_then(|a| a.weight)
                            .map(|_| e["weight"].as_u64().unwrap_or(0)),
                        mtls: asked
                            .and_then(|a| a.mtls)
                            .map(|_| e["mtls"].as_bool().unwrap_or(false)),
                    };
                    let all = got.entry(remote.to_owned()).or_default();
                    if !all.contains(&seen) {
                        all.push(seen);
                    }
                }
            }
            let wanted: BTreeMap<String, Vec<RemoteEndpoint>> = remotes
                .iter()
                .map(|(remote, endpoint)| (remote.clone(), vec![*endpoint]))
                .collect();
            if got != wanted {
                failures.push(format!(
                    "{name} ({when}): {cluster} for {}: remote endpoints {got:?}, expected {wanted:?}",
                    c["client"]
                ));
            }
        }
    }
}

#[test]
fn scenarios_match_pilot() {
    let Some(harness) = istio::harness() else {
        return;
    };
    let mut cases = Vec::new();
    let mut loaded = Vec::new();
    let mut sim_inputs = Vec::new();
    let mut failures = Vec::new();
    for (name, dir) in istio::scenario_dirs() {
        let scenario: Scenario = serde_yaml_ng::from_str(
            &std::fs::read_to_string(dir.join("scenario.yaml")).expect("scenario.yaml"),
        )
        .unwrap_or_else(|e| panic!("{name}/scenario.yaml: {e}"));
        assert!(
            !scenario.about.trim().is_empty(),
            "{name}: say what it shows"
        );
        let (config, remote_files) = istio::scenario_config(&dir, &scenario.discovered);
        // What failover-guard says and writes: exactly what `check` and `mutate` do.
        let staged = Staged::new(&name, &dir, &config);
        let (before, after) = (staged.before.clone(), staged.after.clone());
        let denied = staged.rules(Action::Deny);
        let want_denied: BTreeSet<&str> = scenario.denied.iter().map(String::as_str).collect();
        if denied != want_denied {
            failures.push(format!(
                "{name}: check denies {denied:?}, expected {want_denied:?}"
            ));
        }
        let warned = staged.rules(Action::Warn);
        let want_warned: BTreeSet<&str> = scenario.warned.iter().map(String::as_str).collect();
        if !want_warned.is_empty() && warned != want_warned {
            failures.push(format!(
                "{name}: check warns {warned:?}, expected {want_warned:?}"
            ));
        }
        // A user report says what failover-guard does, and that is what check and mutate do.
        if name.starts_with("users/") {
            failures.extend(user_outcome_disagreements(
                &name, &scenario, &denied, &warned,
            ));
        }
        let not_failover: Vec<&String> = scenario
            .after
            .iter()
            .filter(|(_, v)| v.as_str() != "failover")
            .map(|(k, _)| k)
            .collect();
        if !not_failover.is_empty() && denied.is_empty() && scenario.reason.is_none() {
            failures.push(format!(
                "{name}: {not_failover:?} not failover after mutate, yet nothing denies it and no reason is written"
            ));
        }

        let namespace = before
            .iter()
            .find(|o| Kind::of(o) == Some(Kind::Service))
            .and_then(|o| o["metadata"]["namespace"].as_str())
            .unwrap_or("default")
            .to_owned();
        let clients: Vec<Value> = if scenario.clients.is_empty() {
            config
                .cluster
                .localities
                .iter()
                .map(|l| json!({"locality": l, "namespace": namespace}))
                .collect()
        } else {
            scenario.clients.clone()
        };
        let mut mesh = istio::scenario_mesh(&config, &remote_files);
        mesh["remoteGatewaysInMeshNetworks"] = json!(scenario.remote_gateways_in_mesh_networks);
        for (when, objects) in [("before", &before), ("after", &after)] {
            cases.push(json!({
                "name": format!("{name} {when}"),
                "validate": true,
                "traffic": true,
                "ztunnel": !scenario.ztunnel.is_empty(),
                "objects": objects,
                "mesh": mesh,
                "meshConfig": istio::mesh_config(&config),
                "clients": clients,
            }));
        }
        sim_inputs.push((
            config.clone(),
            before.clone(),
            after.clone(),
            clients.clone(),
        ));
        loaded.push((name, scenario));
    }
    assert!(!loaded.is_empty(), "no scenarios");
    let results = istio::run(harness, &cases);
    for (i, (name, scenario)) in loaded.iter().enumerate() {
        let (before, after) = (&results[2 * i], &results[2 * i + 1]);
        compare(name, "before", &scenario.before, before, &mut failures);
        compare(name, "after", &scenario.after, after, &mut failures);
        compare_remotes(
            name,
            "before",
            &scenario.remotes.before,
            before,
            &mut failures,
        );
        compare_remotes(name, "after", &scenario.remotes.after, after, &mut failures);
        compare_ztunnel(
            name,
            &scenario.ztunnel,
            before,
            &sim_inputs[i].1,
            &sim_inputs[i].0,
            &mut failures,
        );
        // simulate answers what pilot answers, table for table.
        let (config, objects_before, objects_after, clients) = &sim_inputs[i];
        failures.extend(disagreements(
            &format!("{name} before"),
            before,
            objects_before,
            config,
            clients,
        ));
        failures.extend(disagreements(
            &format!("{name} after"),
            after,
            objects_after,
            config,
            clients,
        ));
        // Istio accepts what failover-guard wrote.
        let errors = |r: &Value| -> BTreeSet<String> {
            r["validation"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(istio::error_messages)
                .collect()
        };
        let new: Vec<String> = errors(after).difference(&errors(before)).cloned().collect();
        if !new.is_empty() {
            failures.push(format!(
                "{name}: Istio rejects the mutated objects: {new:?}"
            ));
        }
        eprintln!(
            "scenario {name}: {} before, {} after (proves {})",
            summary(before),
            summary(after),
            if scenario.proves.is_empty() {
                "-".to_owned()
            } else {
                scenario.proves.join(", ")
            }
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The clusters of a harness result and of `simulate`, keyed by client and cluster name, in
/// one shape (the harness's JSON; simulate also names the DestinationRule, which pilot does not
/// report).
fn by_client_and_name(clusters: &[Value]) -> BTreeMap<(String, String, String), Value> {
    clusters
        .iter()
        .map(|c| {
            let mut c = c.clone();
            if let Some(map) = c.as_object_mut() {
                map.remove("destinationRule");
            }
            (
                (
                    c["client"]["namespace"].as_str().unwrap_or("").to_owned(),
                    c["client"]["locality"].as_str().unwrap_or("").to_owned(),
                    c["name"].as_str().unwrap_or("").to_owned(),
                ),
                c,
            )
        })
        .collect()
}

/// Differences between pilot's clusters and simulate's for one case.
fn disagreements(
    label: &str,
    pilot: &Value,
    objects: &[Value],
    config: &Config,
    clients: &[Value],
) -> Vec<String> {
    let clients: Vec<traffic::Client> = clients
        .iter()
        .map(|c| traffic::Client {
            locality: c["locality"].as_str().unwrap_or("").to_owned(),
            namespace: c["namespace"].as_str().unwrap_or("default").to_owned(),
        })
        .collect();
    let simulated = traffic::simulate(objects, config, &clients, &[]);
    let ours: Vec<Value> = simulated
        .clusters
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    // Pilot panicked: it built nothing to compare, and the model must foresee the panic.
    if let Some(panic) = pilot["panic"].as_str() {
        if simulated
            .clusters
            .iter()
            .any(|c| c.verdict == traffic::PILOT_PANIC)
        {
            return Vec::new();
        }
        return vec![format!(
            "{label}: pilot panicked ({panic}), simulate foresaw no panic"
        )];
    }
    let theirs = by_client_and_name(pilot["clusters"].as_array().map_or(&[][..], Vec::as_slice));
    let ours = by_client_and_name(&ours);
    let mut out = Vec::new();
    for key in theirs.keys().chain(ours.keys()).collect::<BTreeSet<_>>() {
        match (theirs.get(key), ours.get(key)) {
            (Some(a), Some(b)) if a == b => {}
            (a, b) => out.push(format!(
                "{label} {key:?}:\n  pilot    {}\n  simulate {}",
                a.map_or("-".to_owned(), |v| v.to_string()),
                b.map_or("-".to_owned(), |v| v.to_string())
            )),
        }
    }
    out
}

fn summary(result: &Value) -> String {
    if let Some(panic) = result["panic"].as_str() {
        return format!("pilot panic ({panic})");
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for c in result["clusters"].as_array().into_iter().flatten() {
        *counts
            .entry(c["verdict"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    counts
        .iter()
        .map(|(v, n)| format!("{n} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A scenario as `check` and `mutate` see it: its objects as written, what `check` finds, and
/// the objects `mutate` writes.
struct Staged {
    before: Vec<Value>,
    report: offline::Report,
    after: Vec<Value>,
}

impl Staged {
    fn new(name: &str, dir: &std::path::Path, config: &Config) -> Self {
        let text = std::fs::read_to_string(dir.join("objects.yaml")).expect("objects.yaml");
        let input = offline::parse_input("objects.yaml", &text);
        assert!(
            input.documents.iter().all(|d| d.error.is_none()),
            "{name}: objects.yaml does not parse"
        );
        let objects = |input: &offline::Input| -> Vec<Value> {
            input
                .documents
                .iter()
                .flat_map(|d| d.objects.clone())
                .collect()
        };
        let before = objects(&input);
        let report = offline::check(std::slice::from_ref(&input), config);
        let mutated = &offline::mutate(std::slice::from_ref(&input), config)[0];
        let after = objects(&offline::parse_input("mutated.yaml", &mutated.text));
        Self {
            before,
            report,
            after,
        }
    }

    /// The rules whose findings take this action.
    fn rules(&self, action: Action) -> BTreeSet<&'static str> {
        self.report
            .findings
            .iter()
            .filter(|f| f.action == action)
            .map(|f| f.rule)
            .collect()
    }
}

/// Where a user report's stated outcome and what `check` does disagree.
fn user_outcome_disagreements(
    name: &str,
    scenario: &Scenario,
    denied: &BTreeSet<&str>,
    warned: &BTreeSet<&str>,
) -> Vec<String> {
    let mut out = Vec::new();
    if scenario.report.is_none() {
        out.push(format!("{name}: a user scenario names its report"));
    }
    let after_failover = scenario.after.values().all(|v| v == "failover");
    match scenario.outcome.as_deref() {
        Some("fix") if !after_failover && scenario.reason.is_none() => out.push(format!(
            "{name}: outcome fix, but not every cluster fails over after mutate and no reason is written"
        )),
        Some("deny") if denied.is_empty() => {
            out.push(format!("{name}: outcome deny, but check denies nothing"))
        }
        Some("warn") if warned.is_empty() => {
            out.push(format!("{name}: outcome warn, but check warns about nothing"))
        }
        Some("none") if scenario.why.is_none() => {
            out.push(format!("{name}: outcome none needs a why"))
        }
        Some("fix" | "deny" | "warn" | "none") => {}
        other => out.push(format!(
            "{name}: outcome {other:?}, expected fix, deny, warn or none"
        )),
    }
    out
}

/// The README's table says, per rule, which scenario proves it; keep both honest.
#[test]
fn every_proven_rule_has_its_scenario_in_the_readme() {
    let readme = std::fs::read_to_string(repo_path("README.md")).expect("README");
    for (name, dir) in istio::scenario_dirs() {
        let scenario: Scenario =
            serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("scenario.yaml")).unwrap())
                .unwrap();
        for rule in &scenario.proves {
            assert!(
                failover_guard::rules::by_id(rule).is_some(),
                "{name} proves unknown rule {rule}"
            );
            // User reports are listed in the README's user-report table instead.
            if name.starts_with("users/") {
                continue;
            }
            assert!(
                readme
                    .lines()
                    .any(|l| l.starts_with(&format!("| {rule} "))
                        && l.contains(&format!("`{name}`"))),
                "README's Istio table lacks {rule} proven by `{name}`"
            );
        }
    }
}

/// simulate against pilot: generated sets of objects (tests/common/strategies.rs traffic_case)
/// under generated mesh configs (mesh_variant), as they are and after `mutate`, asked by
/// clients in two namespaces; every table and verdict must be pilot's.
///
/// `FG_SIM_SETS` is the number of sets (default 500: 1,000 cases, what CI runs); the full run
/// is `FG_SIM_SETS=1500 cargo test --release --test istio simulate_agrees -- --nocapture`
/// (3,000 cases).
#[test]
fn simulate_agrees_with_pilot_on_generated_configurations() {
    let Some(harness) = istio::harness() else {
        return;
    };
    let sets: usize = std::env::var("FG_SIM_SETS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    let example = Config::example();
    let mut runner = TestRunner::deterministic();
    let clients = vec![
        json!({"locality": "europe-west1/europe-west1-b", "namespace": "bookinfo"}),
        json!({"locality": "europe-west1/europe-west1-b", "namespace": "default"}),
    ];
    let mut cases = Vec::new();
    let mut inputs = Vec::new();
    let mut meshes: BTreeMap<String, usize> = BTreeMap::new();
    let mut models: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..sets {
        let mut objects = strategies::traffic_case()
            .new_tree(&mut runner)
            .unwrap()
            .current();
        // A second host whose clusters the mesh config decides.
        objects.extend(
            strategies::mesh_spine()
                .new_tree(&mut runner)
                .unwrap()
                .current(),
        );
        objects.extend(
            strategies::peer_authentication_variant()
                .new_tree(&mut runner)
                .unwrap()
                .current(),
        );
        objects.extend(
            strategies::namespace_variant()
                .new_tree(&mut runner)
                .unwrap()
                .current(),
        );
        let mesh = strategies::mesh_variant()
            .new_tree(&mut runner)
            .unwrap()
            .current();
        *meshes
            .entry(mesh.unwrap_or("defaults").to_owned())
            .or_default() += 1;
        let multicluster = strategies::multicluster_variant()
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let base = match &multicluster {
            Some(patch) => {
                let mut base = serde_json::to_value(&example).unwrap();
                json_patch::merge(&mut base, patch);
                failover_guard::engine::parse_config(
                    &serde_yaml_ng::to_string(&base).unwrap(),
                    "generated",
                )
                .unwrap()
            }
            None => example.clone(),
        };
        *models
            .entry(format!(
                "{}{}",
                base.multicluster.describe(),
                if base.multicluster.native()
                    && base
                        .remotes
                        .iter()
                        .any(|r| r.network != base.cluster.network)
                {
                    ", two networks"
                } else {
                    ""
                }
            ))
            .or_default() += 1;
        let config = match mesh {
            Some(text) => base.with_mesh(
                failover_guard::istio::mesh::MeshConfig::parse(text, "generated").unwrap(),
            ),
            None => base.clone(),
        };
        // And as `failover-guard mutate` would store them.
        let world = ManifestWorld::new(&objects, "default", "svc.cluster.local");
        let mutated: Vec<Value> = objects
            .iter()
            .map(|o| mutate_one(o, &config, &world))
            .collect();
        for (when, objects) in [("", objects), (" mutated", mutated)] {
            cases.push(json!({
                "name": format!("generated #{i}{when}"),
                "traffic": true,
                "objects": objects,
                "mesh": istio::mesh(&config),
                "meshConfig": istio::mesh_config(&config),
                "clients": clients,
            }));
            inputs.push((objects, config.clone()));
        }
    }
    // The harness grows by a megabyte or two per case: 500 cases a process.
    let results: Vec<Value> = cases
        .chunks(500)
        .flat_map(|chunk| istio::run(harness, chunk))
        .collect();
    let mut failures = Vec::new();
    let mut compared = 0;
    for (i, (result, (objects, config))) in results.iter().zip(&inputs).enumerate() {
        assert!(result["error"].is_null(), "case {i}: {}", result["error"]);
        compared += result["clusters"].as_array().map_or(0, Vec::len);
        let found = disagreements(
            &format!(
                "generated #{} {}",
                i / 2,
                if i % 2 == 0 { "as written" } else { "mutated" }
            ),
            result,
            objects,
            config,
            &clients,
        );
        if !found.is_empty() {
            failures.push(format!(
                "{}\nmesh config: {}\nobjects: {}",
                found.join("\n"),
                istio::mesh_config(config),
                serde_json::to_string(objects).unwrap()
            ));
        }
    }
    eprintln!(
        "simulate: {compared} Envoy clusters of {} generated cases ({sets} sets as written and mutated; mesh configs {meshes:?}; multicluster models {models:?}) compared with pilot, {} disagree",
        cases.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{}",
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

/// Admits `objects` one at a time, in order, as the two webhooks would: each is mutated with
/// the objects admitted before it as the world, then judged; a denied object stays out.
fn admitted(objects: &[Value], config: &Config) -> Vec<Value> {
    let mut admitted: Vec<Value> = Vec::new();
    for object in objects {
        let world = ManifestWorld::new(&admitted, "default", "svc.cluster.local");
        let mut stored = object.clone();
        evaluate(&mut stored, config, Some(&world), "default", Pass::Mutate);
        let judged = evaluate(&mut stored, config, Some(&world), "default", Pass::Validate);
        if judged.denials().next().is_none() {
            admitted.push(stored);
        }
    }
    admitted
}

/// No set of objects failover-guard admits makes pilot panic (pilot's push path has no
/// recover: a panic takes istiod down). Generated sets (tests/common/strategies.rs
/// admission_case: DNS and STATIC entries over several localities and networks,
/// failoverPriority, failover, distribute, subsets, port-level policies, several rules per
/// host, in random order) are admitted one object at a time as the webhooks would, Istio's
/// validation drops what its own webhook rejects, and pilot builds what is left for clients in
/// two namespaces. The same sets as written go through pilot too: the generator must reach
/// pilot's panics, or passing would prove nothing.
///
/// `FG_PILOT_SETS` is the number of sets (default 400, what CI runs); the full run is
/// `FG_PILOT_SETS=10000 cargo test --release --test istio no_admitted_set -- --nocapture`.
#[test]
fn no_admitted_set_makes_pilot_panic() {
    let Some(harness) = istio::harness() else {
        return;
    };
    let sets: usize = std::env::var("FG_PILOT_SETS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(400);
    let config = Config::from_yaml(
        &std::fs::read_to_string(repo_path(
            "tests/scenarios/fg602-dns-failover-priority-panic/config.yaml",
        ))
        .expect("config"),
        "config.yaml",
    )
    .expect("config");
    let mesh = istio::mesh(&config);
    let clients = json!([
        {"locality": "europe-west1/europe-west1-b", "namespace": "bookinfo"},
        {"locality": "europe-west1/europe-west1-b", "namespace": "default"},
    ]);
    let mut runner = TestRunner::deterministic();
    let mut cases = Vec::with_capacity(2 * sets);
    let mut inputs = Vec::with_capacity(2 * sets);
    let mut admitted_objects = 0;
    for i in 0..sets {
        let written = strategies::admission_case()
            .new_tree(&mut runner)
            .unwrap()
            .current();
        // Under the mesh configs pilot may run with, mesh-wide failoverPriority included.
        let config = match strategies::mesh_variant()
            .new_tree(&mut runner)
            .unwrap()
            .current()
        {
            Some(text) => config.with_mesh(
                failover_guard::istio::mesh::MeshConfig::parse(text, "generated").unwrap(),
            ),
            None => config.clone(),
        };
        let stored = admitted(&written, &config);
        admitted_objects += stored.len();
        for (when, objects) in [("as written", written), ("admitted", stored)] {
            cases.push(json!({
                "name": format!("set #{i} {when}"),
                "traffic": true,
                "dropInvalid": true,
                "objects": objects,
                "mesh": mesh,
                "meshConfig": istio::mesh_config(&config),
                "clients": clients,
            }));
            inputs.push((objects, config.clone()));
        }
    }
    // Two harness processes at a time, one per core, each for at most 500 cases: a harness
    // process keeps about 1 MB per case it answered (pilot's fake servers are not all freed),
    // so the full run would otherwise fill the machine's memory.
    const PER_PROCESS: usize = 500;
    let chunks: Vec<&[Value]> = cases.chunks(PER_PROCESS).collect();
    let mut answered: Vec<Option<Vec<Value>>> = vec![None; chunks.len()];
    for (pair, slots) in chunks.chunks(2).zip(answered.chunks_mut(2)) {
        std::thread::scope(|scope| {
            let runs: Vec<_> = pair
                .iter()
                .map(|chunk| scope.spawn(|| istio::run(harness, chunk)))
                .collect();
            for (slot, run) in slots.iter_mut().zip(runs) {
                *slot = Some(run.join().expect("harness thread"));
            }
        });
    }
    let results: Vec<Value> = answered.into_iter().flatten().flatten().collect();
    let mut written_panics = 0;
    let mut admitted_panics = Vec::new();
    let mut foreseen = 0;
    let mut panics = 0;
    for (i, (result, (objects, config))) in results.iter().zip(&inputs).enumerate() {
        assert!(
            result["error"].is_null(),
            "{}: {}",
            result["name"],
            result["error"]
        );
        let Some(panic) = result["panic"].as_str() else {
            continue;
        };
        // The model foresees every panic pilot shows (FG602 asks it).
        let clients: Vec<traffic::Client> = clients
            .as_array()
            .unwrap()
            .iter()
            .map(|c| traffic::Client {
                locality: c["locality"].as_str().unwrap().to_owned(),
                namespace: c["namespace"].as_str().unwrap().to_owned(),
            })
            .collect();
        let dropped: BTreeSet<&str> = result["dropped"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let kept: Vec<&Value> = objects
            .iter()
            .filter(|o| {
                let shown = format!(
                    "{} {}/{}",
                    o["kind"].as_str().unwrap_or(""),
                    o["metadata"]["namespace"].as_str().unwrap_or("default"),
                    o["metadata"]["name"].as_str().unwrap_or("")
                );
                !dropped.contains(shown.as_str())
            })
            .collect();
        panics += 1;
        // The question FG602 asks the model, for each host of the set's entries.
        let namespaces: Vec<String> = clients.iter().map(|c| c.namespace.clone()).collect();
        let hosts: BTreeSet<&str> = kept
            .iter()
            .filter(|o| o["kind"] == "ServiceEntry")
            .flat_map(|o| o["spec"]["hosts"].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        if hosts
            .iter()
            .any(|h| !traffic::pilot_panics(&kept, config, &namespaces, h).is_empty())
        {
            foreseen += 1;
        }
        if i % 2 == 0 {
            written_panics += 1;
        } else {
            admitted_panics.push(format!(
                "{}: pilot panicked ({panic}) on what failover-guard admitted:\n{}",
                result["name"],
                serde_json::to_string(objects).unwrap()
            ));
        }
    }
    eprintln!(
        "pilot: {sets} generated sets; as written, {written_panics} make pilot panic; admitted ({admitted_objects} objects), {} do; the model foresaw {foreseen} of {panics} panics",
        admitted_panics.len()
    );
    assert!(
        admitted_panics.is_empty(),
        "{}",
        admitted_panics
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    assert!(
        written_panics > 0,
        "no generated set made pilot panic as written: the generator no longer reaches the panic"
    );
    assert_eq!(
        foreseen, panics,
        "the model (src/istio/traffic.rs) missed a panic pilot showed"
    );
}

/// What ztunnel receives for a Service (pilot's ambient index, over WDS) is what
/// `istio::ambient::ztunnel_load_balancing` says, for every way a Service sets its traffic
/// distribution; and a DestinationRule for the same hosts (outlier detection, failoverPriority,
/// failover) changes none of it: the claim FG118 and FG402's ambient advice rest on.
#[test]
fn ztunnel_receives_what_the_model_says_and_no_destination_rule() {
    let Some(harness) = istio::harness() else {
        return;
    };
    let service = |name: &str, ns: &str, spec: Value, annotations: Option<&str>| {
        let mut svc = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 9080}]}});
        if let Some(value) = annotations {
            svc["metadata"]["annotations"] =
                json!({failover_guard::istio::TRAFFIC_DISTRIBUTION_ANNOTATION: value});
        }
        for (k, v) in spec.as_object().into_iter().flatten() {
            svc["spec"][k] = v.clone();
        }
        svc
    };
    let ambient = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sample",
        "labels": {"istio.io/dataplane-mode": "ambient"}}});
    let inheriting = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "zonal",
        "labels": {"istio.io/dataplane-mode": "ambient"},
        "annotations": {failover_guard::istio::TRAFFIC_DISTRIBUTION_ANNOTATION: "PreferClose"}}});
    let services = vec![
        service("plain", "sample", json!({}), None),
        service(
            "close",
            "sample",
            json!({"trafficDistribution": "PreferClose"}),
            None,
        ),
        service(
            "node",
            "sample",
            json!({"trafficDistribution": "PreferSameNode"}),
            None,
        ),
        service("annotated", "sample", json!({}), Some("preferSAMEzone")),
        service("typo", "sample", json!({}), Some("PreferClosest")),
        service(
            "local",
            "sample",
            json!({"internalTrafficPolicy": "Local", "trafficDistribution": "PreferClose"}),
            None,
        ),
        service(
            "unready",
            "sample",
            json!({"publishNotReadyAddresses": true, "trafficDistribution": "PreferClose"}),
            None,
        ),
        service("inherits", "zonal", json!({}), None),
        service("own", "zonal", json!({}), Some("PreferSameNode")),
        service("bound", "sample", json!({}), None),
    ];
    // Bound to a waypoint that does not exist: pilot reports it not ready and binds nothing.
    let mut services = services;
    if let Some(bound) = services.last_mut() {
        bound["metadata"]["labels"] = json!({"istio.io/use-waypoint": "waypoint"});
    }
    let mut objects = vec![ambient.clone(), inheriting.clone()];
    objects.extend(services.iter().cloned());
    // The same Services, each with a DestinationRule that orders failover its own way.
    let mut with_rules = objects.clone();
    for svc in &services {
        let (name, ns) = (
            svc["metadata"]["name"].as_str().unwrap(),
            svc["metadata"]["namespace"].as_str().unwrap(),
        );
        with_rules.push(json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"host": name, "trafficPolicy": {
                "outlierDetection": {"consecutive5xxErrors": 1, "maxEjectionPercent": 100},
                "loadBalancer": {"localityLbSetting": {"failoverPriority": ["topology.istio.io/cluster"]}}}}}));
    }
    let config = Config::example();
    let case = |name: &str, objects: &[Value]| json!({"name": name, "ztunnel": true, "objects": objects, "mesh": istio::mesh(&config)});
    let results = istio::run(
        harness,
        &[
            case("services", &objects),
            case("services with rules", &with_rules),
        ],
    );
    for r in &results {
        assert!(r["error"].is_null(), "{}", r["error"]);
    }
    let (plain, ruled) = (&results[0]["ztunnel"], &results[1]["ztunnel"]);
    assert_eq!(
        plain.as_object().map(|m| m.len()),
        Some(services.len()),
        "pilot's ambient index has every Service: {plain:#}"
    );
    assert_eq!(
        plain, ruled,
        "a DestinationRule changed what ztunnel receives"
    );
    for svc in &services {
        let (name, ns) = (
            svc["metadata"]["name"].as_str().unwrap(),
            svc["metadata"]["namespace"].as_str().unwrap(),
        );
        let namespace = [&ambient, &inheriting]
            .into_iter()
            .find(|n| n["metadata"]["name"] == ns);
        let model = failover_guard::istio::ambient::ztunnel_load_balancing(
            svc,
            namespace,
            failover_guard::istio::version::PINNED,
        );
        let pilot = &plain[format!("{ns}/{name}")];
        assert_eq!(
            pilot["routingPreference"],
            json!(model.routing_preference),
            "{ns}/{name}: {pilot:#}"
        );
        assert_eq!(pilot["mode"].as_str(), model.mode, "{ns}/{name}: {pilot:#}");
        assert_eq!(
            pilot["healthPolicy"].as_str(),
            model.health_policy,
            "{ns}/{name}: {pilot:#}"
        );
        assert_eq!(
            pilot["waypoint"], false,
            "{ns}/{name}: no waypoint exists here"
        );
    }
}

/// What `istioctl analyze` (built from the pinned module beside the harness) says of a set of
/// objects, offline: its messages as `Level CODE`, sorted and deduplicated, or "nothing".
fn istioctl_analyze(
    istioctl: &std::path::Path,
    objects: &[Value],
    mesh: Option<&PathBuf>,
) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("objects.yaml");
    let text: Vec<String> = objects
        .iter()
        .map(|o| serde_yaml_ng::to_string(o).expect("yaml"))
        .collect();
    std::fs::write(&file, text.join("---\n")).expect("write objects");
    let mut command = std::process::Command::new(istioctl);
    command.args(["analyze", "--use-kube=false", "-o", "json"]);
    if let Some(mesh) = mesh {
        command.arg("--meshConfigFile").arg(mesh);
    }
    let output = command.arg(&file).output().expect("run istioctl analyze");
    let messages: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "istioctl analyze printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let found: BTreeSet<String> = messages
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                m["level"].as_str().unwrap_or("?"),
                m["code"].as_str().unwrap_or("?")
            )
        })
        .collect();
    if found.is_empty() {
        "nothing".to_owned()
    } else {
        found.into_iter().collect::<Vec<_>>().join(", ")
    }
}

/// The README's user-report table (issue #33): per report in tests/scenarios/users, what
/// Istio's validation says of the user's objects, what `istioctl analyze` says before and after
/// failover-guard's mutation, and what failover-guard does (its scenario proves it under pilot
/// in `scenarios_match_pilot`), with the totals. Generated here; `FG_UPDATE_SNAPSHOTS=1`
/// rewrites it, and otherwise the README must hold exactly this.
#[test]
fn user_report_table_is_current() {
    let Some(harness) = istio::harness() else {
        return;
    };
    let istioctl = istio::istioctl(harness);
    assert!(istioctl.is_file(), "istioctl is built beside the harness");
    let mut loaded = Vec::new();
    let mut cases = Vec::new();
    for (name, dir) in istio::scenario_dirs() {
        if !name.starts_with("users/") {
            continue;
        }
        let scenario: Scenario =
            serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("scenario.yaml")).unwrap())
                .unwrap_or_else(|e| panic!("{name}/scenario.yaml: {e}"));
        let (config, _) = istio::scenario_config(&dir, &scenario.discovered);
        let staged = Staged::new(&name, &dir, &config);
        let (before, after) = (&staged.before, &staged.after);
        let (denied, warned, fixed) = (
            staged.rules(Action::Deny),
            staged.rules(Action::Warn),
            staged.rules(Action::Mutate),
        );
        let mesh = dir.join("mesh.yaml");
        let mesh = mesh.is_file().then_some(mesh);
        let analyze_before = istioctl_analyze(&istioctl, before, mesh.as_ref());
        let analyze_after = istioctl_analyze(&istioctl, after, mesh.as_ref());
        cases.push(json!({"name": name, "validate": true, "objects": before}));
        loaded.push((
            name,
            scenario,
            denied,
            warned,
            fixed,
            analyze_before,
            analyze_after,
        ));
    }
    if loaded.is_empty() {
        return;
    }
    let results = istio::run(harness, &cases);
    let mut rows = Vec::new();
    let (mut caught, mut validation_says, mut analyze_says) = (0, 0, 0);
    let mut by_outcome: BTreeMap<String, u32> = BTreeMap::new();
    for ((name, scenario, denied, warned, fixed, before, after), result) in
        loaded.iter().zip(&results)
    {
        let report = scenario.report.as_ref().expect("report");
        let outcome = scenario.outcome.clone().unwrap_or_default();
        *by_outcome.entry(outcome.clone()).or_default() += 1;
        if matches!(outcome.as_str(), "fix" | "deny" | "warn") {
            caught += 1;
        }
        let validation: BTreeSet<String> = result["validation"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| {
                if v["error"].as_str().is_some_and(|e| !e.is_empty()) {
                    Some(format!(
                        "rejects {} {}",
                        v["kind"].as_str()?,
                        v["name"].as_str()?
                    ))
                } else if v["warning"].as_str().is_some_and(|w| !w.is_empty()) {
                    Some(format!(
                        "warns on {} {}",
                        v["kind"].as_str()?,
                        v["name"].as_str()?
                    ))
                } else {
                    None
                }
            })
            .collect();
        if !validation.is_empty() {
            validation_says += 1;
        }
        if before != "nothing" {
            analyze_says += 1;
        }
        let list = |rules: &BTreeSet<&str>| rules.iter().copied().collect::<Vec<_>>().join(", ");
        let mut does = match outcome.as_str() {
            "fix" => format!("**fixes** ({})", list(fixed)),
            "deny" => format!("**denies** ({})", list(denied)),
            "warn" => format!("**warns** ({})", list(warned)),
            _ => "nothing (see the scenario's why)".to_owned(),
        };
        if outcome != "fix" && !fixed.is_empty() {
            does.push_str(&format!("; also writes {}", list(fixed)));
        }
        let verdicts = |m: &BTreeMap<String, String>| {
            let v: BTreeSet<&str> = m.values().map(String::as_str).collect();
            if v.is_empty() {
                "ztunnel view".to_owned()
            } else {
                v.into_iter().collect::<Vec<_>>().join("/")
            }
        };
        rows.push(format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} -> {} | `{}` |",
            report.id,
            report.threads.join(", "),
            report.broke.replace('|', "\\|"),
            if validation.is_empty() {
                "accepts".to_owned()
            } else {
                validation.into_iter().collect::<Vec<_>>().join("; ")
            },
            before,
            after,
            does,
            verdicts(&scenario.before),
            verdicts(&scenario.after),
            name
        ));
    }
    rows.sort_by_key(|r| {
        r.split('|')
            .nth(1)
            .and_then(|id| id.trim().trim_start_matches('U').parse::<u32>().ok())
            .unwrap_or(0)
    });
    let total = loaded.len();
    let outcomes = by_outcome
        .iter()
        .map(|(o, n)| format!("{o} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let table = format!(
        "| report | thread | what broke | Istio's validation | istioctl analyze (before) | istioctl analyze (after) | failover-guard | pilot before -> after | scenario |\n|---|---|---|---|---|---|---|---|---|\n{}\n\n**{caught} of {total} reports caught** (fixed, denied, or warned with the reason; {outcomes}). Istio's validation says something about {validation_says} of them; `istioctl analyze` about {analyze_says}.\n",
        rows.join("\n")
    );
    let readme_path = repo_path("README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("README");
    let (begin, end) = ("<!-- users:begin -->\n", "<!-- users:end -->");
    let start = readme.find(begin).expect("README has <!-- users:begin -->") + begin.len();
    let stop = readme.find(end).expect("README has <!-- users:end -->");
    if std::env::var_os("FG_UPDATE_SNAPSHOTS").is_some() {
        let updated = format!("{}{table}{}", &readme[..start], &readme[stop..]);
        std::fs::write(&readme_path, updated).expect("write README");
        return;
    }
    assert_eq!(
        readme[start..stop],
        table,
        "README's user-report table is stale: FG_UPDATE_SNAPSHOTS=1 cargo test --test istio user_report_table_is_current"
    );
}
