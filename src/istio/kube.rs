//! A cluster's Kubernetes objects, looked up the way pilot's kube registry finds them (its
//! informers' indexes: an object by namespace and name, a Service's EndpointSlices by the
//! `kubernetes.io/service-name` label, a pod by its IP for an endpoint without a targetRef;
//! pilot/pkg/serviceregistry/kube/controller/endpointslice.go, pod.go `getPodByIP`).
//!
//! The index holds positions into the objects it was built from, so it can live beside them
//! (a remote's workloads, built once per reading) or be built for one simulation over
//! borrowed manifests, and a lookup never scans the cluster.

use std::{borrow::Borrow, collections::HashMap, sync::Arc};

use serde_json::Value;

use crate::object::str_at;

/// `(group, kind, namespace, name)`; the namespace is empty for cluster-scoped kinds.
type Key = (String, String, String, String);

/// Positions of a cluster's objects by what pilot looks them up by.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KubeIndex {
    by_name: HashMap<Key, usize>,
    slices: HashMap<(String, String), Vec<usize>>,
    pods_by_ip: HashMap<String, usize>,
}

fn group_kind(object: &Value) -> (&str, &str) {
    let api = str_at(object, &["apiVersion"]).unwrap_or("");
    let group = api.split_once('/').map_or("", |(g, _)| g);
    (group, str_at(object, &["kind"]).unwrap_or(""))
}

/// An object's namespace as the registry keys it (`default` when unset, for namespaced kinds;
/// empty for Nodes and Namespaces).
fn namespace_of(object: &Value, kind: &str) -> String {
    if matches!(kind, "Node" | "Namespace") {
        return String::new();
    }
    str_at(object, &["metadata", "namespace"])
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
        .to_owned()
}

impl KubeIndex {
    /// The index of `objects` (the first of two objects with one key wins, as a lookup by
    /// scanning in order would find it).
    pub fn new<V: Borrow<Value>>(objects: &[V]) -> KubeIndex {
        let mut index = KubeIndex::default();
        for (i, object) in objects.iter().enumerate() {
            let object = object.borrow();
            let (group, kind) = group_kind(object);
            let namespace = namespace_of(object, kind);
            let name = str_at(object, &["metadata", "name"]).unwrap_or("");
            index
                .by_name
                .entry((group.into(), kind.into(), namespace.clone(), name.into()))
                .or_insert(i);
            match (group, kind) {
                ("discovery.k8s.io", "EndpointSlice") => {
                    if let Some(service) = str_at(
                        object,
                        &["metadata", "labels", "kubernetes.io/service-name"],
                    ) {
                        index
                            .slices
                            .entry((namespace, service.to_owned()))
                            .or_default()
                            .push(i);
                    }
                }
                ("", "Pod") => {
                    if let Some(ip) = str_at(object, &["status", "podIP"]) {
                        index.pods_by_ip.entry(ip.to_owned()).or_insert(i);
                    }
                }
                _ => {}
            }
        }
        index
    }
}

/// Objects with their index.
pub struct Lookup<'a, V> {
    objects: &'a [V],
    index: &'a KubeIndex,
}

impl<V> Clone for Lookup<'_, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Lookup<'_, V> {}

impl<'a, V: Borrow<Value>> Lookup<'a, V> {
    /// `index` must have been built from `objects`.
    pub fn new(objects: &'a [V], index: &'a KubeIndex) -> Self {
        Lookup { objects, index }
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().map(Borrow::borrow)
    }

    fn at(&self, i: usize) -> Option<&'a Value> {
        self.objects.get(i).map(Borrow::borrow)
    }

    /// The object of this group and kind named `name` in `namespace` (ignored for Nodes and
    /// Namespaces).
    pub fn get(&self, group: &str, kind: &str, namespace: &str, name: &str) -> Option<&'a Value> {
        let namespace = if matches!(kind, "Node" | "Namespace") {
            ""
        } else {
            namespace
        };
        let key = (group.into(), kind.into(), namespace.into(), name.into());
        self.index.by_name.get(&key).and_then(|i| self.at(*i))
    }

    /// The EndpointSlices of Service `namespace/name`.
    pub fn slices_of(&self, namespace: &str, name: &str) -> Vec<&'a Value> {
        self.index
            .slices
            .get(&(namespace.to_owned(), name.to_owned()))
            .into_iter()
            .flatten()
            .filter_map(|i| self.at(*i))
            .collect()
    }

    /// The pod with this IP.
    pub fn pod_by_ip(&self, ip: &str) -> Option<&'a Value> {
        self.index.pods_by_ip.get(ip).and_then(|i| self.at(*i))
    }
}

/// A remote cluster's objects as istiod's remote registry reads them (native models), with
/// their index, built once per reading of the remote. `Eq`, so that comparing two readings that
/// share these (an `Arc`) is a pointer comparison, and comparing two objects shared with
/// discovery's store is too.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RemoteObjects {
    objects: Vec<Arc<Value>>,
    index: KubeIndex,
}

impl RemoteObjects {
    pub fn new(objects: Vec<Arc<Value>>) -> RemoteObjects {
        let index = KubeIndex::new(&objects);
        RemoteObjects { objects, index }
    }

    pub fn lookup(&self) -> Lookup<'_, Arc<Value>> {
        Lookup::new(&self.objects, &self.index)
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_what_a_scan_finds() {
        let objects = vec![
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "ns"}, "status": {"podIP": "10.0.0.1"}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "status": {"podIP": "10.0.0.2"}}),
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}),
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "s1", "namespace": "ns",
                "labels": {"kubernetes.io/service-name": "svc"}}}),
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "s2", "namespace": "other",
                "labels": {"kubernetes.io/service-name": "svc"}}}),
        ];
        let index = KubeIndex::new(&objects);
        let lookup = Lookup::new(&objects, &index);
        assert_eq!(lookup.get("", "Pod", "ns", "a"), Some(&objects[0]));
        assert_eq!(lookup.get("", "Pod", "default", "a"), Some(&objects[1]));
        assert_eq!(lookup.get("", "Node", "whatever", "n1"), Some(&objects[2]));
        assert_eq!(lookup.slices_of("ns", "svc"), vec![&objects[3]]);
        assert_eq!(lookup.pod_by_ip("10.0.0.2"), Some(&objects[1]));
        assert_eq!(lookup.pod_by_ip("10.0.0.3"), None);
        assert!(lookup.get("", "Service", "ns", "svc").is_none());
    }
}
