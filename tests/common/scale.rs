//! A remote cluster at scale, for the discovery and endurance benchmarks and the fault tests:
//! a generated set of headless Services with one EndpointSlice each, behind an east-west
//! gateway on a labelled node; loaded into a real kube-apiserver with many requests in flight;
//! churned by patching slices; and the API server's own counters of what its readers cost.

use std::collections::BTreeMap;

use futures::StreamExt as _;
use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    core::{ApiResource, GroupVersionKind},
};
use serde_json::{Value, json};

/// The namespace of the generated Services.
pub const NAMESPACE: &str = "churn";

/// The name of generated Service `i`.
pub fn service_name(i: usize) -> String {
    format!("svc-{i:05}")
}

/// `ready` ready endpoints (and one not ready) on node `node-0`.
pub fn endpoints(ready: usize) -> Value {
    let ready = (0..ready).map(|i| {
        json!({"addresses": [format!("10.8.{}.{}", i / 250, i % 250 + 1)],
            "conditions": {"ready": true}, "nodeName": "node-0"})
    });
    let unready = std::iter::once(
        json!({"addresses": ["10.9.0.1"], "conditions": {"ready": false}, "nodeName": "node-0"}),
    );
    Value::Array(ready.chain(unready).collect())
}

/// The remote's objects: the east-west gateway (Service, slice, node with topology labels),
/// the namespace, and `services` headless Services (no cluster IP to allocate) with one
/// EndpointSlice each of 3 ready endpoints.
pub fn remote_objects(services: usize) -> Vec<Value> {
    let mut out = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-0", "labels": {
            "topology.kubernetes.io/region": "europe-west4", "topology.kubernetes.io/zone": "europe-west4-a"}}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "istio-eastwestgateway", "namespace": "istio-system",
            "labels": {"istio": "eastwestgateway", "topology.istio.io/network": "network-b"}},
            "spec": {"type": "LoadBalancer", "selector": {"istio": "eastwestgateway"},
                "ports": [{"name": "tls", "port": 15443}]}}),
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "istio-eastwestgateway-1",
            "namespace": "istio-system", "labels": {"kubernetes.io/service-name": "istio-eastwestgateway"}},
            "addressType": "IPv4", "ports": [{"name": "tls", "port": 15443}],
            "endpoints": [{"addresses": ["10.1.9.1"], "nodeName": "node-0"}]}),
    ];
    for i in 0..services {
        let name = service_name(i);
        out.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"clusterIP": "None", "selector": {"app": name}, "ports": [{"name": "http", "port": 8080}]}}));
        out.push(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-1"), "namespace": NAMESPACE, "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}], "endpoints": endpoints(3)}));
    }
    out
}

/// The API resource of an object.
pub fn resource_of(object: &Value) -> ApiResource {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        group,
        version,
        object["kind"].as_str().unwrap_or(""),
    ))
}

fn api_for(client: &Client, object: &Value) -> Api<DynamicObject> {
    let resource = resource_of(object);
    match object.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Creates every object (namespaces and nodes first), `in_flight` requests at a time; an
/// object that exists already is left as it is.
pub async fn load(client: &Client, objects: &[Value], in_flight: usize) -> Result<(), String> {
    let (cluster, namespaced): (Vec<&Value>, Vec<&Value>) = objects
        .iter()
        .partition(|o| o.pointer("/metadata/namespace").is_none());
    for batch in [cluster, namespaced] {
        let results: Vec<Result<(), String>> = futures::stream::iter(batch)
            .map(|object| async move {
                let typed: DynamicObject =
                    serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
                match api_for(client, object)
                    .create(&PostParams::default(), &typed)
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
                    Err(e) => Err(format!("{}: {e}", object["metadata"]["name"])),
                }
            })
            .buffer_unordered(in_flight)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, String>>()?;
    }
    Ok(())
}

/// Gives the east-west gateway its LoadBalancer address (the status subresource).
pub async fn set_gateway_address(client: &Client, ip: &str) -> Result<(), String> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "istio-system",
        &ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Service")),
    );
    api.patch_status(
        "istio-eastwestgateway",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}})),
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// Sets the ready endpoints of generated Service `i`'s slice (one change).
pub async fn scale(client: &Client, i: usize, ready: usize) -> Result<(), String> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        NAMESPACE,
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
        )),
    );
    api.patch(
        &format!("{}-1", service_name(i)),
        &PatchParams::default(),
        &Patch::Merge(json!({"endpoints": endpoints(ready)})),
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// The resources remote discovery reads.
pub const READ_RESOURCES: &[&str] = &[
    "services",
    "endpointslices",
    "nodes",
    "pods",
    "namespaces",
    "gateways",
];

/// What the API server has served of the resources discovery reads, from its own metrics:
/// requests by verb (`apiserver_request_total`), bytes of LIST/GET answers
/// (`apiserver_response_sizes`) and of watch events (`apiserver_watch_events_sizes`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiCounters {
    pub requests: BTreeMap<String, f64>,
    pub bytes: f64,
    pub watch_events: f64,
}

impl ApiCounters {
    pub fn parse(exposition: &str) -> ApiCounters {
        let label = |line: &str, name: &str| -> Option<String> {
            line.split(&format!("{name}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(str::to_owned)
        };
        let value = |line: &str| {
            line.rsplit(' ')
                .next()
                .and_then(|n| n.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let read = |line: &str| {
            label(line, "resource").is_some_and(|r| READ_RESOURCES.contains(&r.as_str()))
        };
        let mut out = ApiCounters::default();
        for line in exposition.lines() {
            if line.starts_with("apiserver_request_total{") && read(line) {
                if let Some(verb) = label(line, "verb") {
                    *out.requests.entry(verb).or_default() += value(line);
                }
            } else if line.starts_with("apiserver_response_sizes_sum{")
                && read(line)
                && label(line, "verb").is_some_and(|v| matches!(v.as_str(), "LIST" | "GET"))
            {
                out.bytes += value(line);
            } else if line.starts_with("apiserver_watch_events_sizes_sum{") && read(line) {
                out.bytes += value(line);
            } else if line.starts_with("apiserver_watch_events_total{") && read(line) {
                out.watch_events += value(line);
            }
        }
        out
    }

    /// The API server's counters now.
    pub async fn read(client: &Client) -> Result<ApiCounters, String> {
        let request = http::Request::get("/metrics")
            .body(Vec::new())
            .map_err(|e| e.to_string())?;
        let text = client
            .request_text(request)
            .await
            .map_err(|e| e.to_string())?;
        Ok(ApiCounters::parse(&text))
    }

    /// What was served between `before` and `self`.
    pub fn since(&self, before: &ApiCounters) -> ApiCounters {
        ApiCounters {
            requests: self
                .requests
                .iter()
                .map(|(verb, n)| (verb.clone(), n - before.requests.get(verb).unwrap_or(&0.0)))
                .filter(|(_, n)| *n > 0.0)
                .collect(),
            bytes: self.bytes - before.bytes,
            watch_events: self.watch_events - before.watch_events,
        }
    }

    pub fn count(&self, verb: &str) -> f64 {
        self.requests.get(verb).copied().unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_read_what_discovery_reads_only() {
        let text = r#"apiserver_request_total{code="200",component="apiserver",dry_run="",group="discovery.k8s.io",resource="endpointslices",scope="cluster",subresource="",verb="LIST",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="cluster",subresource="",verb="LIST",version="v1"} 9
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="services",scope="cluster",subresource="",verb="WATCH",version="v1"} 2
apiserver_response_sizes_sum{component="apiserver",group="",resource="services",scope="cluster",subresource="",verb="LIST",version="v1"} 1000
apiserver_response_sizes_sum{component="apiserver",group="",resource="services",scope="namespace",subresource="",verb="PATCH",version="v1"} 50
apiserver_watch_events_sizes_sum{group="discovery.k8s.io",resource="endpointslices",version="v1"} 500
apiserver_watch_events_total{group="discovery.k8s.io",resource="endpointslices",version="v1"} 7
"#;
        let c = ApiCounters::parse(text);
        assert_eq!(c.count("LIST"), 3.0);
        assert_eq!(c.count("WATCH"), 2.0);
        assert_eq!(c.bytes, 1500.0);
        assert_eq!(c.watch_events, 7.0);
    }
}
