//! Invariants of the engine over generated Istio objects: a mutation applies as a JSONPatch,
//! a second mutation is a no-op, validation never changes the object, a mutated object has no
//! fixable finding left, and every mutated object still validates against Istio's CRD schema.
//! Plus: arbitrary JSON never panics the engine or the admission adapter.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::strategies::{authorization_policy, destination_rule, service_entry};

use std::sync::OnceLock;

use failover_guard::{
    admission::{self, Webhook},
    config::Config,
    engine::{Action, Pass, evaluate},
    world::ManifestWorld,
};
use proptest::{collection::vec, prelude::*, sample::select};
use serde_json::{Value, json};

fn schemas() -> &'static common::CrdSchemas {
    static SCHEMAS: OnceLock<common::CrdSchemas> = OnceLock::new();
    SCHEMAS.get_or_init(common::CrdSchemas::load)
}

/// The invariants, for one object.
fn check_invariants(original: &Value) -> Result<(), TestCaseError> {
    let config = Config::example();
    let world = ManifestWorld::new(
        [
            &json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                 "metadata": {"name": "reviews", "namespace": "bookinfo"},
                 "spec": {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}}),
            // Its port name differs from the generated entries' "http": FG206 renames them.
            &json!({"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "reviews", "namespace": "bookinfo"},
                 "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http-web", "port": 9080}]}}),
        ],
        "default",
        "svc.cluster.local",
    );
    let mut mutated = original.clone();
    let evaluation = evaluate(&mut mutated, &config, Some(&world), "default", Pass::Mutate);

    // The patch the webhook sends, built from where the fixes wrote, applies to the object as
    // admitted and gives the mutated object.
    let patch = failover_guard::engine::patch(&mutated, &evaluation.changes);
    let mut patched = original.clone();
    json_patch::patch(&mut patched, &patch).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&patched, &mutated);

    // GitOps: applying the original manifest again converges. kubectl's client-side apply of
    // a custom resource sends a JSON merge patch of everything the manifest says (objects
    // merged, lists replaced); server-side apply also merges list-maps by key (a
    // ServiceEntry's ports by name). Mutated again, either gives the stored object back.
    for (mode, reapplied) in [
        ("client-side", reapply(&mutated, original, false)),
        ("server-side", reapply(&mutated, original, true)),
    ] {
        let mut again = reapplied;
        evaluate(&mut again, &config, Some(&world), "default", Pass::Mutate);
        prop_assert_eq!(&again, &mutated, "{} re-apply did not converge", mode);
    }

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
            !rule.can_mutate || !finding.message().contains("has no ") || finding.rule == "FG201",
            "fixable finding left after mutation: {}",
            finding.message()
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

/// The stored object after the manifest is applied again: the manifest's fields over the
/// stored ones, objects merged recursively, lists replaced, except (server-side) the list-maps
/// of Istio's CRDs, merged by key (`spec.ports` of a ServiceEntry, by name).
fn reapply(stored: &Value, manifest: &Value, server_side: bool) -> Value {
    fn merge(stored: &Value, manifest: &Value, path: &str, server_side: bool) -> Value {
        match (stored, manifest) {
            (Value::Object(s), Value::Object(m)) => {
                let mut out = s.clone();
                for (k, v) in m {
                    let merged = match s.get(k) {
                        Some(old) => merge(old, v, &format!("{path}/{k}"), server_side),
                        None => v.clone(),
                    };
                    out.insert(k.clone(), merged);
                }
                Value::Object(out)
            }
            (Value::Array(s), Value::Array(m)) if server_side && path == "/spec/ports" => {
                let name = |v: &Value| v.get("name").cloned();
                let mut out = s.clone();
                for item in m {
                    match out
                        .iter_mut()
                        .find(|o| name(o).is_some() && name(o) == name(item))
                    {
                        Some(existing) => *existing = merge(existing, item, path, server_side),
                        None => out.push(item.clone()),
                    }
                }
                Value::Array(out)
            }
            _ => manifest.clone(),
        }
    }
    let server_side = server_side && stored["kind"] == "ServiceEntry";
    merge(stored, manifest, "", server_side)
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
        let evaluation = evaluate(&mut mutated, &config, Some(&world), "default", Pass::Mutate);
        // The webhook's patch, built from where the fixes wrote, always applies to the object
        // as sent and gives the mutated one; nothing fixed, nothing written.
        prop_assert_eq!(evaluation.applied.is_empty(), evaluation.changes.is_empty());
        let mut patched = object.clone();
        json_patch::patch(&mut patched, &failover_guard::engine::patch(&mutated, &evaluation.changes))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&patched, &mutated);

        // simulate takes it too, beside a Service of the host its arbitrary fields may name.
        let service = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "reviews", "namespace": "bookinfo"},
            "spec": {"ports": [{"name": "http", "port": 9080}]}});
        let clients = [failover_guard::istio::traffic::Client {
            locality: "europe-west1/europe-west1-b".into(),
            namespace: "bookinfo".into(),
        }];
        failover_guard::istio::traffic::simulate(&[service, object.clone()], &config, &clients, &[]);

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
