//! Real traffic under pilot: a proxyless grpc-go xDS client gets its EDS from pilot (the same
//! EDS an Envoy sidecar gets) and sends real requests to backends standing in for every
//! endpoint, while backends are stopped and restarted (the harness side is
//! tests/istio/dataplane.go).
//!
//! What it shows: a real xDS client follows the priorities pilot builds from what
//! failover-guard admitted and wrote, and `simulate --fail` names the priority that answers.
//! What it does not: failover driven by outlier detection (gRPC ejects nothing on Istio's
//! consecutive-5xx settings), the `capped` verdict (maxEjectionPercent) and mTLS, which are
//! Envoy's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{istio, repo_path};
use failover_guard::{
    config::{Config, DiscoveredRemote},
    istio::traffic,
    offline,
    simulate::{self, Request},
};
use serde_json::{Value, json};

/// One folder of tests/traffic.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TrafficScenario {
    about: String,
    client: Client,
    host: String,
    port: u32,
    /// `written` and/or `mutated`: the phases of each stage.
    stages: BTreeMap<String, Vec<Phase>>,
}

#[derive(serde::Deserialize, serde::Serialize, Clone)]
#[serde(deny_unknown_fields)]
struct Client {
    locality: String,
    namespace: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Phase {
    name: String,
    /// Localities or cluster names, as `simulate --fail` takes them.
    fail: Vec<String>,
    requests: u32,
    /// Exactly the localities (local endpoints) and remote clusters that answer.
    answered: Vec<String>,
}

/// What a user sees in one phase.
#[derive(Debug, Clone)]
enum Expect {
    /// Exactly these localities (local endpoints) and remote clusters answer.
    Exactly(BTreeSet<String>),
    /// Only this cluster's endpoints answer.
    OnlyLocal,
    /// Only remote clusters answer.
    OnlyRemote,
    /// Both this cluster's endpoints and a remote answer (traffic is spread).
    LocalAndRemote,
    /// Nothing answers: every request fails.
    Outage,
}

/// One phase to run: which failure, how many requests, what the user sees.
struct Check {
    name: String,
    fail: Vec<String>,
    requests: u32,
    expect: Expect,
}

/// An endpoint of simulate's table: the priority it is in, and who it stands for (its
/// locality, or the remote cluster whose gateway it is).
struct Endpoint {
    priority: u32,
    who: String,
    remote: bool,
    locality: String,
    out: traffic::EndpointOut,
}

/// One question to the harness and what the answer is held to.
struct Run {
    label: String,
    cluster_name: String,
    objects: Vec<Value>,
    config: Config,
    request: Request,
    endpoints: BTreeMap<String, Endpoint>,
    checks: Vec<Check>,
}

fn objects_of(text: &str, name: &str) -> Vec<Value> {
    let input = offline::parse_input(name, text);
    assert!(
        input.documents.iter().all(|d| d.error.is_none()),
        "{name} does not parse"
    );
    input
        .documents
        .iter()
        .flat_map(|d| d.objects.clone())
        .collect()
}

fn mutated(text: &str, config: &Config) -> Vec<Value> {
    let input = offline::parse_input("objects.yaml", text);
    let mutated = &offline::mutate(std::slice::from_ref(&input), config)[0];
    objects_of(&mutated.text, "mutated.yaml")
}

/// The harness case for a run, and the run: simulate's table for the client says which
/// endpoint addresses each phase's failure takes down. None when simulate builds no such
/// cluster for the client, or one grpc-go cannot take.
#[allow(clippy::too_many_arguments)]
fn prepare(
    label: String,
    objects: Vec<Value>,
    config: &Config,
    mesh: Value,
    client: &Client,
    host: &str,
    port: u32,
    checks: Vec<Check>,
) -> Option<(Value, Run)> {
    let request = Request {
        hosts: vec![host.to_owned()],
        from: vec![client.locality.clone()],
        namespace: Some(client.namespace.clone()),
        fail: Vec::new(),
    };
    let report = simulate::run(&objects, config, &request);
    let cluster_name = format!("outbound|{port}||{host}");
    let table = report
        .clusters
        .iter()
        .find(|c| c.cluster.name == cluster_name)?;
    // grpc-go rejects (NACKs) a load assignment Envoy takes: the same address twice, or the same
    // locality twice at one priority (xdsresource unmarshal_eds.go). Such a table cannot be
    // shown by a gRPC client; say so and leave it to the Envoy tables.
    let mut addresses = BTreeSet::new();
    let mut groups = BTreeSet::new();
    for p in &table.cluster.priorities {
        let duplicate_group =
            !p.endpoints.is_empty() && !groups.insert((p.priority, p.locality.clone()));
        let duplicate_address = p
            .endpoints
            .iter()
            .any(|e| !addresses.insert(format!("{}:{}", e.address, e.port)));
        if duplicate_group || duplicate_address {
            eprintln!(
                "traffic {label}: not sent: grpc-go rejects a load assignment with {} (Envoy accepts it)",
                if duplicate_address {
                    "the same address twice"
                } else {
                    "the same locality twice at one priority"
                }
            );
            return None;
        }
    }
    let mut endpoints: BTreeMap<String, Endpoint> = BTreeMap::new();
    for p in &table.cluster.priorities {
        for e in &p.endpoints {
            endpoints.insert(
                format!("{}:{}", e.address, e.port),
                Endpoint {
                    priority: p.priority,
                    who: if e.cluster.is_empty() {
                        p.locality.clone()
                    } else {
                        e.cluster.clone()
                    },
                    remote: !e.cluster.is_empty(),
                    locality: p.locality.clone(),
                    out: e.clone(),
                },
            );
        }
    }
    let phases: Vec<Value> = checks
        .iter()
        .map(|check| {
            let down: Vec<&String> = endpoints
                .iter()
                .filter(|(_, e)| {
                    check
                        .fail
                        .iter()
                        .any(|f| traffic::fails(f, config, &e.locality, &e.out))
                })
                .map(|(a, _)| a)
                .collect();
            json!({"name": check.name, "down": down, "requests": check.requests})
        })
        .collect();
    let case = json!({
        "name": label,
        "objects": objects,
        "mesh": mesh,
        "meshConfig": istio::mesh_config(config),
        "dataplane": {"client": client, "host": host, "port": port, "phases": phases},
    });
    Some((
        case,
        Run {
            label,
            cluster_name,
            objects,
            config: config.clone(),
            request,
            endpoints,
            checks,
        },
    ))
}

/// Holds the client's answers to the run's expectations and to `simulate --fail`.
fn check(run: &Run, result: &Value, failures: &mut Vec<String>) {
    let label = &run.label;
    if !result["error"].is_null() || !result["panic"].is_null() {
        failures.push(format!(
            "{label}: harness error {} {}",
            result["error"], result["panic"]
        ));
        return;
    }
    let dataplane = &result["dataplane"];
    // Pilot gave the client the endpoints simulate lists (the backends stand for them).
    let pilot: BTreeSet<&str> = dataplane["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let modelled: BTreeSet<&str> = run.endpoints.keys().map(String::as_str).collect();
    if pilot != modelled {
        failures.push(format!(
            "{label}: pilot's endpoints {pilot:?}, simulate's {modelled:?}"
        ));
        return;
    }
    for (phase, seen) in run
        .checks
        .iter()
        .zip(dataplane["phases"].as_array().into_iter().flatten())
    {
        let answered: BTreeMap<&str, u64> = seen["answered"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(a, n)| (a.as_str(), n.as_u64().unwrap_or(0)))
            .collect();
        let by: Vec<&Endpoint> = answered
            .keys()
            .filter_map(|a| run.endpoints.get(*a))
            .collect();
        let who: BTreeSet<&str> = by.iter().map(|e| e.who.as_str()).collect();
        let failed = seen["failed"].as_u64().unwrap_or(u64::MAX);
        let settle_failed = seen["settleFailed"].as_u64().unwrap_or(u64::MAX);
        eprintln!(
            "traffic {label} / {}: {answered:?}, {failed} failed ({settle_failed} while settling, {} ms)",
            phase.name, seen["settleMillis"]
        );
        let (local, remote) = (by.iter().any(|e| !e.remote), by.iter().any(|e| e.remote));
        let as_expected = match &phase.expect {
            Expect::Exactly(want) => who == want.iter().map(String::as_str).collect(),
            Expect::OnlyLocal => local && !remote,
            Expect::OnlyRemote => remote && !local,
            Expect::LocalAndRemote => local && remote,
            Expect::Outage => answered.is_empty(),
        };
        if !as_expected {
            failures.push(format!(
                "{label} / {}: answered by {who:?}, expected {:?} ({answered:?}, {failed} failed)",
                phase.name, phase.expect
            ));
        }
        if !matches!(phase.expect, Expect::Outage) && (failed > 0 || settle_failed > 0) {
            failures.push(format!(
                "{label} / {}: {failed} requests failed, {settle_failed} while the client settled",
                phase.name
            ));
        }
        // simulate --fail names the priority whose backends answered (none in an outage).
        let sim = simulate::run(
            &run.objects,
            &run.config,
            &Request {
                fail: phase.fail.clone(),
                ..run.request.clone()
            },
        );
        let carried_by = sim
            .clusters
            .iter()
            .find(|c| c.cluster.name == run.cluster_name)
            .and_then(|c| match &c.failure {
                Some(f) => f.carried_by,
                // Nothing failed: the first priority with an endpoint carries it.
                None => c
                    .cluster
                    .priorities
                    .iter()
                    .filter(|p| !p.endpoints.is_empty())
                    .map(|p| p.priority)
                    .min(),
            });
        let priorities: BTreeSet<u32> = by.iter().map(|e| e.priority).collect();
        if carried_by.map(|p| BTreeSet::from([p])).unwrap_or_default() != priorities {
            failures.push(format!(
                "{label} / {}: simulate --fail says p{carried_by:?} carries the traffic, the client was answered from {priorities:?}",
                phase.name
            ));
        }
    }
}

fn run_all(harness: &std::path::Path, prepared: Vec<(Value, Run)>) {
    let (cases, runs): (Vec<Value>, Vec<Run>) = prepared.into_iter().unzip();
    let results = istio::run(&harness.to_path_buf(), &cases);
    let mut failures = Vec::new();
    for (run, result) in runs.iter().zip(&results) {
        check(run, result, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn dirs(rel: &str) -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(repo_path(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// tests/traffic: failover setups, each phase's answers written down.
#[test]
fn a_real_xds_client_follows_pilots_priorities() {
    let Some(harness) = istio::harness() else {
        return;
    };
    let mut prepared = Vec::new();
    for dir in dirs("tests/traffic") {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{name}/{f}: {e}"))
        };
        let scenario: TrafficScenario = serde_yaml_ng::from_str(&read("traffic.yaml"))
            .unwrap_or_else(|e| panic!("{name}/traffic.yaml: {e}"));
        assert!(
            !scenario.about.trim().is_empty(),
            "{name}: say what it shows"
        );
        let config = Config::from_yaml(&read("config.yaml"), "config.yaml").expect("config");
        let text = read("objects.yaml");
        for (stage, phases) in scenario.stages {
            let objects = match stage.as_str() {
                "written" => objects_of(&text, "objects.yaml"),
                "mutated" => mutated(&text, &config),
                other => panic!("{name}: unknown stage {other} (written, mutated)"),
            };
            let checks = phases
                .into_iter()
                .map(|p| Check {
                    name: p.name,
                    fail: p.fail,
                    requests: p.requests,
                    expect: Expect::Exactly(p.answered.into_iter().collect()),
                })
                .collect();
            prepared.push(
                prepare(
                    format!("{name} {stage}"),
                    objects,
                    &config,
                    istio::mesh(&config),
                    &scenario.client,
                    &scenario.host,
                    scenario.port,
                    checks,
                )
                .unwrap_or_else(|| panic!("{name}: simulate builds no cluster for the client")),
            );
        }
    }
    assert!(!prepared.is_empty(), "no traffic scenarios");
    run_all(harness, prepared);
}

/// What tests/scenarios says of pilot's tables, held to a real client: for every scenario in
/// which failover-guard's fix changes a service's verdict, the client before and after the fix,
/// with everything up and with this cluster down. `failover`: this cluster answers while it is
/// up, the remotes when it is down; `inert`/`spread`: both answer while everything is up;
/// `remote-first`: the remotes answer while everything is up; `no-remote`: nothing answers
/// once this cluster is down.
#[test]
fn scenario_verdicts_hold_for_a_real_client() {
    let Some(harness) = istio::harness() else {
        return;
    };
    /// The part of a scenario.yaml this test reads.
    #[derive(serde::Deserialize)]
    struct Verdicts {
        #[serde(default)]
        clients: Vec<Client>,
        before: BTreeMap<String, String>,
        after: BTreeMap<String, String>,
        #[serde(default)]
        discovered: Vec<DiscoveredRemote>,
    }
    let mut prepared = Vec::new();
    for (name, dir) in istio::scenario_dirs() {
        let verdicts: Verdicts = serde_yaml_ng::from_str(
            &std::fs::read_to_string(dir.join("scenario.yaml")).expect("scenario.yaml"),
        )
        .unwrap_or_else(|e| panic!("{name}/scenario.yaml: {e}"));
        let (config, remote_files) = istio::scenario_config(&dir, &verdicts.discovered);
        let text = std::fs::read_to_string(dir.join("objects.yaml")).expect("objects.yaml");
        for (key, after) in &verdicts.after {
            let before = verdicts.before.get(key);
            // A whole service (no subset, every client) whose verdict the fix changes.
            let Some(rest) = key.strip_prefix("outbound|") else {
                continue;
            };
            let parts: Vec<&str> = rest.split('|').collect();
            let [port, "", host] = parts.as_slice() else {
                continue;
            };
            if before == Some(after) || host.contains('@') {
                continue;
            }
            let Ok(port) = port.parse::<u32>() else {
                continue;
            };
            let namespace = host.split('.').nth(1).unwrap_or("default").to_owned();
            let client = verdicts.clients.first().cloned().unwrap_or(Client {
                locality: config.cluster.localities[0].clone(),
                namespace,
            });
            for (stage, verdict) in [("written", before), ("mutated", Some(after))] {
                let Some(verdict) = verdict else { continue };
                let (up, down) = match verdict.as_str() {
                    "failover" => (Expect::OnlyLocal, Some(Expect::OnlyRemote)),
                    "inert" | "spread" => (Expect::LocalAndRemote, None),
                    "remote-first" => (Expect::OnlyRemote, None),
                    "no-remote" => (Expect::OnlyLocal, Some(Expect::Outage)),
                    // capped, plaintext, pilot-panic...: Envoy's, or no table at all.
                    _ => continue,
                };
                let mut checks = vec![Check {
                    name: format!("all up ({verdict})"),
                    fail: Vec::new(),
                    requests: 60,
                    expect: up,
                }];
                if let Some(down) = down {
                    checks.push(Check {
                        name: format!("{} down ({verdict})", config.cluster.name),
                        fail: vec![config.cluster.name.clone()],
                        requests: 60,
                        expect: down,
                    });
                }
                let objects = if stage == "written" {
                    objects_of(&text, "objects.yaml")
                } else {
                    mutated(&text, &config)
                };
                if let Some(p) = prepare(
                    format!("{name} {stage} {key}"),
                    objects,
                    &config,
                    istio::scenario_mesh(&config, &remote_files),
                    &client,
                    host,
                    port,
                    checks,
                ) {
                    prepared.push(p);
                }
            }
        }
    }
    assert!(
        prepared.len() >= 10,
        "only {} scenario services to send traffic to",
        prepared.len()
    );
    run_all(harness, prepared);
}
