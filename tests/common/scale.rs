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

/// A failover ServiceEntry for generated Service `i`: the webhook gives it an endpoint per
/// discovered remote gateway, weighted by the remote's ready endpoints.
pub fn failover_entry(i: usize) -> Value {
    let name = service_name(i);
    json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": format!("{name}-failover"), "namespace": NAMESPACE,
            "annotations": {"failover-guard.io/failover": "true"}},
        "spec": {"hosts": [format!("{name}.{NAMESPACE}.svc.cluster.local")], "location": "MESH_INTERNAL",
            "resolution": "STATIC", "ports": [{"number": 8080, "name": "http", "protocol": "HTTP"}]}})
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
    match object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    {
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

/// The kinds remote discovery reads (watch event metrics are labelled by kind in 1.33).
pub const READ_KINDS: &[&str] = &[
    "Service",
    "EndpointSlice",
    "Node",
    "Pod",
    "Namespace",
    "Gateway",
];

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
/// (`apiserver_response_sizes`) and of watch events. The API server encodes an event once for
/// all its watchers and observes its size once (`apiserver_watch_events_sizes`), while it
/// counts every event sent to every watcher (`apiserver_watch_events_total`): the bytes sent
/// to watchers are the events sent times the mean size of an event, per kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiCounters {
    pub requests: BTreeMap<String, f64>,
    /// LIST requests by resource (a paginated list counts once per page).
    pub lists: BTreeMap<String, f64>,
    /// Bytes of LIST and GET answers.
    pub list_bytes: f64,
    /// Per kind: watch events sent, and the sum and count of encoded event sizes.
    pub events: BTreeMap<String, (f64, f64, f64)>,
    /// Watches open now (`apiserver_longrunning_requests`, a gauge).
    pub open_watches: f64,
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
        let kind = |line: &str| {
            label(line, "kind")
                .or_else(|| label(line, "resource"))
                .filter(|k| {
                    READ_KINDS.contains(&k.as_str()) || READ_RESOURCES.contains(&k.as_str())
                })
        };
        let mut out = ApiCounters::default();
        for line in exposition.lines() {
            let metric = line.split('{').next().unwrap_or("");
            match metric {
                "apiserver_request_total" if read(line) => {
                    if let Some(verb) = label(line, "verb") {
                        if verb == "LIST"
                            && let Some(resource) = label(line, "resource")
                        {
                            *out.lists.entry(resource).or_default() += value(line);
                        }
                        *out.requests.entry(verb).or_default() += value(line);
                    }
                }
                "apiserver_response_sizes_sum"
                    if read(line)
                        && label(line, "verb")
                            .is_some_and(|v| matches!(v.as_str(), "LIST" | "GET")) =>
                {
                    out.list_bytes += value(line);
                }
                "apiserver_watch_events_total" => {
                    if let Some(k) = kind(line) {
                        out.events.entry(k).or_default().0 += value(line);
                    }
                }
                "apiserver_watch_events_sizes_sum" => {
                    if let Some(k) = kind(line) {
                        out.events.entry(k).or_default().1 += value(line);
                    }
                }
                "apiserver_watch_events_sizes_count" => {
                    if let Some(k) = kind(line) {
                        out.events.entry(k).or_default().2 += value(line);
                    }
                }
                "apiserver_longrunning_requests"
                    if read(line) && label(line, "verb").as_deref() == Some("WATCH") =>
                {
                    out.open_watches += value(line);
                }
                _ => {}
            }
        }
        out
    }

    /// Watch events sent to every watcher.
    pub fn watch_events(&self) -> f64 {
        self.events.values().map(|(n, _, _)| n).sum()
    }

    /// Bytes of watch events: every event sent at its kind's mean size.
    pub fn watch_bytes(&self) -> f64 {
        self.events
            .values()
            .map(|(n, sum, count)| if *count > 0.0 { n * sum / count } else { 0.0 })
            .sum()
    }

    /// Bytes sent: LIST and GET answers, and watch events.
    pub fn bytes(&self) -> f64 {
        self.list_bytes + self.watch_bytes()
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
            lists: self
                .lists
                .iter()
                .map(|(r, n)| (r.clone(), n - before.lists.get(r).unwrap_or(&0.0)))
                .filter(|(_, n)| *n > 0.0)
                .collect(),
            list_bytes: self.list_bytes - before.list_bytes,
            events: self
                .events
                .iter()
                .map(|(k, (n, sum, count))| {
                    let (n0, sum0, count0) = before.events.get(k).copied().unwrap_or_default();
                    (k.clone(), (n - n0, sum - sum0, count - count0))
                })
                .collect(),
            open_watches: self.open_watches,
        }
    }

    pub fn count(&self, verb: &str) -> f64 {
        self.requests.get(verb).copied().unwrap_or(0.0)
    }
}

/// A client of the API server a kubeconfig file names.
pub async fn client(kubeconfig: &std::path::Path) -> Result<Client, String> {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| e.to_string())?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    Client::try_from(config).map_err(|e| e.to_string())
}

/// Slice changes on a remote from a thread of its own, one every `every`, over the generated
/// Services but `spare` (a Service the caller scales itself), until stopped.
pub struct Churn {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(u64, u64)>,
}

impl Churn {
    pub fn start(
        kubeconfig: std::path::PathBuf,
        services: usize,
        every: std::time::Duration,
        spare: usize,
    ) -> Churn {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return (0, 0);
            };
            let Ok(client) = runtime.block_on(client(&kubeconfig)) else {
                return (0, 0);
            };
            let (mut i, mut changes, mut refused) = (1usize, 0u64, 0u64);
            while !stopping.load(std::sync::atomic::Ordering::SeqCst) {
                i = (i * 7919 + 13) % services;
                if i != spare {
                    let ready = 1 + (i + changes as usize) % 5;
                    match runtime.block_on(scale(&client, i, ready)) {
                        Ok(()) => changes += 1,
                        Err(_) => refused += 1,
                    }
                }
                std::thread::sleep(every);
            }
            (changes, refused)
        });
        Churn { stop, thread }
    }

    /// Stops, and says how many changes were made and how many the API server refused.
    pub fn stop(self) -> (u64, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().unwrap_or((0, 0))
    }
}
