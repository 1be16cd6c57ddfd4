//! The engine and the admission adapter alone (no network): JSON decode, rules, patch and
//! encode, for mutate and validate. Each case also runs with every rule off, as the baseline
//! of the same run: compare the two, not the absolute figures (the machine is shared).
//!
//!   cargo bench --bench engine

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use failover_guard::{
    admission::{self, Webhook},
    config::{Config, Mode},
    engine::{Pass, evaluate},
    rules::RULES,
    world::{ManifestWorld, World},
};
use serde_json::{Value, json};

/// The allocator the binary ships with (src/main.rs): measured with glibc's malloc, a fix's
/// many small maps cost about a fifth more than they do in the webhook.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn review(object: Value) -> Vec<u8> {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1").to_owned();
    let (group, version) = api_version.split_once('/').unwrap_or(("", "v1"));
    let kind = object["kind"].as_str().unwrap_or("").to_owned();
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "3a1e9b4c-0d7f-4e2a-9c61-5b8f2d7e1a40",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": "destinationrules"},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "name": object["metadata"]["name"],
            "namespace": "bookinfo",
            "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": "kubectl-client-side-apply"}
        }
    }))
    .unwrap_or_default()
}

fn typical_destination_rule() -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "reviews", "namespace": "bookinfo", "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"DestinationRule\"}"}},
        "spec": {
            "host": "reviews.bookinfo.svc.cluster.local",
            "trafficPolicy": {
                "connectionPool": {"http": {"http1MaxPendingRequests": 100}},
                "loadBalancer": {"simple": "LEAST_REQUEST", "localityLbSetting": {"enabled": true,
                    "failover": [{"from": "europe-west1", "to": "europe-west4"}]}}
            },
            "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v2", "labels": {"version": "v2"}},
                {"name": "v3", "labels": {"version": "v3"}}
            ]
        }
    })
}

/// The object as the mutating webhook stores it.
fn as_mutated(mut object: Value) -> Value {
    evaluate(
        &mut object,
        &Config::example(),
        None,
        "bookinfo",
        Pass::Mutate,
    );
    object
}

fn failover_entry() -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": "reviews-failover", "namespace": "bookinfo",
            "annotations": {"failover-guard.io/subset-labels": "version=v1;version=v2;version=v3"}},
        "spec": {
            "hosts": ["reviews.bookinfo.svc.cluster.local"],
            "resolution": "STATIC",
            "ports": [{"number": 9080, "name": "http", "protocol": "HTTP"}]
        }
    })
}

fn hundred_subsets() -> Value {
    let subsets: Vec<Value> = (0..100)
        .map(|i| {
            json!({
                "name": format!("v{i}"), "labels": {"version": format!("v{i}")},
                "trafficPolicy": {"portLevelSettings": [
                    {"port": {"number": 9080}, "connectionPool": {"tcp": {"maxConnections": 100}}},
                    {"port": {"number": 9443}, "loadBalancer": {"simple": "ROUND_ROBIN"}}
                ]}
            })
        })
        .collect();
    let mut dr = typical_destination_rule();
    dr["spec"]["subsets"] = Value::Array(subsets);
    dr["spec"]["trafficPolicy"]["portLevelSettings"] =
        json!([{"port": {"number": 9080}}, {"port": {"number": 9443}}]);
    dr
}

fn one_mebibyte() -> Value {
    let mut dr = typical_destination_rule();
    dr["metadata"]["annotations"]["example.com/blob"] = json!("x".repeat(1 << 20));
    dr
}

fn rules_off() -> Config {
    let mut config = Config::example();
    for rule in RULES {
        config.rules.insert(rule.id.to_owned(), Mode::Off);
    }
    config
}

/// A request recorded from a real kube-apiserver (the load benchmark sends the same ones).
fn recorded(fixture: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/apiserver")
        .join(fixture);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn admission_benches(c: &mut Criterion) {
    let configs = [("rules", Config::example()), ("rules-off", rules_off())];
    // (case, webhook, body): the recorded cases first, then synthetic extremes.
    let cases = [
        ("dr-gets-fix", Webhook::Mutate, recorded("0000-mutate.json")),
        (
            "dr-correct",
            Webhook::Mutate,
            recorded("0001-validate.json"),
        ),
        (
            "dr-correct",
            Webhook::Validate,
            recorded("0001-validate.json"),
        ),
        (
            "se-gets-endpoints",
            Webhook::Mutate,
            recorded("0010-mutate.json"),
        ),
        (
            "se-as-mutated",
            Webhook::Validate,
            recorded("0011-validate.json"),
        ),
        (
            "typical-destination-rule",
            Webhook::Mutate,
            review(typical_destination_rule()),
        ),
        // Denied: it lacks outlier detection, so this builds and encodes a denial (what the
        // validating webhook sees only when the mutating one is off).
        (
            "typical-destination-rule",
            Webhook::Validate,
            review(typical_destination_rule()),
        ),
        // What the validating webhook sees in a deployment: the API server calls the mutating
        // webhooks first, so the rule arrives with the outlier detection they injected.
        (
            "typical-destination-rule-as-mutated",
            Webhook::Validate,
            review(as_mutated(typical_destination_rule())),
        ),
        (
            "100-subsets-port-levels",
            Webhook::Mutate,
            review(hundred_subsets()),
        ),
        (
            "100-subsets-port-levels",
            Webhook::Validate,
            review(hundred_subsets()),
        ),
        ("1MiB-object", Webhook::Mutate, review(one_mebibyte())),
        ("1MiB-object", Webhook::Validate, review(one_mebibyte())),
    ];
    for (case, webhook, body) in cases {
        let mut group = c.benchmark_group(format!("admission/{case}/{}", webhook.as_str()));
        group.throughput(Throughput::Bytes(body.len() as u64));
        if body.len() > 100_000 {
            group.sample_size(20);
        }
        for (label, config) in &configs {
            group.bench_with_input(BenchmarkId::from_parameter(label), &body, |b, body| {
                b.iter(|| {
                    let reviewed = admission::review(black_box(body), webhook, config, None).ok();
                    reviewed.map(|r| admission::encode(&r.response).map(|v| v.len()))
                })
            });
        }
        group.finish();
    }
}

fn engine_benches(c: &mut Criterion) {
    let config = Config::example();
    let mut group = c.benchmark_group("engine");
    for (case, object) in [
        ("typical-destination-rule", typical_destination_rule()),
        ("failover-service-entry", failover_entry()),
        ("100-subsets-port-levels", hundred_subsets()),
    ] {
        group.bench_function(BenchmarkId::new("mutate", case), |b| {
            b.iter(|| {
                let mut object = object.clone();
                evaluate(&mut object, &config, None, "bookinfo", Pass::Mutate)
                    .findings
                    .len()
            })
        });
        group.bench_function(BenchmarkId::new("clone-only", case), |b| {
            b.iter(|| black_box(object.clone()))
        });
        let mut mutated = object.clone();
        evaluate(&mut mutated, &config, None, "bookinfo", Pass::Mutate);
        group.bench_function(BenchmarkId::new("diff-only", case), |b| {
            b.iter(|| {
                json_patch::diff(black_box(&object), black_box(&mutated))
                    .0
                    .len()
            })
        });
    }
    group.finish();
}

/// 10,000 objects (Services, DestinationRules, ServiceEntries, AuthorizationPolicies over 250
/// namespaces), as a large cluster's watch cache holds them.
fn large_world() -> ManifestWorld {
    let mut objects = Vec::with_capacity(10_000);
    for i in 0..2_500 {
        let ns = format!("team-{}", i % 250);
        let name = format!("svc-{i}");
        objects.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 8080}]}}));
        objects.push(json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": name, "namespace": ns},
            "spec": {"host": name, "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": 5}},
                     "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}}));
        objects.push(json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": {"name": format!("{name}-failover"), "namespace": ns},
            "spec": {"hosts": [format!("{name}.{ns}.svc.cluster.local")], "resolution": "STATIC", "location": "MESH_INTERNAL",
                     "ports": [{"number": 8080, "name": "http", "protocol": "HTTP"}]}}));
        objects.push(json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "metadata": {"name": name, "namespace": ns},
            "spec": {"rules": [{"from": [{"source": {"principals": [format!("cluster.local/ns/{ns}/sa/{name}")]}}]}]}}));
    }
    ManifestWorld::new(&objects, "default", "svc.cluster.local")
}

/// Admission latency with a large world against an empty one (target: within 10 %).
fn world_benches(c: &mut Criterion) {
    let config = Config::example();
    let empty = ManifestWorld::new(&[], "default", "svc.cluster.local");
    let large = large_world();
    let mut dr = typical_destination_rule();
    dr["metadata"]["namespace"] = json!("team-7");
    dr["metadata"]["name"] = json!("svc-7-shadow");
    dr["spec"]["host"] = json!("svc-7");
    let mut se = failover_entry();
    se["metadata"]["namespace"] = json!("team-7");
    se["spec"]["hosts"] = json!(["svc-7.team-7.svc.cluster.local"]);
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc-7", "namespace": "team-7"},
        "spec": {"selector": {"app": "svc-7"}, "ports": [{"name": "http", "port": 8080}]}});
    let mut group = c.benchmark_group("world");
    for (case, object) in [
        ("destination-rule", dr),
        ("service-entry", se),
        ("service", service),
    ] {
        let body = review(object);
        // FG601 simulates the host on every admission: its cost is the "fg601-off" difference.
        let mut without_fg601 = config.clone();
        without_fg601
            .rules
            .insert("FG601".into(), failover_guard::config::Mode::Off);
        for (label, world, config) in [
            ("empty", &empty, &config),
            ("10k-objects", &large, &config),
            ("10k-objects-fg601-off", &large, &without_fg601),
        ] {
            group.bench_with_input(BenchmarkId::new(case, label), &body, |b, body| {
                b.iter(|| {
                    let world: &dyn World = world;
                    admission::review(black_box(body), Webhook::Validate, config, Some(world))
                        .map(|r| r.findings.len())
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, engine_benches, admission_benches, world_benches);
criterion_main!(benches);
