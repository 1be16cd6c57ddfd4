//! Invariants of the engine over generated Istio objects: a mutation applies as a JSONPatch,
//! a second mutation is a no-op, validation never changes the object, a mutated object has no
//! fixable finding left, and every mutated object still validates against Istio's CRD schema.
//! Plus: arbitrary JSON never panics the engine or the admission adapter.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::sync::OnceLock;

use failover_guard::{
    admission::{self, Webhook},
    config::Config,
    engine::{Action, Pass, evaluate},
    world::ManifestWorld,
};
use proptest::{collection::vec, option, prelude::*, sample::select};
use serde_json::{Map, Value, json};

fn schemas() -> &'static common::CrdSchemas {
    static SCHEMAS: OnceLock<common::CrdSchemas> = OnceLock::new();
    SCHEMAS.get_or_init(common::CrdSchemas::load)
}

fn object(pairs: Vec<(&str, Option<Value>)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?)))
            .collect::<Map<String, Value>>(),
    )
}

fn outlier_detection() -> impl Strategy<Value = Value> {
    (
        option::of(0u32..6),
        option::of(0u32..6),
        option::of(0u32..6),
        option::of(0u32..=100),
        option::of(any::<bool>()),
        option::of(0u32..4),
        option::of(0u32..=100),
        option::of(select(vec!["1s", "10s", "30s"])),
    )
        .prop_map(|(c5, cg, ce, mep, split, local, minh, interval)| {
            object(vec![
                ("consecutive5xxErrors", c5.map(|v| json!(v))),
                ("consecutiveGatewayErrors", cg.map(|v| json!(v))),
                ("consecutiveErrors", ce.map(|v| json!(v))),
                ("maxEjectionPercent", mep.map(|v| json!(v))),
                ("splitExternalLocalOriginErrors", split.map(|v| json!(v))),
                ("consecutiveLocalOriginFailures", local.map(|v| json!(v))),
                ("minHealthPercent", minh.map(|v| json!(v))),
                ("interval", interval.map(|v| json!(v))),
            ])
        })
}

fn region() -> impl Strategy<Value = &'static str> {
    select(vec![
        "europe-west1",
        "europe-west4",
        "us-east1",
        "Europe-West4",
        "europe-west4-a",
    ])
}

fn locality_setting() -> impl Strategy<Value = Value> {
    (
        option::of(any::<bool>()),
        option::of(vec((region(), region()), 0..3)),
        option::of(vec(
            select(vec![
                "topology.istio.io/network",
                "topology.kubernetes.io/zone",
            ]),
            0..2,
        )),
    )
        .prop_map(|(enabled, failover, priority)| {
            object(vec![
                ("enabled", enabled.map(|v| json!(v))),
                (
                    "failover",
                    failover.map(|f| {
                        json!(
                            f.into_iter()
                                .map(|(a, b)| json!({"from": a, "to": b}))
                                .collect::<Vec<_>>()
                        )
                    }),
                ),
                ("failoverPriority", priority.map(|p| json!(p))),
            ])
        })
}

fn load_balancer() -> impl Strategy<Value = Value> {
    (
        option::of(select(vec!["ROUND_ROBIN", "LEAST_REQUEST"])),
        option::of(locality_setting()),
    )
        .prop_map(|(simple, locality)| {
            object(vec![
                ("simple", simple.map(|s| json!(s))),
                ("localityLbSetting", locality),
            ])
        })
}

fn policy_fields() -> impl Strategy<Value = Vec<(&'static str, Option<Value>)>> {
    (
        option::of(outlier_detection()),
        option::of(load_balancer()),
        option::of(select(vec!["ISTIO_MUTUAL", "DISABLE", "SIMPLE"])),
    )
        .prop_map(|(od, lb, tls)| {
            vec![
                ("outlierDetection", od),
                ("loadBalancer", lb),
                ("tls", tls.map(|m| json!({"mode": m}))),
            ]
        })
}

fn traffic_policy() -> impl Strategy<Value = Value> {
    (policy_fields(), vec((1u32..3, policy_fields()), 0..3)).prop_map(|(mut fields, ports)| {
        if !ports.is_empty() {
            let ports: Vec<Value> = ports
                .into_iter()
                .map(|(n, mut f)| {
                    f.push(("port", Some(json!({"number": 8000 + n}))));
                    object(f)
                })
                .collect();
            fields.push(("portLevelSettings", Some(Value::Array(ports))));
        }
        object(fields)
    })
}

fn destination_rule() -> impl Strategy<Value = Value> {
    (
        select(vec![
            "reviews",
            "reviews.bookinfo.svc.cluster.local",
            "api.example.com",
        ]),
        select(vec!["bookinfo", "kube-system"]),
        option::of(traffic_policy()),
        vec(option::of(traffic_policy()), 0..3),
        select(vec!["v1", "v1beta1", "v1alpha3"]),
    )
        .prop_map(|(host, namespace, policy, subsets, version)| {
            let subsets: Vec<Value> = subsets
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    object(vec![
                        ("name", Some(json!(format!("v{i}")))),
                        ("labels", Some(json!({"version": format!("v{i}")}))),
                        ("trafficPolicy", p),
                    ])
                })
                .collect();
            json!({
                "apiVersion": format!("networking.istio.io/{version}"),
                "kind": "DestinationRule",
                "metadata": {"name": "r", "namespace": namespace},
                "spec": object(vec![
                    ("host", Some(json!(host))),
                    ("trafficPolicy", policy),
                    ("subsets", (!subsets.is_empty()).then(|| Value::Array(subsets))),
                ]),
            })
        })
}

fn service_entry() -> impl Strategy<Value = Value> {
    let endpoint = (
        select(vec!["203.0.113.10", "198.51.100.7", "gw.example.com", "${GW}"]),
        option::of(select(vec![15443u32, 9080])),
        option::of(select(vec!["europe-west4/europe-west4-a", "europe-west4.a", "us-east1"])),
        option::of(any::<bool>()),
    )
        .prop_map(|(address, port, locality, tls_label)| {
            object(vec![
                ("address", Some(json!(address))),
                ("ports", port.map(|p| json!({"http": p}))),
                ("locality", locality.map(|l| json!(l))),
                ("labels", tls_label.map(|t| json!({"security.istio.io/tlsMode": if t { "istio" } else { "disabled" }}))),
            ])
        });
    (
        select(vec!["reviews.bookinfo.svc.cluster.local", "reviews.other.svc.cluster.local", "db.example.com"]),
        option::of(select(vec!["STATIC", "DNS", "NONE"])),
        option::of(select(vec!["MESH_INTERNAL", "MESH_EXTERNAL"])),
        vec(endpoint, 0..3),
        option::of(select(vec!["true", "false"])),
        option::of(select(vec!["version=v1;version=v2", "version"])),
    )
        .prop_map(|(host, resolution, location, endpoints, failover, subsets)| {
            let annotations = object(vec![
                ("failover-guard.io/failover", failover.map(|v| json!(v))),
                ("failover-guard.io/subset-labels", subsets.map(|v| json!(v))),
            ]);
            json!({
                "apiVersion": "networking.istio.io/v1",
                "kind": "ServiceEntry",
                "metadata": {"name": "se", "namespace": "bookinfo", "annotations": annotations},
                "spec": object(vec![
                    ("hosts", Some(json!([host]))),
                    ("ports", Some(json!([{"number": 9080, "name": "http", "protocol": "HTTP"}]))),
                    ("resolution", resolution.map(|r| json!(r))),
                    ("location", location.map(|l| json!(l))),
                    ("endpoints", (!endpoints.is_empty()).then(|| Value::Array(endpoints))),
                ]),
            })
        })
}

fn authorization_policy() -> impl Strategy<Value = Value> {
    let rule = (
        option::of(vec(
            select(vec![
                "cluster.local/ns/a/sa/b",
                "other.example/ns/a/sa/b",
                "*",
            ]),
            1..3,
        )),
        option::of(select(vec!["GET", "POST"])),
    )
        .prop_map(|(principals, method)| {
            object(vec![
                (
                    "from",
                    principals.map(|p| json!([{"source": {"principals": p}}])),
                ),
                (
                    "to",
                    method.map(|m| json!([{"operation": {"methods": [m]}}])),
                ),
            ])
        });
    (option::of(select(vec!["ALLOW", "DENY", "AUDIT"])), option::of(vec(rule, 0..3))).prop_map(|(action, rules)| {
        json!({
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": "ap", "namespace": "bookinfo"},
            "spec": object(vec![("action", action.map(|a| json!(a))), ("rules", rules.map(Value::Array))]),
        })
    })
}

/// The invariants, for one object.
fn check_invariants(original: &Value) -> Result<(), TestCaseError> {
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
    let mut mutated = original.clone();
    evaluate(&mut mutated, &config, Some(&world), "default", Pass::Mutate);

    // The patch the webhook would send applies and gives the mutated object.
    let patch = json_patch::diff(original, &mutated);
    let mut patched = original.clone();
    json_patch::patch(&mut patched, &patch).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&patched, &mutated);

    // A second mutation is a no-op.
    let mut twice = mutated.clone();
    let second = evaluate(&mut twice, &config, Some(&world), "default", Pass::Mutate);
    prop_assert!(
        second.applied.is_empty(),
        "second pass applied {:?}",
        second.applied
    );
    prop_assert_eq!(&twice, &mutated);

    // Validation never changes the object, and finds nothing a fix should have removed.
    let mut validated = mutated.clone();
    let validation = evaluate(
        &mut validated,
        &config,
        Some(&world),
        "default",
        Pass::Validate,
    );
    prop_assert_eq!(&validated, &mutated);
    for finding in validation
        .findings
        .iter()
        .filter(|f| f.action == Action::Deny)
    {
        let rule = failover_guard::rules::by_id(finding.rule).expect("rule");
        prop_assert!(
            !rule.can_mutate || !finding.message.contains("has no ") || finding.rule == "FG201",
            "fixable finding left after mutation: {}",
            finding.message
        );
    }

    // The mutated object is still valid Istio (when the input was).
    if let Some(before) = schemas().errors(original)
        && before.is_empty()
    {
        let after = schemas().errors(&mutated).unwrap_or_default();
        prop_assert!(
            after.is_empty(),
            "mutated object violates the CRD schema: {after:?}\n{mutated:#}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn destination_rules(dr in destination_rule()) {
        check_invariants(&dr)?;
    }

    #[test]
    fn service_entries(se in service_entry()) {
        check_invariants(&se)?;
    }

    #[test]
    fn authorization_policies(ap in authorization_policy()) {
        check_invariants(&ap)?;
    }
}

/// Arbitrary JSON under every handled kind: no panic, and validation leaves it unchanged.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z$/.* ]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                select(vec![
                    "spec",
                    "trafficPolicy",
                    "outlierDetection",
                    "portLevelSettings",
                    "subsets",
                    "loadBalancer",
                    "localityLbSetting",
                    "failover",
                    "distribute",
                    "to",
                    "from",
                    "endpoints",
                    "address",
                    "ports",
                    "labels",
                    "hosts",
                    "rules",
                    "selector",
                    "metadata",
                    "annotations",
                    "locality",
                    "servers",
                    "tls",
                    "mode",
                    "x",
                ])
                .prop_map(str::to_owned),
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics(
        body in arbitrary_json(),
        kind in select(vec![
            ("networking.istio.io/v1", "DestinationRule"),
            ("networking.istio.io/v1", "ServiceEntry"),
            ("networking.istio.io/v1", "Gateway"),
            ("security.istio.io/v1", "AuthorizationPolicy"),
            ("v1", "Service"),
        ]),
    ) {
        let config = Config::example();
        let mut object = body.clone();
        if let Some(map) = object.as_object_mut() {
            map.insert("apiVersion".into(), json!(kind.0));
            map.insert("kind".into(), json!(kind.1));
        }
        let world = ManifestWorld::new([&object], "default", "svc.cluster.local");
        let mut validated = object.clone();
        evaluate(&mut validated, &config, Some(&world), "default", Pass::Validate);
        prop_assert_eq!(&validated, &object);
        let mut mutated = object.clone();
        evaluate(&mut mutated, &config, Some(&world), "default", Pass::Mutate);

        // The same object inside an AdmissionReview, through the admission adapter.
        let review = common::review_for("prop", "CREATE", &object);
        let body = serde_json::to_vec(&review).expect("encode");
        for webhook in [Webhook::Mutate, Webhook::Validate] {
            if let Ok(reviewed) = admission::review(&body, webhook, &config, None) {
                let answer = reviewed.response.response.expect("a response");
                prop_assert_eq!(answer.uid, "prop");
            }
        }
    }
}

#[test]
fn crd_schema_is_really_checked() {
    let valid = json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "r"}, "spec": {"host": "r", "trafficPolicy": {"outlierDetection": {"maxEjectionPercent": 100}}}});
    assert_eq!(schemas().errors(&valid), Some(vec![]));
    let invalid = json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "r"}, "spec": {"host": "r", "trafficPolicy": {"outlierDetection": {"maxEjectionPercent": "all"}}}});
    assert!(!schemas().errors(&invalid).unwrap_or_default().is_empty());
    let unknown_field = json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": "r"}, "spec": {"hosts": ["a"], "endpoints": [{"address": "1.2.3.4", "bogus": 1}]}});
    // The API server would prune `bogus` silently; the test schemas reject it.
    assert!(
        !schemas()
            .errors(&unknown_field)
            .unwrap_or_default()
            .is_empty()
    );
}
