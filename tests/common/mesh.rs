//! A generated mesh the size of a large platform's cluster, for the world-at-scale benchmark
//! (benches/world.rs): Services with their EndpointSlices and Pods on Nodes, DestinationRules
//! for some Services and failover ServiceEntries for others, spread over namespaces. Objects
//! are shaped as users write them (a DestinationRule with outlier detection, locality
//! failover and subsets; a failover ServiceEntry with two remote gateways), so that the rules
//! and FG601 do the work they do in a real cluster.

use serde_json::{Value, json};

/// How many of each kind.
#[derive(Debug, Clone, Copy)]
pub struct MeshSize {
    pub namespaces: usize,
    pub services: usize,
    /// EndpointSlices and Pods: this many per Service.
    pub per_service: usize,
    pub nodes: usize,
    pub destination_rules: usize,
    pub service_entries: usize,
}

impl MeshSize {
    /// The size #31 asks for: 50,000 Services, 100,000 EndpointSlices and Pods, 5,000 Nodes,
    /// 20,000 DestinationRules and 5,000 ServiceEntries (over 500 namespaces).
    pub const FULL: MeshSize = MeshSize {
        namespaces: 500,
        services: 50_000,
        per_service: 2,
        nodes: 5_000,
        destination_rules: 20_000,
        service_entries: 5_000,
    };

    /// Every count times `factor` (at least one of each).
    pub fn scaled(factor: f64) -> MeshSize {
        let f = |n: usize| ((n as f64 * factor).round() as usize).max(1);
        let full = MeshSize::FULL;
        MeshSize {
            namespaces: f(full.namespaces),
            services: f(full.services),
            per_service: full.per_service,
            nodes: f(full.nodes),
            destination_rules: f(full.destination_rules),
            service_entries: f(full.service_entries),
        }
    }
}

/// The namespace of Service `i`.
pub fn namespace(size: &MeshSize, i: usize) -> String {
    format!("team-{}", i % size.namespaces)
}

/// The kinds, in the order they can be created (namespaces and their default service
/// accounts before pods).
pub const KINDS: &[&str] = &[
    "Namespace",
    "ServiceAccount",
    "Node",
    "Service",
    "EndpointSlice",
    "Pod",
    "DestinationRule",
    "ServiceEntry",
];

/// The generated objects of one kind.
pub fn objects(size: &MeshSize, kind: &str) -> Vec<Value> {
    (0..count(size, kind))
        .map(|i| object(size, kind, i))
        .collect()
}

/// How many objects of a kind the mesh has.
pub fn count(size: &MeshSize, kind: &str) -> usize {
    match kind {
        "Namespace" | "ServiceAccount" => size.namespaces,
        "Node" => size.nodes,
        "Service" => size.services,
        "EndpointSlice" | "Pod" => size.services * size.per_service,
        "DestinationRule" => size.destination_rules,
        "ServiceEntry" => size.service_entries,
        _ => 0,
    }
}

/// Object `n` of a kind (generated one at a time, so a large mesh need not sit in memory).
pub fn object(size: &MeshSize, kind: &str, n: usize) -> Value {
    let zones = ["europe-west1-b", "europe-west1-c", "europe-west1-d"];
    let node = |j: usize| format!("node-{}", j % size.nodes);
    match kind {
        "Namespace" => {
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("team-{n}"),
            "labels": {"istio-injection": "enabled"}}})
        }
        // The ServiceAccount admission plugin needs a namespace's default account for pods
        // (no controller-manager makes it here).
        "ServiceAccount" => json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": format!("team-{n}")}}),
        "Node" => {
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node(n), "labels": {
            "topology.kubernetes.io/region": "europe-west1", "topology.kubernetes.io/zone": zones[n % 3],
            "kubernetes.io/hostname": node(n)}}})
        }
        "Service" => json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("svc-{n}"), "namespace": namespace(size, n), "labels": {"app": format!("svc-{n}")}},
            "spec": {"clusterIP": "None", "selector": {"app": format!("svc-{n}")},
                "ports": [{"name": "http", "port": 8080}, {"name": "grpc", "port": 9090}]}}),
        "EndpointSlice" => {
            let (i, k) = (n / size.per_service, n % size.per_service);
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": format!("svc-{i}-{k}"), "namespace": namespace(size, i),
                    "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080}, {"name": "grpc", "port": 9090}],
                "endpoints": [{"addresses": [format!("10.{}.{}.{}", 64 + n / 65_536, n / 256 % 256, n % 256)],
                    "conditions": {"ready": true}, "nodeName": node(n),
                    "zone": zones[n % size.nodes % 3],
                    "targetRef": {"kind": "Pod", "name": format!("svc-{i}-{k}"), "namespace": namespace(size, i)}}]})
        }
        "Pod" => {
            let (i, k) = (n / size.per_service, n % size.per_service);
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("svc-{i}-{k}"), "namespace": namespace(size, i),
                    "labels": {"app": format!("svc-{i}"), "version": format!("v{}", k + 1),
                        "security.istio.io/tlsMode": "istio"}},
                "spec": {"nodeName": node(n), "automountServiceAccountToken": false,
                    "containers": [{"name": "app", "image": "registry.example/app:1.0",
                        "ports": [{"containerPort": 8080}, {"containerPort": 9090}]}]}})
        }
        "DestinationRule" => {
            json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": format!("svc-{n}"), "namespace": namespace(size, n)},
            "spec": {"host": format!("svc-{n}"),
                "trafficPolicy": {
                    "outlierDetection": {"consecutive5xxErrors": 5, "interval": "10s", "baseEjectionTime": "30s", "maxEjectionPercent": 100},
                    "loadBalancer": {"simple": "LEAST_REQUEST", "localityLbSetting": {"enabled": true,
                        "failover": [{"from": "europe-west1", "to": "europe-west4"}]}}},
                "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]}})
        }
        "ServiceEntry" => {
            // Failover entries for the Services after those with DestinationRules.
            let i = (size.destination_rules + n) % size.services;
            let ns = namespace(size, i);
            json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                "metadata": {"name": format!("svc-{i}-failover"), "namespace": ns,
                    "annotations": {"failover-guard.io/failover": "true"}},
                "spec": {"hosts": [format!("svc-{i}.{ns}.svc.cluster.local")], "location": "MESH_INTERNAL",
                    "resolution": "STATIC", "ports": [{"number": 8080, "name": "http", "protocol": "HTTP"}],
                    "endpoints": [
                        {"address": "198.51.100.20", "ports": {"http": 15443}, "locality": "europe-west4/europe-west4-a",
                         "network": "network-b", "labels": {"security.istio.io/tlsMode": "istio"}},
                        {"address": "198.51.100.30", "ports": {"http": 15443}, "locality": "us-east1/us-east1-b",
                         "network": "network-c", "labels": {"security.istio.io/tlsMode": "istio"}}]}})
        }
        _ => Value::Null,
    }
}
