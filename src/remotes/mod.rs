//! Remote discovery (`discovery` in the config; `serve` and `render --cluster`): instead of
//! typing each remote cluster's east-west gateway address, locality and network, read them
//! from the remote clusters themselves, with the Services each one runs and how many ready
//! endpoints each has.
//!
//! The credentials are the ones an Istio multi-primary install already holds: the Secrets
//! labelled `istio/multiCluster: "true"` that `istioctl create-remote-secret` makes (one
//! kubeconfig per key, the key being the cluster name), or kubeconfig files named in the
//! config. Per remote, kube-runtime watches on Services, EndpointSlices and Nodes (and what the
//! model reads besides) keep a [`RemoteView`] current from their own events; the remote's
//! reading is updated from the changed objects, at most once a second. Only a watch that
//! restarts lists again.
//!
//! Admission never waits on a remote: the rules read the last known state (a configuration
//! with the discovered remotes merged in, [`crate::config::Config::with_discovered`]). A remote
//! that cannot be reached keeps its last known state; it is shown in `/readyz` and in
//! `failover_guard_remote_up{cluster}`, and its age is logged. Credentials are never logged and
//! TLS verification stays on (the kubeconfig's CA).

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use kube::{
    Api, Client,
    api::{DynamicObject, ListParams},
    config::{KubeConfigOptions, Kubeconfig},
    core::{ApiResource, GroupVersionKind},
    runtime::{WatchStreamExt as _, watcher},
};
use serde_json::Value;

mod view;

pub use view::{RemoteView, Resource};

use crate::{
    config::{Config, DiscoveredRemote, DiscoverySource},
    metrics::Metrics,
};

/// The label Istio's remote secrets carry.
pub const REMOTE_SECRET_LABEL: &str = "istio/multiCluster";
/// The label of a namespace whose generated failover entries `serve --reconcile` keeps current.
pub const RECONCILE_LABEL: &str = "failover-guard.io/reconcile";
/// The label of a namespace where `serve --reconcile` keeps a default AuthorizationPolicy
/// while the namespace has no policy of its own.
pub const DEFAULT_POLICY_LABEL: &str = "failover-guard.io/default-policy";

/// Errors reading a remote. Never carries credentials.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("kubeconfig of {cluster}: {message}")]
    Kubeconfig { cluster: String, message: String },
    #[error("{cluster}: {source}")]
    Api {
        cluster: String,
        source: kube::Error,
    },
}

/// The state of one remote.
#[derive(Debug, Clone)]
pub struct RemoteStatus {
    /// The last successful reading (kept while the remote is unreachable).
    pub discovered: Option<DiscoveredRemote>,
    pub up: bool,
    /// When the last successful reading was taken.
    pub read_at: Option<Instant>,
    pub error: Option<String>,
}

/// Every remote's state, shared by the discovery tasks and the server.
pub struct Remotes {
    state: RwLock<BTreeMap<String, RemoteStatus>>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for Remotes {
    fn default() -> Self {
        Self {
            state: RwLock::new(BTreeMap::new()),
            changed: tokio::sync::watch::channel(0).0,
        }
    }
}

impl Remotes {
    /// The last known reading of every remote (up or not).
    pub fn snapshot(&self) -> Vec<DiscoveredRemote> {
        self.read()
            .values()
            .filter_map(|s| s.discovered.clone())
            .collect()
    }

    /// Per remote: up or down, and the age of what is known.
    pub fn statuses(&self) -> BTreeMap<String, RemoteStatus> {
        self.read().clone()
    }

    /// One line for /readyz.
    pub fn describe(&self) -> String {
        let state = self.read();
        if state.is_empty() {
            return "none discovered yet".into();
        }
        state
            .iter()
            .map(|(name, s)| {
                let age = s.read_at.map_or("never read".to_owned(), |t| {
                    format!("read {}s ago", t.elapsed().as_secs())
                });
                if s.up {
                    format!("{name} up ({age})")
                } else {
                    format!(
                        "{name} DOWN ({age}; last known state used): {}",
                        s.error.as_deref().unwrap_or("not reached yet")
                    )
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Notified (the value counts changes) whenever a remote's reading changes.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, RemoteStatus>> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, RemoteStatus>> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, name: &str, reading: Result<DiscoveredRemote, String>, metrics: &Metrics) {
        let mut changed = false;
        {
            let mut state = self.write();
            let status = state.entry(name.to_owned()).or_insert(RemoteStatus {
                discovered: None,
                up: false,
                read_at: None,
                error: None,
            });
            match reading {
                Ok(discovered) => {
                    if !status.up {
                        tracing::info!(cluster = name, "remote reachable");
                    }
                    changed = status.discovered.as_ref() != Some(&discovered);
                    if changed {
                        tracing::info!(
                            cluster = name,
                            gateway = ?discovered.gateway.as_ref().map(|g| format!("{}:{}", g.address, g.port)),
                            locality = ?discovered.locality,
                            network = ?discovered.network,
                            services = discovered.services.len(),
                            "remote state changed"
                        );
                    }
                    status.discovered = Some(discovered);
                    status.up = true;
                    status.read_at = Some(Instant::now());
                    status.error = None;
                }
                Err(error) => {
                    let age = status
                        .read_at
                        .map(|t| t.elapsed().as_secs())
                        .map_or("none".to_owned(), |s| format!("{s}s"));
                    tracing::warn!(cluster = name, %error, last_known_age = %age,
                        "remote unreachable; using its last known state");
                    status.up = false;
                    status.error = Some(error);
                }
            }
            metrics
                .remote_up
                .get_or_create(&crate::metrics::ClusterLabels {
                    cluster: name.to_owned(),
                })
                .set(i64::from(status.up));
        }
        if changed {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    fn forget(&self, name: &str, metrics: &Metrics) {
        if self.write().remove(name).is_some() {
            metrics.remote_up.remove(&crate::metrics::ClusterLabels {
                cluster: name.to_owned(),
            });
            self.changed.send_modify(|n| *n += 1);
        }
    }
}

/// The kubeconfig of every remote the configuration names, by cluster name.
pub async fn remote_kubeconfigs(
    local: Option<&Client>,
    config: &Config,
) -> Result<BTreeMap<String, Kubeconfig>, RemoteError> {
    let mut out = BTreeMap::new();
    match config.discovery.source {
        DiscoverySource::None => {}
        DiscoverySource::Kubeconfigs => {
            for (name, path) in &config.discovery.kubeconfigs {
                let kubeconfig =
                    Kubeconfig::read_from(path).map_err(|e| RemoteError::Kubeconfig {
                        cluster: name.clone(),
                        message: format!("{}: {}", path.display(), redact(&e.to_string())),
                    })?;
                out.insert(name.clone(), kubeconfig);
            }
        }
        DiscoverySource::IstioSecrets => {
            let Some(client) = local else {
                return Ok(out);
            };
            let api: Api<k8s_openapi::api::core::v1::Secret> =
                Api::namespaced(client.clone(), &config.discovery.secret_namespace);
            let secrets = api
                .list(&ListParams::default().labels(&format!("{REMOTE_SECRET_LABEL}=true")))
                .await
                .map_err(|source| RemoteError::Api {
                    cluster: config.cluster.name.clone(),
                    source,
                })?;
            for secret in secrets.items {
                for (name, data) in secret.data.unwrap_or_default() {
                    // This cluster's own secret, if any, is not a remote.
                    if name == config.cluster.name {
                        continue;
                    }
                    let text = String::from_utf8_lossy(&data.0);
                    match Kubeconfig::from_yaml(&text) {
                        Ok(kubeconfig) => {
                            out.insert(name, kubeconfig);
                        }
                        Err(e) => tracing::warn!(cluster = %name,
                            error = %redact(&e.to_string()), "remote secret holds no usable kubeconfig"),
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Error texts from kubeconfig parsing may quote the document; keep only the first line and
/// never more than 200 characters, so a token cannot end up in a log.
fn redact(text: &str) -> String {
    let first = text.lines().next().unwrap_or_default();
    let cut: String = first.chars().take(200).collect();
    if cut.contains("token") || cut.contains("BEGIN") {
        "unreadable kubeconfig".into()
    } else {
        cut
    }
}

async fn remote_client(name: &str, kubeconfig: Kubeconfig) -> Result<Client, RemoteError> {
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| RemoteError::Kubeconfig {
            cluster: name.to_owned(),
            message: redact(&e.to_string()),
        })?;
    Client::try_from(config).map_err(|source| RemoteError::Api {
        cluster: name.to_owned(),
        source,
    })
}

fn core(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", kind))
}

fn endpoint_slices() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
    ))
}

fn gateways() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "gateway.networking.k8s.io",
        "v1",
        "Gateway",
    ))
}

/// Reads one remote once: its Services, EndpointSlices and Nodes (the read-only access the
/// remote grants), turned into what the rules need.
pub async fn read_remote(
    name: &str,
    client: &Client,
    config: &Config,
) -> Result<DiscoveredRemote, RemoteError> {
    let mut objects = Vec::new();
    for resource in read_resources(config) {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let list = match api.list(&ListParams::default()).await {
            Ok(list) => list,
            Err(kube::Error::Api(e))
                if resource.kind == "Gateway" && matches!(e.code, 403 | 404) =>
            {
                tracing::debug!(
                    cluster = name,
                    code = e.code,
                    "no Gateway API gateways read"
                );
                continue;
            }
            Err(source) => {
                return Err(RemoteError::Api {
                    cluster: name.to_owned(),
                    source,
                });
            }
        };
        objects.extend(
            list.items
                .into_iter()
                .filter_map(|o| as_discovery_reads_it(o, &resource)),
        );
    }
    let mut found = discovered_from(name, &objects, config);
    resolve_gateway(&mut found).await;
    Ok(found)
}

/// What discovery reads of a remote: Services, EndpointSlices and Nodes; in the native models
/// Pods and Namespaces too (istiod reads the remote's pods: their labels, tlsMode, subset
/// labels, locality); and Gateway API Gateways, where ambient's east-west gateways are (a remote
/// without the Gateway API installed, or that does not grant reading them, has none).
fn read_resources(config: &Config) -> Vec<ApiResource> {
    let mut resources = vec![core("Service"), endpoint_slices(), core("Node")];
    if config.multicluster.native() {
        resources.push(core("Pod"));
        resources.push(core("Namespace"));
    }
    resources.push(gateways());
    resources
}

/// One remote object reduced to what discovery reads: no managed fields or annotations, a pod
/// to its identity.
fn as_discovery_reads_it(mut o: DynamicObject, resource: &ApiResource) -> Option<Value> {
    o.types = Some(kube::core::TypeMeta {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
    });
    o.metadata.managed_fields = None;
    o.metadata.annotations = None;
    let value = serde_json::to_value(o).ok()?;
    Some(match resource.kind.as_str() {
        "Pod" => pod_as_istiod_reads_it(&value),
        // A Node's status (its images, conditions, capacity) is most of its size and none of
        // what is read: its topology labels. A Namespace is read for its labels too.
        "Node" | "Namespace" => labels_only(&value),
        _ => value,
    })
}

/// An object reduced to its kind, name and labels.
fn labels_only(object: &Value) -> Value {
    serde_json::json!({
        "apiVersion": object.pointer("/apiVersion"),
        "kind": object.pointer("/kind"),
        "metadata": {
            "name": object.pointer("/metadata/name"),
            "labels": object.pointer("/metadata/labels"),
        },
    })
}

/// What the model reads of a remote pod (its labels, node and address), so a large remote
/// costs the webhook its workloads' identities only, not their specs.
fn pod_as_istiod_reads_it(pod: &Value) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod.pointer("/metadata/name"),
            "namespace": pod.pointer("/metadata/namespace"),
            "labels": pod.pointer("/metadata/labels"),
        },
        "spec": {"nodeName": pod.pointer("/spec/nodeName")},
        "status": {"podIP": pod.pointer("/status/podIP")},
    })
}

/// Resolves a gateway hostname (a LoadBalancer that reports one, like AWS NLBs) to its IP
/// addresses, as istiod does for hostname gateways (RESOLVE_HOSTNAME_GATEWAYS): pilot merges
/// only IP endpoints into a Service, so a hostname endpoint would be dropped. Each reading of
/// the remote resolves again (on every change, and at least once a minute), so the
/// addresses follow the records. A name that does not resolve is said, not guessed.
pub async fn resolve_gateway(found: &mut DiscoveredRemote) {
    let Some(gateway) = &found.gateway else {
        return;
    };
    if gateway.address.parse::<std::net::IpAddr>().is_ok() {
        return;
    }
    let lookup = tokio::net::lookup_host((gateway.address.as_str(), gateway.port));
    match tokio::time::timeout(Duration::from_secs(5), lookup).await {
        Ok(Ok(addresses)) => {
            let mut resolved: Vec<String> = addresses.map(|a| a.ip().to_string()).collect();
            resolved.sort();
            resolved.dedup();
            if resolved.is_empty() {
                found.unresolved = Some(format!("{} has no address", gateway.address));
            }
            found.resolved = resolved;
        }
        Ok(Err(error)) => found.unresolved = Some(format!("{}: {error}", gateway.address)),
        Err(_) => found.unresolved = Some(format!("{}: no answer within 5 s", gateway.address)),
    }
    if let Some(why) = &found.unresolved {
        tracing::warn!(cluster = %found.name, "east-west gateway hostname does not resolve: {why}");
    }
}

/// What a remote's objects say (the reading [`RemoteView`] keeps current, of a list): the
/// east-west gateway (address, port, network, the locality of its nodes) and every Service
/// outside the excluded namespaces with its ready endpoints.
pub fn discovered_from(name: &str, objects: &[Value], config: &Config) -> DiscoveredRemote {
    RemoteView::from_objects(objects).reading(name, config)
}

/// Reads every remote once (for `render --cluster`).
pub async fn read_all(local: &Client, config: &Config) -> Vec<DiscoveredRemote> {
    let kubeconfigs = match remote_kubeconfigs(Some(local), config).await {
        Ok(k) => k,
        Err(error) => {
            tracing::warn!(%error, "cannot read the remote kubeconfigs");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (name, kubeconfig) in kubeconfigs {
        let reading = match remote_client(&name, kubeconfig).await {
            Ok(client) => read_remote(&name, &client, config).await,
            Err(e) => Err(e),
        };
        match reading {
            Ok(discovered) => out.push(discovered),
            Err(error) => tracing::warn!(%error, "remote skipped"),
        }
    }
    out
}

/// Discovery's supervisor: (re)reads the remote kubeconfigs every 30 s (from the current
/// configuration) and keeps one watching task per remote.
pub async fn supervise(
    local: Option<Client>,
    config: Arc<arc_swap::ArcSwap<Config>>,
    metrics: Arc<Metrics>,
    remotes: Arc<Remotes>,
) {
    let mut tasks: BTreeMap<String, (String, tokio::task::JoinHandle<()>)> = BTreeMap::new();
    loop {
        let current = config.load_full();
        match remote_kubeconfigs(local.as_ref(), &current).await {
            Ok(kubeconfigs) => {
                let gone: Vec<String> = tasks
                    .keys()
                    .filter(|n| !kubeconfigs.contains_key(*n))
                    .cloned()
                    .collect();
                for name in gone {
                    if let Some((_, task)) = tasks.remove(&name) {
                        task.abort();
                    }
                    remotes.forget(&name, &metrics);
                    tracing::info!(cluster = %name, "remote removed");
                }
                for (name, kubeconfig) in kubeconfigs {
                    // A changed kubeconfig (a rotated token) restarts that remote's task, and
                    // so does a model that reads other resources there (its watches).
                    let fingerprint = format!(
                        "{}{}",
                        serde_json::to_string(&kubeconfig).unwrap_or_default(),
                        current.multicluster.native()
                    );
                    if tasks
                        .get(&name)
                        .is_some_and(|(f, t)| *f == fingerprint && !t.is_finished())
                    {
                        continue;
                    }
                    if let Some((_, task)) = tasks.remove(&name) {
                        task.abort();
                    }
                    let task = tokio::spawn(watch_remote(
                        name.clone(),
                        kubeconfig,
                        config.clone(),
                        metrics.clone(),
                        remotes.clone(),
                    ));
                    tasks.insert(name, (fingerprint, task));
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read the remote kubeconfigs"),
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
}

/// Watches one remote: any change to its Services, EndpointSlices or Nodes (or 60 s without
/// one) triggers a fresh reading, at most one per second.
async fn watch_remote(
    name: String,
    kubeconfig: Kubeconfig,
    config: Arc<arc_swap::ArcSwap<Config>>,
    metrics: Arc<Metrics>,
    remotes: Arc<Remotes>,
) {
    let client = loop {
        match remote_client(&name, kubeconfig.clone()).await {
            Ok(client) => break client,
            Err(error) => {
                remotes.record(&name, Err(error.to_string()), &metrics);
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        }
    };
    let config_now = config.load_full();
    // Gateways only where the remote serves and grants them (one probe; a missing CRD or a
    // role without gateways is no error, as in `read_remote`).
    let mut resources = Vec::new();
    for resource in read_resources(&config_now) {
        if resource.kind == "Gateway" {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            if let Err(kube::Error::Api(e)) = api.list(&ListParams::default().limit(1)).await
                && matches!(e.code, 403 | 404)
            {
                continue;
            }
        }
        resources.push(resource);
    }
    // The remote's view, kept current by the watches' own streams: each lists once and then
    // applies its events; only a watch that restarts lists again (kube-runtime's watcher).
    // A change updates the view, and the reading is updated from the changed objects, at most
    // once a second, instead of listing every resource again.
    let kinds: Vec<Resource> = resources
        .iter()
        .map(|r| match r.kind.as_str() {
            "Service" => Resource::Service,
            "EndpointSlice" => Resource::EndpointSlice,
            "Node" => Resource::Node,
            "Pod" => Resource::Pod,
            "Namespace" => Resource::Namespace,
            _ => Resource::Gateway,
        })
        .collect();
    let mut view = RemoteView::default();
    let mut relisting: Vec<Option<BTreeMap<view::Key, Value>>> = vec![None; resources.len()];
    let mut synced = vec![false; resources.len()];
    let streams = resources.iter().enumerate().map(|(i, resource)| {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
        watcher(api, watcher::Config::default().any_semantic())
            .default_backoff()
            .map(move |event| (i, event.map_err(|e| e.to_string())))
            .boxed()
    });
    let mut events = futures::stream::select_all(streams);
    let key = |o: &DynamicObject| {
        (
            o.metadata.namespace.clone().unwrap_or_default(),
            o.metadata.name.clone().unwrap_or_default(),
        )
    };
    let mut dirty = true;
    let mut last_read: Option<std::time::Instant> = None;
    let mut last_error: Option<String> = None;
    loop {
        let ready = synced.iter().all(|s| *s);
        let due = last_read.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if dirty && ready && due {
            tracing::debug!(cluster = %name, "reading remote from its watches");
            let mut found = view.reading(&name, &config.load());
            resolve_gateway(&mut found).await;
            remotes.record(&name, Ok(found), &metrics);
            dirty = false;
            last_read = Some(std::time::Instant::now());
        }
        // Wake for the next allowed reading when changes wait, else at least once a minute
        // (a hostname gateway is resolved again on every reading).
        let wait = match (dirty && ready, last_read) {
            (true, Some(t)) => Duration::from_secs(1).saturating_sub(t.elapsed()),
            _ => Duration::from_secs(60),
        };
        match tokio::time::timeout(wait, events.next()).await {
            Ok(Some((i, Ok(event)))) => {
                last_error = None;
                match event {
                    watcher::Event::Apply(o) => {
                        if let Some(v) = as_discovery_reads_it(o, &resources[i]) {
                            view.apply(kinds[i], v);
                        }
                    }
                    watcher::Event::Delete(o) => view.delete(kinds[i], &key(&o)),
                    watcher::Event::Init => {
                        relisting[i] = Some(BTreeMap::new());
                        metrics
                            .remote_lists
                            .get_or_create(&crate::metrics::ClusterKindLabels {
                                cluster: name.clone(),
                                kind: resources[i].kind.clone(),
                            })
                            .inc();
                    }
                    watcher::Event::InitApply(o) => {
                        let k = key(&o);
                        if let (Some(list), Some(v)) = (
                            relisting[i].as_mut(),
                            as_discovery_reads_it(o, &resources[i]),
                        ) {
                            list.insert(k, v);
                        }
                    }
                    watcher::Event::InitDone => {
                        view.replace(kinds[i], relisting[i].take().unwrap_or_default());
                        synced[i] = true;
                        tracing::debug!(cluster = %name, kind = %resources[i].kind, objects = view.count(kinds[i]), "listed");
                    }
                }
                dirty = true;
            }
            Ok(Some((_, Err(error)))) => {
                // The watch retries with backoff; the reading says whether the remote is down.
                if last_error.as_ref() != Some(&error) {
                    remotes.record(&name, Err(error.clone()), &metrics);
                }
                last_error = Some(error);
            }
            Ok(None) => return,
            Err(_) => dirty = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Gateway;
    use serde_json::json;

    fn objects() -> Vec<Value> {
        vec![
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "istio-eastwestgateway", "namespace": "istio-system",
                "labels": {"istio": "eastwestgateway", "topology.istio.io/network": "network-b"}},
                "spec": {"ports": [{"name": "status-port", "port": 15021}, {"name": "tls", "port": 15443}]},
                "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.20"}]}}}),
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "gw-1", "namespace": "istio-system",
                "labels": {"kubernetes.io/service-name": "istio-eastwestgateway"}},
                "endpoints": [{"addresses": ["10.0.0.9"], "nodeName": "node-b1"}]}),
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-b1",
                "labels": {"topology.kubernetes.io/region": "europe-west4", "topology.kubernetes.io/zone": "europe-west4-a"}}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews", "namespace": "bookinfo"}}),
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "reviews-1", "namespace": "bookinfo",
                "labels": {"kubernetes.io/service-name": "reviews"}},
                "endpoints": [{"addresses": ["10.0.1.1"]}, {"addresses": ["10.0.1.2"], "conditions": {"ready": true}},
                              {"addresses": ["10.0.1.3"], "conditions": {"ready": false}}]}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ratings", "namespace": "bookinfo"}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns", "namespace": "kube-system"}}),
        ]
    }

    #[test]
    fn reads_gateway_locality_network_and_ready_endpoints() {
        let found = discovered_from("cluster-b", &objects(), &Config::example());
        assert_eq!(
            found.gateway,
            Some(Gateway {
                address: "198.51.100.20".into(),
                port: 15443
            })
        );
        assert_eq!(found.network.as_deref(), Some("network-b"));
        assert_eq!(
            found.locality.as_deref(),
            Some("europe-west4/europe-west4-a")
        );
        assert_eq!(
            found.services,
            BTreeMap::from([
                ("bookinfo/ratings".to_owned(), 0),
                ("bookinfo/reviews".to_owned(), 2)
            ])
        );
    }

    #[test]
    fn a_node_is_kept_as_its_topology_labels() {
        let node: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-b1", "uid": "u", "annotations": {"a": "b"},
                "labels": {"topology.kubernetes.io/region": "europe-west4",
                    "topology.kubernetes.io/zone": "europe-west4-a"}},
            "status": {"images": [{"names": ["registry/image:tag"], "sizeBytes": 123}],
                "capacity": {"cpu": "8"}}
        }))
        .unwrap();
        let kept = as_discovery_reads_it(node, &core("Node")).unwrap();
        assert_eq!(
            kept,
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-b1",
                "labels": {"topology.kubernetes.io/region": "europe-west4",
                    "topology.kubernetes.io/zone": "europe-west4-a"}}})
        );
        // What discovery reads of it is all there.
        let found = discovered_from(
            "cluster-b",
            &[&objects()[..2], &[kept]].concat(),
            &Config::example(),
        );
        assert_eq!(
            found.locality.as_deref(),
            Some("europe-west4/europe-west4-a")
        );
    }

    #[test]
    fn an_ambient_east_west_gateway_is_found_by_its_class() {
        // No labelled Service: an istio-east-west Gateway and the Service istiod made for it.
        let mut objects: Vec<Value> = objects().into_iter().skip(1).collect();
        objects[0]["metadata"]["labels"]["kubernetes.io/service-name"] = json!("eastwest");
        objects.push(
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "eastwest", "namespace": "istio-system",
                "labels": {"topology.istio.io/network": "network-b"}},
            "spec": {"gatewayClassName": "istio-east-west",
                "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]},
            "status": {"addresses": [{"type": "IPAddress", "value": "198.51.100.30"}]}}),
        );
        objects.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "eastwest",
            "namespace": "istio-system", "labels": {"gateway.networking.k8s.io/gateway-name": "eastwest"}}}));
        let found = discovered_from("cluster-b", &objects, &Config::example());
        assert_eq!(
            found.gateway,
            Some(Gateway {
                address: "198.51.100.30".into(),
                port: 15008
            })
        );
        assert_eq!(found.network.as_deref(), Some("network-b"));
        assert_eq!(
            found.locality.as_deref(),
            Some("europe-west4/europe-west4-a")
        );
        // The gateway's own Service is not a service to fail over to.
        assert!(!found.services.contains_key("istio-system/eastwest"));
    }

    #[test]
    fn a_gateway_without_an_address_is_not_a_gateway_yet() {
        let mut objects = objects();
        objects[0]["status"] = json!({});
        objects[0]["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove(crate::istio::labels::NETWORK);
        let found = discovered_from("cluster-b", &objects, &Config::example());
        assert_eq!(found.gateway, None);
        // Without an address the remote cannot be added, and a typed one keeps its own.
        let merged = Config::example().with_discovered(&[DiscoveredRemote {
            name: "cluster-c".into(),
            ..found
        }]);
        assert_eq!(merged.remotes.len(), 1);
    }

    /// A hostname gateway is resolved to its addresses; one that does not resolve is said.
    #[tokio::test]
    async fn gateway_hostnames_resolve_to_addresses() {
        let mut found = discovered_from("cluster-b", &objects(), &Config::example());
        found.gateway = Some(Gateway {
            address: "localhost".into(),
            port: 15443,
        });
        resolve_gateway(&mut found).await;
        assert!(found.resolved.iter().any(|a| a == "127.0.0.1"), "{found:?}");
        assert_eq!(found.unresolved, None);
        found.gateway = Some(Gateway {
            address: "gateway.invalid".into(),
            port: 15443,
        });
        found.resolved.clear();
        resolve_gateway(&mut found).await;
        assert!(found.resolved.is_empty());
        assert!(
            found
                .unresolved
                .as_deref()
                .is_some_and(|why| why.starts_with("gateway.invalid"))
        );
        // An IP gateway is left as it is.
        let mut ip = discovered_from("cluster-b", &objects(), &Config::example());
        resolve_gateway(&mut ip).await;
        assert!(ip.resolved.is_empty() && ip.unresolved.is_none());
    }

    #[test]
    fn hostname_address_and_default_port() {
        let mut objects = objects();
        objects[0]["status"]["loadBalancer"]["ingress"] = json!([{"hostname": "gw.example.com"}]);
        objects[0]["spec"]["ports"] = json!([{"name": "mtls", "port": 443}]);
        let found = discovered_from("cluster-b", &objects, &Config::example());
        assert_eq!(
            found.gateway,
            Some(Gateway {
                address: "gw.example.com".into(),
                port: 15443
            })
        );
    }

    #[test]
    fn status_line_names_down_remotes_and_metric_follows() {
        let remotes = Remotes::default();
        let metrics = Metrics::new();
        remotes.record(
            "cluster-b",
            Ok(discovered_from("cluster-b", &objects(), &Config::example())),
            &metrics,
        );
        assert!(
            remotes.describe().starts_with("cluster-b up"),
            "{}",
            remotes.describe()
        );
        remotes.record("cluster-b", Err("connection refused".into()), &metrics);
        let line = remotes.describe();
        assert!(
            line.contains("cluster-b DOWN") && line.contains("connection refused"),
            "{line}"
        );
        // The last known state stays in use.
        assert_eq!(remotes.snapshot().len(), 1);
        assert!(
            metrics
                .encode()
                .contains("failover_guard_remote_up{cluster=\"cluster-b\"} 0")
        );
    }

    #[tokio::test]
    async fn broken_kubeconfig_files_are_named_not_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let broken = dir.path().join("cluster-b");
        std::fs::write(&broken, "users:\n- name: x\n  user: {token: s3cr3t-token\n").unwrap();
        let mut config = Config::example();
        config.discovery.source = DiscoverySource::Kubeconfigs;
        for path in [broken, dir.path().join("missing")] {
            config.discovery.kubeconfigs = BTreeMap::from([("cluster-b".to_owned(), path)]);
            let error = remote_kubeconfigs(None, &config)
                .await
                .unwrap_err()
                .to_string();
            assert!(error.starts_with("kubeconfig of cluster-b"), "{error}");
            assert!(!error.contains("s3cr3t"), "{error}");
        }
        // istio-secrets without a local cluster: nothing to read, no error.
        config.discovery.source = DiscoverySource::IstioSecrets;
        assert!(remote_kubeconfigs(None, &config).await.unwrap().is_empty());
    }

    #[test]
    fn redaction_never_passes_a_token() {
        assert_eq!(redact("bad: token: abc"), "unreadable kubeconfig");
        assert_eq!(
            redact("missing field `clusters`\nsecond line"),
            "missing field `clusters`"
        );
    }
}
