//! The Kubernetes client side: a world backed by watches on the live cluster (the webhook's),
//! and a one-shot listing of every object (`failover-guard audit`).
//!
//! Admission never waits on the API server. Each kind is watched in the background into an
//! indexed [`Index`]; until every watch has listed once, [`ClusterWorld::is_synced`] is false,
//! the webhook passes no world to the engine and W rules stay silent (`/readyz` and the
//! `failover_guard_world_synced` metric say so).
//!
//! The watches are kube-runtime `watcher` streams (list + watch, resumed with backoff). Their
//! events feed [`Index`] rather than a `reflector::Store`: a Store answers by object reference
//! only, and the rules ask "which DestinationRules have this host" or "which policies are in
//! this namespace", which a Store could only answer by scanning every object.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::StreamExt as _;
use kube::{
    Api, Client,
    api::{DynamicObject, ListParams},
    config::{KubeConfigOptions, Kubeconfig},
    core::{ApiResource, GroupVersionKind},
    discovery::Discovery,
    runtime::{WatchStreamExt as _, watcher},
};
use serde_json::Value;

use crate::{
    metrics::Metrics,
    object::Kind,
    world::{Index, World, WorldKind},
};

/// Errors talking to the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot read kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("cannot configure the Kubernetes client: {0}")]
    Config(#[from] kube::config::InferConfigError),
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
}

/// The kinds watched, with their API group and kind name.
const WATCHED: [(WorldKind, &str, &str); 7] = [
    (WorldKind::Namespace, "", "Namespace"),
    (WorldKind::Object(Kind::Service), "", "Service"),
    (
        WorldKind::Object(Kind::DestinationRule),
        "networking.istio.io",
        "DestinationRule",
    ),
    (
        WorldKind::Object(Kind::ServiceEntry),
        "networking.istio.io",
        "ServiceEntry",
    ),
    (
        WorldKind::Object(Kind::Gateway),
        "networking.istio.io",
        "Gateway",
    ),
    (
        WorldKind::Object(Kind::AuthorizationPolicy),
        "security.istio.io",
        "AuthorizationPolicy",
    ),
    (
        WorldKind::Object(Kind::PeerAuthentication),
        "security.istio.io",
        "PeerAuthentication",
    ),
];

/// A client from an explicit kubeconfig and context, or the usual inference (KUBECONFIG,
/// ~/.kube/config, or the in-cluster service account).
pub async fn client(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<Client, ClusterError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            kube::Config::from_custom_kubeconfig(Kubeconfig::read_from(path)?, &options).await?
        }
        None if context.is_some() => kube::Config::from_kubeconfig(&options).await?,
        None => kube::Config::infer().await?,
    };
    Ok(Client::try_from(config)?)
}

/// The API resource serving a kind: core kinds directly, Istio kinds at the version the
/// cluster recommends (v1, v1beta1 or v1alpha3). `None` when the CRD is not installed.
async fn resource(
    client: &Client,
    group: &str,
    kind: &str,
) -> Result<Option<ApiResource>, ClusterError> {
    if group.is_empty() {
        return Ok(Some(ApiResource::from_gvk(&GroupVersionKind::gvk(
            "", "v1", kind,
        ))));
    }
    let discovery = Discovery::new(client.clone())
        .filter(&[group])
        .run()
        .await?;
    Ok(discovery
        .get(group)
        .and_then(|g| g.recommended_kind(kind))
        .map(|(resource, _)| resource))
}

/// Makes a listed or watched object look like a manifest: apiVersion and kind set (list items
/// may lack them), and the bulky fields no rule reads dropped to keep the cache small.
fn normalize(object: DynamicObject, resource: &ApiResource) -> Option<Value> {
    let mut value = serde_json::to_value(object).ok()?;
    let map = value.as_object_mut()?;
    map.insert(
        "apiVersion".into(),
        Value::String(resource.api_version.clone()),
    );
    map.insert("kind".into(), Value::String(resource.kind.clone()));
    if let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
        if let Some(annotations) = metadata
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    map.remove("status");
    Some(value)
}

/// The webhook's world: watched objects, indexed.
pub struct ClusterWorld {
    index: RwLock<Index>,
    synced: Mutex<BTreeMap<&'static str, bool>>,
    all_synced: AtomicBool,
    /// Kinds whose watch fails now (the API server is gone or refuses), with the error: their
    /// last known state is kept and used.
    failing: Mutex<BTreeMap<&'static str, String>>,
    memo: crate::world::Memo,
}

impl ClusterWorld {
    pub fn new(cluster_domain: &str) -> Arc<Self> {
        Arc::new(Self {
            index: RwLock::new(Index::new("default", cluster_domain)),
            synced: Mutex::new(
                WATCHED
                    .iter()
                    .map(|(k, _, _)| (k.as_str(), false))
                    .collect(),
            ),
            all_synced: AtomicBool::new(false),
            failing: Mutex::new(BTreeMap::new()),
            memo: Default::default(),
        })
    }

    /// Every object of the cache, as manifests (for `serve --report-interval`).
    pub fn objects(&self) -> Vec<Value> {
        self.read()
            .objects()
            .into_iter()
            .map(|o| (*o).clone())
            .collect()
    }

    /// Whether every kind has been listed at least once.
    pub fn is_synced(&self) -> bool {
        self.all_synced.load(Ordering::Acquire)
    }

    /// Kinds not listed yet.
    pub fn pending(&self) -> Vec<&'static str> {
        self.synced
            .lock()
            .map(|s| {
                s.iter()
                    .filter(|(_, done)| !**done)
                    .map(|(k, _)| *k)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn mark_synced(&self, kind: WorldKind, metrics: &Metrics) {
        if let Ok(mut synced) = self.synced.lock() {
            synced.insert(kind.as_str(), true);
            if synced.values().all(|s| *s) && !self.all_synced.swap(true, Ordering::AcqRel) {
                metrics.world_synced.set(1);
                tracing::info!("world synced: cross-object rules are active");
            }
        }
    }

    /// Records whether a kind's watch works now.
    fn watch_state(&self, kind: WorldKind, error: Option<String>) {
        if let Ok(mut failing) = self.failing.lock() {
            match error {
                Some(error) => failing.insert(kind.as_str(), error),
                None => failing.remove(kind.as_str()),
            };
        }
    }

    /// Kinds whose watch fails now, with the last error.
    pub fn failing(&self) -> BTreeMap<&'static str, String> {
        self.failing.lock().map(|f| f.clone()).unwrap_or_default()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts one background watch per kind. Returns at once.
    pub fn start(
        self: &Arc<Self>,
        client: Client,
        metrics: Arc<Metrics>,
    ) -> tokio::task::JoinSet<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for (kind, group, name) in WATCHED {
            let (world, client, metrics) = (self.clone(), client.clone(), metrics.clone());
            tasks.spawn(async move { world.watch(kind, group, name, client, metrics).await });
        }
        tasks
    }

    async fn watch(
        &self,
        kind: WorldKind,
        group: &'static str,
        name: &'static str,
        client: Client,
        metrics: Arc<Metrics>,
    ) {
        let resource = loop {
            match resource(&client, group, name).await {
                Ok(Some(resource)) => break resource,
                Ok(None) => {
                    // No CRD: nothing of this kind can exist. Rules may run; look again later.
                    self.mark_synced(kind, &metrics);
                    tracing::warn!(
                        kind = name,
                        group,
                        "kind not served by the cluster; retrying in 30s"
                    );
                }
                Err(error) => {
                    tracing::warn!(kind = name, %error, "discovery failed; retrying in 30s")
                }
            }
            tokio::time::sleep(Duration::from_secs(30)).await;
        };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut relist = Vec::new();
        // A watch that resumes after an outage says nothing until an object changes: while
        // this kind is marked failing, asking the API server tells when it answers again.
        let mut probe = tokio::time::interval(Duration::from_secs(5));
        loop {
            let event = tokio::select! {
                event = stream.next() => match event {
                    Some(event) => event,
                    None => break,
                },
                _ = probe.tick() => {
                    let answers = async {
                        matches!(
                            tokio::time::timeout(Duration::from_secs(5), client.apiserver_version()).await,
                            Ok(Ok(_))
                        )
                    };
                    if self.failing().contains_key(kind.as_str()) && answers.await {
                        self.watch_state(kind, None);
                    }
                    continue;
                }
            };
            if event.is_ok() {
                self.watch_state(kind, None);
            }
            match event {
                Ok(watcher::Event::Apply(object)) => {
                    if let Some(value) = normalize(object, &resource) {
                        self.write().upsert(value);
                    }
                }
                Ok(watcher::Event::Delete(object)) => {
                    if let Some(value) = normalize(object, &resource) {
                        self.write().remove(&value);
                    }
                }
                Ok(watcher::Event::Init) => relist.clear(),
                Ok(watcher::Event::InitApply(object)) => {
                    relist.extend(normalize(object, &resource))
                }
                Ok(watcher::Event::InitDone) => {
                    let objects = std::mem::take(&mut relist);
                    let count = objects.len();
                    self.write().replace_kind(kind, objects);
                    self.mark_synced(kind, &metrics);
                    tracing::info!(kind = name, objects = count, "listed");
                }
                Err(error) => {
                    tracing::warn!(kind = name, %error, "watch error; retrying with backoff");
                    self.watch_state(kind, Some(error.to_string()));
                }
            }
            metrics
                .world_objects
                .get_or_create(&crate::metrics::KindLabels {
                    kind: kind.as_str(),
                })
                .set(self.read().len(kind) as i64);
        }
    }
}

impl World for ClusterWorld {
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.read().service(namespace, name)
    }
    fn namespace(&self, name: &str) -> Option<Arc<Value>> {
        self.read().namespace(name)
    }
    fn destination_rules(&self, host: &str) -> Vec<Arc<Value>> {
        self.read().destination_rules(host)
    }
    fn service_entries(&self, host: &str) -> Vec<Arc<Value>> {
        self.read().service_entries(host)
    }
    fn authorization_policies(&self, namespace: &str) -> Vec<Arc<Value>> {
        self.read().authorization_policies(namespace)
    }
    fn peer_authentications(&self, namespace: &str) -> Vec<Arc<Value>> {
        self.read().peer_authentications(namespace)
    }
    fn namespaces(&self) -> Vec<String> {
        self.read().namespaces()
    }
    fn is_ready(&self) -> bool {
        self.is_synced()
    }
    fn memo(&self) -> Option<&crate::world::Memo> {
        Some(&self.memo)
    }
    fn describe(&self) -> String {
        let failing = self.failing();
        if self.is_synced() && !failing.is_empty() {
            let kinds: Vec<&str> = failing.keys().copied().collect();
            format!(
                "synced; last known state kept while the watches of {} fail: {}",
                kinds.join(", "),
                failing.values().next().map_or("", String::as_str)
            )
        } else if self.is_synced() {
            "synced".into()
        } else {
            format!(
                "syncing ({} not listed yet; cross-object rules silent)",
                self.pending().join(", ")
            )
        }
    }
}

/// Every object of the watched kinds, listed once (optionally from one namespace; Namespaces
/// are always listed so that FG501 knows them).
pub async fn list_all(
    client: &Client,
    namespace: Option<&str>,
) -> Result<Vec<Value>, ClusterError> {
    let mut objects = Vec::new();
    for (kind, group, name) in WATCHED {
        let Some(resource) = resource(client, group, name).await? else {
            continue;
        };
        let scope = namespace.filter(|_| kind != WorldKind::Namespace);
        objects.extend(list_resource(client, &resource, scope).await?);
    }
    Ok(objects)
}

/// Every object of one resource, normalized like the watch cache's, from one namespace or all.
async fn list_resource(
    client: &Client,
    resource: &ApiResource,
    namespace: Option<&str>,
) -> Result<Vec<Value>, ClusterError> {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    };
    let list = api.list(&ListParams::default()).await?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|o| normalize(o, resource))
        .collect())
}

/// The workloads behind Services, listed once for `simulate --cluster`: EndpointSlices and
/// Pods (of one namespace, or all) and Nodes (for their topology labels). Not watched: the
/// webhook never needs them.
pub async fn list_workloads(
    client: &Client,
    namespace: Option<&str>,
) -> Result<Vec<Value>, ClusterError> {
    let mut objects = Vec::new();
    for (group, version, kind, namespaced) in [
        ("discovery.k8s.io", "v1", "EndpointSlice", true),
        ("", "v1", "Pod", true),
        ("", "v1", "Node", false),
    ] {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let scope = namespace.filter(|_| namespaced);
        objects.extend(list_resource(client, &resource, scope).await?);
    }
    Ok(objects)
}

/// Creates or updates PolicyReports (server-side apply, field manager `failover-guard`), so
/// the cluster's reports follow what the rules find (`serve --report-interval`).
pub async fn publish_reports(client: &Client, reports: &[Value]) -> Result<(), ClusterError> {
    use kube::api::{Patch, PatchParams};
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "wgpolicyk8s.io",
        "v1alpha2",
        "PolicyReport",
    ));
    let params = PatchParams::apply("failover-guard").force();
    for report in reports {
        let (Some(namespace), Some(name)) = (
            report
                .pointer("/metadata/namespace")
                .and_then(Value::as_str),
            report.pointer("/metadata/name").and_then(Value::as_str),
        ) else {
            continue;
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        api.patch(name, &params, &Patch::Apply(report)).await?;
    }
    Ok(())
}

/// One key of a ConfigMap, read once: `None` when there is no such ConfigMap or key.
pub async fn read_config_map_key(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Option<String>, ClusterError> {
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), namespace);
    Ok(api
        .get_opt(name)
        .await?
        .and_then(|cm| cm.data)
        .and_then(|mut data| data.remove(key)))
}

/// Follows one ConfigMap (the `istio` mesh config): `on_change` gets its `data` key `key` on
/// every change, `None` while the ConfigMap does not exist or lacks the key. A list-and-watch
/// of that one object, resumed with backoff.
pub async fn follow_config_map(
    client: Client,
    namespace: String,
    name: String,
    key: &'static str,
    mut on_change: impl FnMut(Option<String>),
) {
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api, config).default_backoff().boxed();
    let data = |cm: &k8s_openapi::api::core::v1::ConfigMap| {
        cm.data.as_ref().and_then(|d| d.get(key)).cloned()
    };
    let mut listed: Option<Option<String>> = None;
    let mut last: Option<Option<String>> = None;
    while let Some(event) = stream.next().await {
        let now = match event {
            Ok(watcher::Event::Apply(cm)) => Some(data(&cm)),
            Ok(watcher::Event::Delete(_)) => Some(None),
            Ok(watcher::Event::Init) => {
                listed = Some(None);
                None
            }
            Ok(watcher::Event::InitApply(cm)) => {
                listed = Some(data(&cm));
                None
            }
            Ok(watcher::Event::InitDone) => listed.take(),
            Err(error) => {
                tracing::warn!(%namespace, %name, %error, "ConfigMap watch error; retrying with backoff");
                None
            }
        };
        if let Some(now) = now
            && last.as_ref() != Some(&now)
        {
            last = Some(now.clone());
            on_change(now);
        }
    }
}
