//! Generators of Istio objects for property tests: DestinationRules with random policy levels,
//! locality settings and subsets, ServiceEntries with random endpoints, AuthorizationPolicies.
//! Shared by the invariant tests (tests/properties.rs) and Istio's validation of their
//! mutations (tests/istio.rs).

use proptest::{collection::vec, option, prelude::*, sample::select};
use serde_json::{Map, Value, json};

pub fn object(pairs: Vec<(&str, Option<Value>)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?)))
            .collect::<Map<String, Value>>(),
    )
}

pub fn outlier_detection() -> impl Strategy<Value = Value> {
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

pub fn region() -> impl Strategy<Value = &'static str> {
    select(vec![
        "europe-west1",
        "europe-west4",
        "us-east1",
        "Europe-West4",
        "europe-west4-a",
    ])
}

pub fn locality_setting() -> impl Strategy<Value = Value> {
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

pub fn load_balancer() -> impl Strategy<Value = Value> {
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

pub fn policy_fields() -> impl Strategy<Value = Vec<(&'static str, Option<Value>)>> {
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

pub fn traffic_policy() -> impl Strategy<Value = Value> {
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

pub fn destination_rule() -> impl Strategy<Value = Value> {
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

pub fn service_entry() -> impl Strategy<Value = Value> {
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

pub fn authorization_policy() -> impl Strategy<Value = Value> {
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

/// An entry endpoint's labels: a version, and the mTLS label when `tls`.
fn endpoint_labels(version: Option<&str>, tls: bool) -> Map<String, Value> {
    let mut labels = Map::new();
    if let Some(v) = version {
        labels.insert("version".into(), json!(v));
    }
    if tls {
        labels.insert("security.istio.io/tlsMode".into(), json!("istio"));
    }
    labels
}

/// Outlier detection as the simulations vary it: enough to eject or not, capped or not.
fn sim_outlier_detection() -> BoxedStrategy<Option<Value>> {
    option::of(
        (
            option::of(0u32..3),
            option::of(select(vec![10u32, 50, 100])),
        )
            .prop_map(|(c5, mep)| {
                object(vec![
                    ("consecutive5xxErrors", c5.map(|v| json!(v))),
                    ("maxEjectionPercent", mep.map(|v| json!(v))),
                ])
            }),
    )
    .boxed()
}

/// A load balancer with each kind of locality setting (failover, failoverPriority alone and
/// beside failover, distribute, disabled).
fn sim_load_balancer() -> BoxedStrategy<Option<Value>> {
    let region = select(vec!["europe-west1", "europe-west4", "us-east1"]);
    let setting = prop_oneof![
        Just(json!({})),
        Just(json!({"enabled": false})),
        (region.clone(), region.clone()).prop_map(|(f, t)| json!({"failover": [{"from": f, "to": t}]})),
        select(vec![
            vec!["topology.istio.io/network", "topology.kubernetes.io/region", "topology.kubernetes.io/zone"],
            vec!["topology.istio.io/cluster"],
            vec!["topology.kubernetes.io/region", "topology.istio.io/cluster"],
            vec!["version"],
        ])
        .prop_map(|labels| json!({"failoverPriority": labels})),
        (select(vec![vec!["topology.istio.io/network"], vec!["topology.istio.io/cluster"]]), region.clone(), region)
            .prop_map(|(labels, f, t)| json!({"failoverPriority": labels, "failover": [{"from": f, "to": t}]})),
        select(vec![50u32, 90, 100]).prop_map(|w| json!({"distribute": [{"from": "europe-west1/*", "to": {"europe-west1/*": w, "europe-west4/*": 100 - w}}]})),
    ];
    option::of(
        (
            option::of(select(vec!["ROUND_ROBIN", "LEAST_REQUEST"])),
            option::of(setting),
        )
            .prop_map(|(simple, setting)| {
                object(vec![
                    ("simple", simple.map(|s| json!(s))),
                    ("localityLbSetting", setting),
                ])
            }),
    )
    .boxed()
}

fn sim_port_level() -> BoxedStrategy<Option<Value>> {
    option::of(
        (
            select(vec![9080u32, 9081]),
            sim_outlier_detection(),
            sim_load_balancer(),
        )
            .prop_map(|(port, od, lb)| {
                json!([object(vec![
                    ("port", Some(json!({"number": port}))),
                    ("outlierDetection", od),
                    ("loadBalancer", lb),
                ])])
            }),
    )
    .boxed()
}

/// A DestinationRule's top-level traffic policy as the simulations vary it.
fn sim_policy() -> BoxedStrategy<Option<Value>> {
    option::of(
        (
            sim_outlier_detection(),
            sim_load_balancer(),
            sim_port_level(),
            option::of(select(vec!["ISTIO_MUTUAL", "DISABLE"])),
        )
            .prop_map(|(od, lb, pls, tls)| {
                object(vec![
                    ("outlierDetection", od),
                    ("loadBalancer", lb),
                    ("portLevelSettings", pls),
                    ("tls", tls.map(|t| json!({"mode": t}))),
                ])
            }),
    )
    .boxed()
}

/// Up to two subsets (v1, v2), each with or without a policy of its own.
fn sim_subsets() -> BoxedStrategy<Option<Value>> {
    let subset = (
        select(vec!["v1", "v2"]),
        option::of(
            (
                sim_outlier_detection(),
                sim_load_balancer(),
                sim_port_level(),
            )
                .prop_map(|(od, lb, pls)| {
                    object(vec![
                        ("outlierDetection", od),
                        ("loadBalancer", lb),
                        ("portLevelSettings", pls),
                    ])
                }),
        ),
    )
        .prop_map(|(v, policy)| {
            object(vec![
                ("name", Some(json!(v))),
                ("labels", Some(json!({"version": v}))),
                ("trafficPolicy", policy),
            ])
        });
    vec(subset, 0..3)
        .prop_map(|subsets| {
            let mut seen = Vec::new();
            let subsets: Vec<Value> = subsets
                .into_iter()
                .filter(|s| {
                    let n = s["name"].clone();
                    let fresh = !seen.contains(&n);
                    seen.push(n);
                    fresh
                })
                .collect();
            (!subsets.is_empty()).then(|| Value::Array(subsets))
        })
        .boxed()
}

/// A set of objects for one host (`reviews.bookinfo`) as pilot sees them: a Service, up to two
/// DestinationRules (any namespace, policy levels, locality settings, subsets) and up to two
/// ServiceEntries (endpoints, localities, ports, labels), for the differential test of
/// `simulate` against pilot (tests/istio.rs). Remote cluster-b's gateway is 203.0.113.10.
pub fn traffic_case() -> impl Strategy<Value = Vec<Value>> {
    let locality = select(vec![
        "europe-west1/europe-west1-b",
        "europe-west1/europe-west1-c",
        "europe-west4/europe-west4-a",
        "us-east1/us-east1-b",
        "",
    ]);
    let dr = (
        select(vec!["bookinfo", "bookinfo", "default", "istio-system"]),
        select(vec!["reviews", "reviews.bookinfo.svc.cluster.local"]),
        sim_policy(),
        sim_subsets(),
        option::of(select(vec![
            vec!["."],
            vec!["*"],
            vec!["default"],
            vec!["bookinfo", "default"],
        ])),
        // Two rules of one namespace merge (or not, by exportTo); a written creation time
        // orders them instead of the input order.
        select(vec!["", "", "-b"]),
        option::of(select(vec!["2025-06-01T00:00:00Z", "2027-01-01T00:00:00Z"])),
    )
        .prop_map(|(ns, host, policy, subsets, export, suffix, created)| {
            let host = if ns == "bookinfo" {
                host
            } else {
                "reviews.bookinfo.svc.cluster.local"
            };
            json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": object(vec![
                ("name", Some(json!(format!("reviews-{ns}{suffix}")))),
                ("namespace", Some(json!(ns))),
                ("creationTimestamp", created.map(|c| json!(c))),
            ]),
            "spec": object(vec![
                ("host", Some(json!(host))),
                ("trafficPolicy", policy),
                ("subsets", subsets),
                ("exportTo", export.map(|e| json!(e))),
            ])})
        });
    let endpoint = (
        select(vec!["203.0.113.10", "203.0.113.10", "198.51.100.7"]),
        locality.clone(),
        option::of(select(vec!["v1", "v2"])),
        any::<bool>(),
        option::of(select(vec!["network-b", "network-a"])),
        option::of(1u32..4),
        option::of(Just("reviews")),
        // The locality as the topology.istio.io/locality label (dots for slashes) instead.
        any::<bool>(),
    )
        .prop_map(
            |(address, locality, version, tls, network, weight, account, as_label)| {
                let mut labels = endpoint_labels(version, tls);
                if as_label && !locality.is_empty() {
                    labels.insert(
                        "topology.istio.io/locality".into(),
                        json!(locality.replace('/', ".")),
                    );
                }
                object(vec![
                    ("address", Some(json!(address))),
                    (
                        "ports",
                        Some(json!({"http": 15443, "web": 15443, "grpc": 15443})),
                    ),
                    (
                        "locality",
                        (!locality.is_empty() && !as_label).then(|| json!(locality)),
                    ),
                    (
                        "labels",
                        (!labels.is_empty()).then(|| Value::Object(labels)),
                    ),
                    ("network", network.map(|n| json!(n))),
                    ("weight", weight.map(|w| json!(w))),
                    // With no tlsMode label, a service account makes the endpoint mTLS to pilot.
                    ("serviceAccount", account.map(|a| json!(a))),
                ])
            },
        );
    let se = (
        select(vec!["bookinfo", "bookinfo", "istio-system"]),
        select(vec!["http", "http", "web"]),
        option::of(select(vec!["MESH_INTERNAL", "MESH_EXTERNAL"])),
        vec(endpoint, 1..3),
    )
        .prop_map(|(ns, port_name, location, endpoints)| {
            json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
            "metadata": {"name": format!("reviews-failover-{ns}"), "namespace": ns},
            "spec": object(vec![
                ("hosts", Some(json!(["reviews.bookinfo.svc.cluster.local"]))),
                ("resolution", Some(json!("STATIC"))),
                ("location", location.map(|l| json!(l))),
                ("ports", Some(json!([{"number": 9080, "name": port_name, "protocol": "HTTP"}]))),
                ("endpoints", Some(Value::Array(endpoints))),
            ])})
        });
    let service = (
        select(vec![vec![("http", 9080u32)], vec![("http", 9080), ("grpc", 9081)], vec![("web", 9080)]]),
        option::of(Just("Local")),
        option::of(Just("PreferClose")),
        // The annotation pilot reads after the spec: known values in any case, and a typo.
        option::of(select(vec!["preferclose", "PreferSameNode", "PreferClosest"])),
    )
        .prop_map(|(ports, itp, td, annotation)| {
            let ports: Vec<Value> = ports.iter().map(|(n, p)| json!({"name": n, "port": p})).collect();
            json!({"apiVersion": "v1", "kind": "Service", "metadata": object(vec![
                ("name", Some(json!("reviews"))),
                ("namespace", Some(json!("bookinfo"))),
                ("annotations", annotation.map(|a| json!({"networking.istio.io/traffic-distribution": a}))),
            ]),
                "spec": object(vec![
                    ("selector", Some(json!({"app": "reviews"}))),
                    ("ports", Some(Value::Array(ports))),
                    ("internalTrafficPolicy", itp.map(|v| json!(v))),
                    ("trafficDistribution", td.map(|v| json!(v))),
                ])})
        });
    (service, vec(dr, 0..3), vec(se, 0..3)).prop_map(|(svc, drs, ses)| {
        let mut names = Vec::new();
        let mut objects = vec![svc];
        for o in drs.into_iter().chain(ses) {
            let key = (o["kind"].clone(), o["metadata"]["name"].clone());
            if !names.contains(&key) {
                names.push(key);
                objects.push(o);
            }
        }
        objects
    })
}

/// Mesh configs pilot may run with (the `istio` ConfigMap's `mesh`), for the differential
/// test: `None` is Istio's defaults.
pub fn mesh_variant() -> impl Strategy<Value = Option<&'static str>> {
    select(vec![
        None,
        None,
        Some("localityLbSetting: {enabled: false}"),
        Some("localityLbSetting: {failover: [{from: europe-west1, to: us-east1}]}"),
        Some(
            "localityLbSetting: {failoverPriority: [topology.istio.io/network, topology.kubernetes.io/region]}",
        ),
        Some(
            "localityLbSetting: {distribute: [{from: \"europe-west1/*\", to: {\"europe-west1/*\": 80, \"europe-west4/*\": 20}}]}",
        ),
        Some("defaultDestinationRuleExportTo: [\".\"]"),
        Some("enableAutoMtls: false"),
        Some("rootNamespace: default"),
        // Multi-network ambient's scoping (the ambient profile's default): the harness runs
        // pilot with AMBIENT_ENABLE_MULTI_NETWORK, and services without the label are local.
        Some(
            "serviceScopeConfigs: [{servicesSelector: {matchExpressions: [{key: istio.io/global, operator: In, values: [\"true\"]}]}, scope: GLOBAL}]",
        ),
    ])
}

/// The multicluster model the configuration declares, as a patch of the example config's
/// `multicluster` and its remote (cluster-b, europe-west4): the serviceEntries pattern (the
/// example), multi-primary with cluster-b on this cluster's network or on its own behind its
/// east-west gateway, and the primary of primary-remote.
pub fn multicluster_variant() -> impl Strategy<Value = Option<Value>> {
    let native = |model: &str, role: Option<&str>, same_network: bool| {
        let mut multicluster = json!({"model": model});
        if let Some(role) = role {
            multicluster["role"] = json!(role);
        }
        let remote = if same_network {
            json!({"name": "cluster-b", "network": "network-a", "locality": "europe-west4/europe-west4-a"})
        } else {
            json!({"name": "cluster-b", "network": "network-b", "locality": "europe-west4/europe-west4-a",
                "gateway": {"address": "203.0.113.10", "port": 15443}})
        };
        Some(json!({"multicluster": multicluster, "remotes": [remote]}))
    };
    select(vec![
        None,
        None,
        None,
        native("multiPrimary", None, true),
        native("multiPrimary", None, false),
        native("primaryRemote", Some("primary"), false),
    ])
}

/// PeerAuthentications at namespace and mesh level (the root namespace's is mesh-wide), as
/// the model reads them: none, DISABLE in bookinfo, a mesh-wide mode a namespace UNSET
/// inherits or overrides, and two namespace policies of which the oldest counts.
pub fn peer_authentication_variant() -> impl Strategy<Value = Vec<Value>> {
    let pa = |ns: &str, name: &str, mode: Option<&str>, created: Option<&str>| {
        json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": object(vec![
                ("name", Some(json!(name))),
                ("namespace", Some(json!(ns))),
                ("creationTimestamp", created.map(|c| json!(c))),
            ]),
            "spec": object(vec![("mtls", mode.map(|m| json!({"mode": m})))])})
    };
    select(vec![
        vec![],
        vec![],
        vec![pa("bookinfo", "default", Some("DISABLE"), None)],
        vec![pa("istio-system", "default", Some("DISABLE"), None)],
        vec![
            pa("istio-system", "default", Some("DISABLE"), None),
            pa("bookinfo", "default", None, None),
        ],
        vec![
            pa("istio-system", "default", Some("DISABLE"), None),
            pa("bookinfo", "default", Some("PERMISSIVE"), None),
        ],
        vec![
            pa(
                "bookinfo",
                "newer",
                Some("DISABLE"),
                Some("2030-01-01T00:00:00Z"),
            ),
            pa(
                "bookinfo",
                "older",
                Some("STRICT"),
                Some("2020-01-01T00:00:00Z"),
            ),
        ],
        // Workload level: a selector on the reviews pods, the v1 subset (its pods and the
        // failover entries' v1 endpoints), a port-level mode on the pods' and on the
        // gateways' port, and an UNSET one inheriting a namespace DISABLE.
        vec![workload(
            pa("bookinfo", "reviews", Some("DISABLE"), None),
            json!({"app": "reviews"}),
            None,
        )],
        vec![workload(
            pa("bookinfo", "v1", Some("DISABLE"), None),
            json!({"version": "v1"}),
            None,
        )],
        vec![workload(
            pa("bookinfo", "ports", Some("STRICT"), None),
            json!({"version": "v1"}),
            Some(json!({"9080": {"mode": "DISABLE"}, "15443": {"mode": "DISABLE"}})),
        )],
        vec![
            pa("bookinfo", "default", Some("DISABLE"), None),
            workload(
                pa("bookinfo", "reviews", None, None),
                json!({"app": "reviews"}),
                None,
            ),
        ],
        vec![workload(
            pa("istio-system", "root-selector", Some("DISABLE"), None),
            json!({"app": "reviews"}),
            None,
        )],
    ])
}

/// A PeerAuthentication given a selector (and port-level modes).
fn workload(mut pa: Value, labels: Value, ports: Option<Value>) -> Value {
    pa["spec"]["selector"] = json!({"matchLabels": labels});
    if let Some(ports) = ports {
        pa["spec"]["portLevelMtls"] = ports;
    }
    pa
}

/// The `bookinfo` Namespace object, with or without a traffic-distribution annotation (pilot
/// reads it for every Service and ServiceEntry of the namespace that sets none itself).
pub fn namespace_variant() -> impl Strategy<Value = Option<Value>> {
    option::of(option::of(select(vec!["PreferClose", "PREFERSAMEZONE"]))).prop_map(|ns| {
        ns.map(|annotation| {
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": object(vec![
                ("name", Some(json!("bookinfo"))),
                ("annotations", annotation.map(|a| json!({"networking.istio.io/traffic-distribution": a}))),
            ])})
        })
    })
}

/// A second host, `ratings`, whose Envoy clusters depend on the mesh config wherever it
/// applies: a Service, failover endpoints in two remote localities, and a DestinationRule with
/// outlier detection and no localityLbSetting, kept in the service's, the client's or the root
/// namespace, with or without exportTo and a subset.
pub fn mesh_spine() -> impl Strategy<Value = Vec<Value>> {
    (
        select(vec!["bookinfo", "bookinfo", "default", "istio-system"]),
        option::of(select(vec![vec!["."], vec!["*"]])),
        any::<bool>(),
        option::of(Just("ISTIO_MUTUAL")),
    )
        .prop_map(|(ns, export, subset, tls)| {
            let policy = object(vec![
                ("outlierDetection", Some(json!({"consecutive5xxErrors": 5, "maxEjectionPercent": 100}))),
                ("tls", tls.map(|t| json!({"mode": t}))),
            ]);
            vec![
                // Global where the mesh scopes services (reviews stays local): both sides of
                // multi-network ambient's endpoint filter.
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ratings", "namespace": "bookinfo",
                        "labels": {"istio.io/global": "true"}},
                    "spec": {"selector": {"app": "ratings"}, "ports": [{"name": "http", "port": 9080}]}}),
                json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                    "metadata": {"name": "ratings", "namespace": ns},
                    "spec": object(vec![
                        ("host", Some(json!("ratings.bookinfo.svc.cluster.local"))),
                        ("trafficPolicy", Some(policy)),
                        ("subsets", subset.then(|| json!([{"name": "v1", "labels": {"version": "v1"}}]))),
                        ("exportTo", export.map(|e| json!(e))),
                    ])}),
                json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                    "metadata": {"name": "ratings-failover", "namespace": "bookinfo"},
                    "spec": {"hosts": ["ratings.bookinfo.svc.cluster.local"], "location": "MESH_INTERNAL",
                        "resolution": "STATIC", "ports": [{"number": 9080, "name": "http", "protocol": "HTTP"}],
                        "endpoints": [
                            {"address": "203.0.113.10", "ports": {"http": 15443}, "locality": "europe-west4/europe-west4-a",
                             "labels": {"security.istio.io/tlsMode": "istio", "version": "v1"}},
                            {"address": "198.51.100.7", "ports": {"http": 15443}, "locality": "us-east1/us-east1-b",
                             "labels": {"security.istio.io/tlsMode": "istio", "version": "v1"}}]}}),
            ]
        })
}

/// Sets of objects around one host, in a random admission order, for the property that no set
/// failover-guard admits makes pilot panic (tests/istio.rs): STATIC, DNS and DNS_ROUND_ROBIN
/// entries with IP and hostname endpoints over several localities and networks, up to three
/// DestinationRules (failoverPriority, failover, both, distribute, subsets, port-level
/// policies), with or without the Kubernetes Service the host may name.
pub fn admission_case() -> impl Strategy<Value = Vec<Value>> {
    let host = select(vec![
        "reviews.bookinfo.svc.cluster.local",
        "ratings.bookinfo.svc.cluster.local",
        "api.example.com",
    ]);
    let endpoint = (
        select(vec![
            "203.0.113.10",
            "203.0.113.20",
            "198.51.100.7",
            "gw-b.example.net",
            "gw-c.example.net",
        ]),
        select(vec![
            "europe-west1/europe-west1-b",
            "europe-west4/europe-west4-a",
            "us-east1/us-east1-b",
            "",
        ]),
        option::of(select(vec!["v1", "v2"])),
        any::<bool>(),
        option::of(select(vec!["network-b", "network-c", "network-a"])),
    )
        .prop_map(|(address, locality, version, tls, network)| {
            let labels = endpoint_labels(version, tls);
            object(vec![
                ("address", Some(json!(address))),
                ("ports", Some(json!({"http": 15443, "grpc": 15443}))),
                ("locality", (!locality.is_empty()).then(|| json!(locality))),
                (
                    "labels",
                    (!labels.is_empty()).then(|| Value::Object(labels)),
                ),
                ("network", network.map(|n| json!(n))),
            ])
        });
    let entry = (
        select(vec!["bookinfo", "bookinfo", "istio-system"]),
        select(vec!["STATIC", "DNS", "DNS", "DNS_ROUND_ROBIN"]),
        option::of(select(vec!["MESH_INTERNAL", "MESH_EXTERNAL"])),
        select(vec![
            json!([{"number": 9080, "name": "http", "protocol": "HTTP"}]),
            json!([{"number": 9080, "name": "http", "protocol": "HTTP"}, {"number": 9081, "name": "grpc", "protocol": "GRPC"}]),
        ]),
        vec(endpoint, 0..4),
    );
    let rule = (
        select(vec!["bookinfo", "bookinfo", "default"]),
        sim_policy(),
        sim_subsets(),
    );
    (
        host,
        any::<bool>(),
        vec(rule, 0..4),
        vec(entry, 1..3),
    )
        .prop_map(|(host, with_service, rules, entries)| {
            let mut objects = Vec::new();
            if with_service && host.starts_with("reviews.") {
                objects.push(json!({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "reviews", "namespace": "bookinfo"},
                    "spec": {"selector": {"app": "reviews"},
                             "ports": [{"name": "http", "port": 9080}, {"name": "grpc", "port": 9081}]}}));
            }
            for (i, (ns, policy, subsets)) in rules.into_iter().enumerate() {
                objects.push(json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                    "metadata": {"name": format!("rule-{i}"), "namespace": ns},
                    "spec": object(vec![
                        ("host", Some(json!(host))),
                        ("trafficPolicy", policy),
                        ("subsets", subsets),
                    ])}));
            }
            for (i, (ns, resolution, location, ports, mut endpoints)) in entries.into_iter().enumerate() {
                // An endpoint names only the entry's ports (Istio's validation).
                let names: Vec<Value> = ports.as_array().into_iter().flatten().map(|p| p["name"].clone()).collect();
                for e in &mut endpoints {
                    if let Some(map) = e.get_mut("ports").and_then(Value::as_object_mut) {
                        map.retain(|k, _| names.contains(&json!(k)));
                    }
                }
                objects.push(json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                    "metadata": {"name": format!("entry-{i}"), "namespace": ns},
                    "spec": object(vec![
                        ("hosts", Some(json!([host]))),
                        ("resolution", Some(json!(resolution))),
                        ("location", location.map(|l| json!(l))),
                        ("ports", Some(ports)),
                        ("endpoints", (!endpoints.is_empty()).then(|| Value::Array(endpoints))),
                    ])}));
            }
            objects
        })
        .prop_shuffle()
}
