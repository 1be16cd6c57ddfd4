//! One remote cluster as discovery reads it, kept current object by object.
//!
//! The watches of [`super::watch_remote`] hand every change to [`RemoteView::apply`] or
//! [`RemoteView::delete`]; [`RemoteView::reading`] then updates the remote's reading
//! ([`DiscoveredRemote`]) from the objects that changed since the last one: a changed
//! EndpointSlice recounts its own Service's ready endpoints, a changed Service its own entry.
//! Only a change of what the reading depends on as a whole (the east-west gateway, or the
//! configuration's scope and discovery settings) recomputes it whole. Lookups are by key (a
//! Service's slices are indexed by the `kubernetes.io/service-name` label), so neither cost
//! grows with the size of the remote.
//!
//! Pure: no I/O. [`super::discovered_from`] is the same reading of a list of objects.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use serde_json::Value;

use crate::{
    config::{Config, DiscoveredRemote, Discovery, Gateway, Scope},
    object::{array_at, str_at},
};

/// The kinds discovery reads of a remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    Service,
    EndpointSlice,
    Node,
    Pod,
    Namespace,
    Gateway,
}

impl Resource {
    /// The kind of an object by its `apiVersion` and `kind`.
    pub fn of(object: &Value) -> Option<Resource> {
        let api = str_at(object, &["apiVersion"]).unwrap_or("");
        Some(match (api, str_at(object, &["kind"]).unwrap_or("")) {
            ("v1", "Service") => Resource::Service,
            ("discovery.k8s.io/v1", "EndpointSlice") => Resource::EndpointSlice,
            ("v1", "Node") => Resource::Node,
            ("v1", "Pod") => Resource::Pod,
            ("v1", "Namespace") => Resource::Namespace,
            ("gateway.networking.k8s.io/v1", "Gateway") => Resource::Gateway,
            _ => return None,
        })
    }

    /// Whether the native models' workload view holds this kind (istiod's remote registry).
    fn is_workload(self) -> bool {
        !matches!(self, Resource::Gateway)
    }
}

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects.
pub type Key = (String, String);

/// The label that ties an EndpointSlice to its Service.
const SERVICE_NAME: &str = "kubernetes.io/service-name";

/// The class of ambient's east-west gateways (pilot's constants.EastWestGatewayClassName).
const EAST_WEST_CLASS: &str = "istio-east-west";

/// The configuration a reading depends on: a change of it recomputes the reading whole.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    scope: Scope,
    discovery: Discovery,
    native: bool,
}

impl Settings {
    fn of(config: &Config) -> Settings {
        Settings {
            scope: config.scope.clone(),
            discovery: config.discovery.clone(),
            native: config.multicluster.native(),
        }
    }
}

/// One remote's objects, indexed, and its reading as last updated.
#[derive(Debug, Default)]
pub struct RemoteView {
    objects: BTreeMap<Resource, BTreeMap<Key, Arc<Value>>>,
    /// Per Service: the names of its EndpointSlices.
    slices_of: BTreeMap<Key, BTreeSet<String>>,
    /// Services whose entry in the reading is out of date.
    changed: BTreeSet<Key>,
    /// Whether the east-west gateway (its Service, Gateway, endpoints or nodes) may have
    /// changed.
    gateway_changed: bool,
    /// Whether a kind of the native models' workload view changed.
    workloads_changed: bool,
    reading: Option<(Settings, DiscoveredRemote)>,
    /// The gateway Service the reading excludes from the Services.
    gateway_service: Option<Key>,
    /// The Services whose endpoints give the gateway its locality.
    gateway_sources: BTreeSet<Key>,
}

fn key_of(object: &Value) -> Key {
    (
        str_at(object, &["metadata", "namespace"])
            .unwrap_or("")
            .to_owned(),
        str_at(object, &["metadata", "name"])
            .unwrap_or("")
            .to_owned(),
    )
}

/// The Service an EndpointSlice belongs to.
fn slice_service(slice: &Value) -> Option<Key> {
    let (namespace, _) = key_of(slice);
    str_at(slice, &["metadata", "labels", SERVICE_NAME]).map(|s| (namespace, s.to_owned()))
}

impl RemoteView {
    /// A view of these objects (kinds discovery does not read are ignored).
    pub fn from_objects(objects: &[Value]) -> RemoteView {
        let mut view = RemoteView::default();
        for object in objects {
            if let Some(resource) = Resource::of(object) {
                view.apply(resource, object.clone());
            }
        }
        view
    }

    /// How many objects of this kind the view holds.
    pub fn count(&self, resource: Resource) -> usize {
        self.objects.get(&resource).map_or(0, BTreeMap::len)
    }

    /// An object was added or changed.
    pub fn apply(&mut self, resource: Resource, object: Value) {
        let key = key_of(&object);
        self.note(resource, &key);
        let object = Arc::new(object);
        let old = self
            .objects
            .entry(resource)
            .or_default()
            .insert(key.clone(), object.clone());
        if resource == Resource::EndpointSlice {
            self.reindex_slice(&key, old.as_deref(), Some(&object));
        }
    }

    /// An object was deleted.
    pub fn delete(&mut self, resource: Resource, key: &Key) {
        let old = self
            .objects
            .get_mut(&resource)
            .and_then(|objects| objects.remove(key));
        if old.is_some() {
            self.note(resource, key);
        }
        if resource == Resource::EndpointSlice {
            self.reindex_slice(key, old.as_deref(), None);
        }
    }

    /// A kind was listed again (a watch restart): its objects are replaced by these, and what
    /// differs counts as changed.
    pub fn replace(&mut self, resource: Resource, objects: BTreeMap<Key, Value>) {
        let gone: Vec<Key> = self
            .objects
            .get(&resource)
            .map(|current| {
                current
                    .keys()
                    .filter(|k| !objects.contains_key(*k))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for key in gone {
            self.delete(resource, &key);
        }
        for (key, object) in objects {
            let same = self
                .objects
                .get(&resource)
                .and_then(|current| current.get(&key))
                .is_some_and(|current| **current == object);
            if !same {
                self.apply(resource, object);
            }
        }
        self.objects.entry(resource).or_default();
    }

    /// Marks what a change of this object makes out of date.
    fn note(&mut self, resource: Resource, key: &Key) {
        if resource.is_workload() {
            self.workloads_changed = true;
        }
        match resource {
            Resource::Service => {
                self.changed.insert(key.clone());
                // It may be (or stop being) the gateway, or an ambient gateway's Service.
                self.gateway_changed = true;
            }
            // Its Service (before and after) is marked by `reindex_slice`.
            Resource::EndpointSlice => {}
            Resource::Node | Resource::Gateway => self.gateway_changed = true,
            Resource::Pod | Resource::Namespace => {}
        }
    }

    fn slice_changed(&mut self, service: Key) {
        if self.gateway_sources.contains(&service) {
            self.gateway_changed = true;
        }
        self.changed.insert(service);
    }

    /// Keeps `slices_of` in step with one slice (its Service label may change).
    fn reindex_slice(&mut self, key: &Key, old: Option<&Value>, new: Option<&Value>) {
        let (old_service, new_service) = (old.and_then(slice_service), new.and_then(slice_service));
        if let Some(service) = &old_service
            && old_service != new_service
        {
            if let Some(names) = self.slices_of.get_mut(service) {
                names.remove(&key.1);
                if names.is_empty() {
                    self.slices_of.remove(service);
                }
            }
            self.slice_changed(service.clone());
        }
        if let Some(service) = new_service {
            self.slices_of
                .entry(service.clone())
                .or_default()
                .insert(key.1.clone());
            self.slice_changed(service);
        }
    }

    fn get(&self, resource: Resource, key: &Key) -> Option<&Value> {
        self.objects
            .get(&resource)
            .and_then(|objects| objects.get(key))
            .map(|o| &**o)
    }

    fn all(&self, resource: Resource) -> impl Iterator<Item = (&Key, &Value)> {
        self.objects
            .get(&resource)
            .into_iter()
            .flat_map(|objects| objects.iter().map(|(k, v)| (k, &**v)))
    }

    /// The EndpointSlices of a Service.
    fn slices(&self, service: &Key) -> impl Iterator<Item = &Value> {
        self.slices_of
            .get(service)
            .into_iter()
            .flatten()
            .filter_map(|name| {
                self.get(Resource::EndpointSlice, &(service.0.clone(), name.clone()))
            })
    }

    /// A Service's ready endpoints: EndpointSlice endpoints not marked unready.
    fn ready(&self, service: &Key) -> u32 {
        let ready = self
            .slices(service)
            .flat_map(|s| array_at(s, &["endpoints"]))
            .filter(|e| {
                e.get("conditions")
                    .and_then(|c| c.get("ready"))
                    .and_then(Value::as_bool)
                    != Some(false)
            })
            .count();
        u32::try_from(ready).unwrap_or(u32::MAX)
    }

    /// The locality of the first node one of a Service's endpoints runs on.
    fn locality_of(&self, service: &Key) -> Option<String> {
        self.slices(service)
            .flat_map(|s| array_at(s, &["endpoints"]))
            .filter_map(|e| str_at(e, &["nodeName"]))
            .filter_map(|n| self.get(Resource::Node, &(String::new(), n.to_owned())))
            .find_map(node_locality)
    }

    /// The reading as of every change so far, updated from what changed since the last one.
    pub fn reading(&mut self, name: &str, config: &Config) -> DiscoveredRemote {
        let settings = Settings::of(config);
        let whole = match &self.reading {
            Some((last, reading)) => *last != settings || reading.name != name,
            None => true,
        };
        let mut reading = match self.reading.take() {
            Some((_, reading)) if !whole => reading,
            _ => DiscoveredRemote {
                name: name.to_owned(),
                ..DiscoveredRemote::default()
            },
        };
        let mut changed = std::mem::take(&mut self.changed);
        if whole || self.gateway_changed {
            let before = self.gateway_service.clone();
            self.read_gateway(&mut reading, config);
            changed.extend(before);
            changed.extend(self.gateway_service.clone());
        }
        if whole {
            reading.services.clear();
            changed = self
                .all(Resource::Service)
                .map(|(k, _)| k.clone())
                .collect();
        }
        for key in changed {
            let entry = format!("{}/{}", key.0, key.1);
            let counted = self.get(Resource::Service, &key).is_some_and(|svc| {
                config.in_scope(&key.0)
                    && self.gateway_service.as_ref() != Some(&key)
                    && !crate::istio::ambient::is_gateway_service(svc)
            });
            if counted {
                reading.services.insert(entry, self.ready(&key));
            } else {
                reading.services.remove(&entry);
            }
        }
        if settings.native {
            if whole || self.workloads_changed || reading.workloads.is_none() {
                reading.workloads = Some(Arc::new(crate::istio::kube::RemoteObjects::new(
                    self.workloads(),
                )));
            }
        } else {
            reading.workloads = None;
        }
        self.gateway_changed = false;
        self.workloads_changed = false;
        self.reading = Some((settings, reading.clone()));
        reading
    }

    /// The native models' view of the remote: its Services, EndpointSlices, Nodes, Pods and
    /// Namespaces, as istiod's remote registry reads them.
    fn workloads(&self) -> Vec<Arc<Value>> {
        self.objects
            .iter()
            .filter(|(resource, _)| resource.is_workload())
            .flat_map(|(_, objects)| objects.values().cloned())
            .collect()
    }

    /// The east-west gateway Service (in `discovery.gatewayNamespace`, with the labels of
    /// `discovery.gatewaySelector`, else `scope.gatewaySelector`): its LoadBalancer address
    /// (IP, else hostname), its port named `tls` (else `discovery.gatewayPort`), its
    /// `topology.istio.io/network` label and the topology labels of the nodes its endpoints
    /// run on. Without one, an ambient east-west gateway.
    fn read_gateway(&mut self, out: &mut DiscoveredRemote, config: &Config) {
        out.gateway = None;
        out.network = None;
        out.locality = None;
        let selector = if config.discovery.gateway_selector.is_empty() {
            &config.scope.gateway_selector
        } else {
            &config.discovery.gateway_selector
        };
        let namespace = &config.discovery.gateway_namespace;
        let gateway_service = self
            .in_namespace(Resource::Service, namespace)
            .find(|(_, s)| {
                selector
                    .iter()
                    .all(|(k, v)| str_at(s, &["metadata", "labels", k]) == Some(v.as_str()))
            })
            .map(|(k, s)| (k.clone(), s.clone()));
        self.gateway_service = gateway_service.as_ref().map(|(k, _)| k.clone());
        self.gateway_sources = self.gateway_service.iter().cloned().collect();
        if let Some((key, gw)) = gateway_service {
            let ingress = array_at(&gw, &["status", "loadBalancer", "ingress"]).first();
            let address = ingress.and_then(|i| {
                str_at(i, &["ip"])
                    .filter(|a| !a.is_empty())
                    .or_else(|| str_at(i, &["hostname"]).filter(|h| !h.is_empty()))
            });
            let port = array_at(&gw, &["spec", "ports"])
                .iter()
                .find(|p| str_at(p, &["name"]) == Some("tls"))
                .and_then(|p| p.get("port").and_then(Value::as_u64))
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(config.discovery.gateway_port);
            out.gateway = address.map(|address| Gateway {
                address: address.to_owned(),
                port,
            });
            out.network = str_at(&gw, &["metadata", "labels", crate::istio::labels::NETWORK])
                .map(str::to_owned);
            out.locality = self.locality_of(&key);
            return;
        }
        // An ambient east-west gateway: a Gateway of class istio-east-west (what pilot's
        // ambient index takes for a network's gateway, ambient/networks.go
        // k8sGatewayToNetworkGateways), at its first status address and its HBONE listener's
        // port; its locality is its pods', through the Service istiod creates for it.
        let Some((key, gw)) = self
            .all(Resource::Gateway)
            .find(|(_, g)| str_at(g, &["spec", "gatewayClassName"]) == Some(EAST_WEST_CLASS))
        else {
            return;
        };
        let address = array_at(gw, &["status", "addresses"])
            .first()
            .and_then(|a| str_at(a, &["value"]))
            .filter(|a| !a.is_empty());
        let port = array_at(gw, &["spec", "listeners"])
            .iter()
            .find(|l| str_at(l, &["protocol"]) == Some("HBONE"))
            .and_then(|l| l.get("port").and_then(Value::as_u64))
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(crate::istio::multicluster::HBONE_PORT);
        out.gateway = address.map(|address| Gateway {
            address: address.to_owned(),
            port,
        });
        out.network =
            str_at(gw, &["metadata", "labels", crate::istio::labels::NETWORK]).map(str::to_owned);
        let (ns, gw_name) = key.clone();
        let sources: Vec<Key> = self
            .in_namespace(Resource::Service, &ns)
            .filter(|(_, s)| {
                str_at(
                    s,
                    &["metadata", "labels", crate::istio::ambient::GATEWAY_NAME],
                ) == Some(gw_name.as_str())
            })
            .map(|(k, _)| k.clone())
            .collect();
        out.locality = sources.iter().find_map(|k| self.locality_of(k));
        self.gateway_sources = sources.into_iter().collect();
    }

    fn in_namespace<'a>(
        &'a self,
        resource: Resource,
        namespace: &'a str,
    ) -> impl Iterator<Item = (&'a Key, &'a Value)> {
        self.objects
            .get(&resource)
            .into_iter()
            .flat_map(move |objects| {
                objects
                    .range((namespace.to_owned(), String::new())..)
                    .take_while(move |(k, _)| k.0 == namespace)
                    .map(|(k, v)| (k, &**v))
            })
    }
}

/// `region/zone` (or `region`) of a Node's topology labels.
fn node_locality(node: &Value) -> Option<String> {
    let label = |k: &str| str_at(node, &["metadata", "labels", k]);
    let region = label(crate::istio::labels::REGION)?;
    Some(match label(crate::istio::labels::ZONE) {
        Some(zone) => format!("{region}/{zone}"),
        None => region.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(ns: &str, name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}})
    }

    fn slice(ns: &str, name: &str, service: &str, ready: usize, unready: usize) -> Value {
        let endpoints: Vec<Value> = (0..ready)
            .map(|i| json!({"addresses": [format!("10.0.0.{i}")], "conditions": {"ready": true}, "nodeName": "n1"}))
            .chain((0..unready).map(|i| json!({"addresses": [format!("10.0.1.{i}")], "conditions": {"ready": false}})))
            .collect();
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": ns, "labels": {SERVICE_NAME: service}},
            "endpoints": endpoints})
    }

    fn gateway_objects() -> Vec<Value> {
        vec![
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "istio-eastwestgateway", "namespace": "istio-system",
                "labels": {"istio": "eastwestgateway", "topology.istio.io/network": "network-b"}},
                "spec": {"ports": [{"name": "tls", "port": 15443}]},
                "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.20"}]}}}),
            slice("istio-system", "gw-1", "istio-eastwestgateway", 1, 0),
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1",
                "labels": {"topology.kubernetes.io/region": "r1", "topology.kubernetes.io/zone": "z1"}}}),
        ]
    }

    /// The reading updated change by change equals the reading of the same objects read
    /// whole, after every step.
    #[test]
    fn incremental_reading_equals_a_whole_reading() {
        let config = Config::example();
        let mut objects = gateway_objects();
        objects.push(service("bookinfo", "reviews"));
        objects.push(slice("bookinfo", "reviews-1", "reviews", 3, 1));
        let mut view = RemoteView::from_objects(&objects);
        let whole = |objects: &[Value]| RemoteView::from_objects(objects).reading("b", &config);
        assert_eq!(view.reading("b", &config), whole(&objects));
        assert_eq!(view.reading("b", &config).services["bookinfo/reviews"], 3);

        // A second slice, then a scale-down of the first.
        let second = slice("bookinfo", "reviews-2", "reviews", 2, 0);
        view.apply(Resource::EndpointSlice, second.clone());
        objects.push(second);
        assert_eq!(view.reading("b", &config).services["bookinfo/reviews"], 5);
        let scaled = slice("bookinfo", "reviews-1", "reviews", 0, 4);
        view.apply(Resource::EndpointSlice, scaled.clone());
        objects[4] = scaled;
        assert_eq!(view.reading("b", &config), whole(&objects));
        assert_eq!(view.reading("b", &config).services["bookinfo/reviews"], 2);

        // A slice moved to another Service leaves the first.
        let moved = slice("bookinfo", "reviews-2", "ratings", 2, 0);
        view.apply(Resource::EndpointSlice, moved);
        view.apply(Resource::Service, service("bookinfo", "ratings"));
        let reading = view.reading("b", &config);
        assert_eq!(reading.services["bookinfo/reviews"], 0);
        assert_eq!(reading.services["bookinfo/ratings"], 2);

        // A deleted Service goes; the gateway moves to another node's locality.
        view.delete(Resource::Service, &("bookinfo".into(), "reviews".into()));
        view.apply(
            Resource::Node,
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1",
                "labels": {"topology.kubernetes.io/region": "r2"}}}),
        );
        let reading = view.reading("b", &config);
        assert!(!reading.services.contains_key("bookinfo/reviews"));
        assert_eq!(reading.locality.as_deref(), Some("r2"));
        assert_eq!(
            reading.gateway.map(|g| g.address).as_deref(),
            Some("198.51.100.20")
        );
        // The gateway Service is never counted as a Service.
        assert!(
            !reading
                .services
                .contains_key("istio-system/istio-eastwestgateway")
        );
    }

    /// A configuration change (here: a namespace excluded) recomputes the reading whole.
    #[test]
    fn a_new_scope_recomputes_the_reading() {
        let mut objects = gateway_objects();
        objects.push(service("bookinfo", "reviews"));
        let mut view = RemoteView::from_objects(&objects);
        let mut config = Config::example();
        assert!(
            view.reading("b", &config)
                .services
                .contains_key("bookinfo/reviews")
        );
        config.scope.exclude_namespaces.push("bookinfo".into());
        assert!(
            !view
                .reading("b", &config)
                .services
                .contains_key("bookinfo/reviews")
        );
    }

    /// A relist after a watch restart marks only what differs, and drops what is gone.
    #[test]
    fn a_relist_replaces_a_kind() {
        let mut objects = gateway_objects();
        objects.push(service("bookinfo", "reviews"));
        objects.push(service("bookinfo", "ratings"));
        let mut view = RemoteView::from_objects(&objects);
        let config = Config::example();
        let _ = view.reading("b", &config);
        let relisted: BTreeMap<Key, Value> = [service("bookinfo", "reviews")]
            .into_iter()
            .chain(gateway_objects().into_iter().take(1))
            .map(|o| (key_of(&o), o))
            .collect();
        view.replace(Resource::Service, relisted);
        assert_eq!(view.count(Resource::Service), 2);
        let reading = view.reading("b", &config);
        assert!(reading.services.contains_key("bookinfo/reviews"));
        assert!(!reading.services.contains_key("bookinfo/ratings"));
    }

    proptest::proptest! {
        /// Whatever the order of changes, the reading updated from them equals a whole
        /// reading of the objects they leave.
        #[test]
        fn any_sequence_of_changes_reads_like_the_result(
            steps in proptest::collection::vec((0u8..6, 0usize..4, 0usize..3, 0usize..4), 1..40)
        ) {
            let config = Config::example();
            let mut view = RemoteView::from_objects(&gateway_objects());
            let mut now: BTreeMap<(Resource, Key), Value> = gateway_objects()
                .into_iter()
                .map(|o| ((Resource::of(&o).unwrap(), key_of(&o)), o))
                .collect();
            let services = ["reviews", "ratings", "istio-eastwestgateway", "details"];
            for (op, n, svc, ready) in steps {
                let ns = if svc == 2 { "istio-system" } else { "bookinfo" };
                let (resource, object) = match op {
                    0 | 1 => (Resource::EndpointSlice, slice(ns, &format!("s{n}"), services[svc], ready, 1)),
                    2 | 5 => (Resource::Service, service(ns, services[svc])),
                    _ => (Resource::Node, json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1",
                        "labels": {"topology.kubernetes.io/region": format!("r{ready}")}}})),
                };
                let key = key_of(&object);
                if op == 5 || (op == 1 && n == 0) {
                    view.delete(resource, &key);
                    now.remove(&(resource, key));
                } else {
                    view.apply(resource, object.clone());
                    now.insert((resource, key), object);
                }
                if n == 3 {
                    let _ = view.reading("b", &config);
                }
            }
            let objects: Vec<Value> = now.into_values().collect();
            let whole = RemoteView::from_objects(&objects).reading("b", &config);
            proptest::prop_assert_eq!(view.reading("b", &config), whole);
        }
    }
}
