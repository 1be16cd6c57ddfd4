//! The "world": other objects that cross-object (W) rules look up. The engine only sees this
//! trait; the webhook backs it with a watch cache, `check` with the manifests it was given.
//! Without a world, W rules stay silent.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
};

use serde_json::Value;

use crate::object::{Kind, Subject, array_at, fqdn, str_at};

/// Read access to the other objects of a cluster (or of a set of manifests).
pub trait World: Send + Sync {
    /// The Service `name` in `namespace`.
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Value>>;
    /// DestinationRules whose `spec.host` expands to this fully qualified host.
    fn destination_rules(&self, host: &str) -> Vec<Arc<Value>>;
    /// ServiceEntries that list this fully qualified host.
    fn service_entries(&self, host: &str) -> Vec<Arc<Value>>;
    /// AuthorizationPolicies in a namespace.
    fn authorization_policies(&self, namespace: &str) -> Vec<Arc<Value>>;
    /// Every namespace known to the world.
    fn namespaces(&self) -> Vec<String>;
}

/// A world made of parsed manifests, indexed once.
#[derive(Default)]
pub struct ManifestWorld {
    services: HashMap<(String, String), Arc<Value>>,
    destination_rules: HashMap<String, Vec<Arc<Value>>>,
    service_entries: HashMap<String, Vec<Arc<Value>>>,
    authorization_policies: HashMap<String, Vec<Arc<Value>>>,
    namespaces: BTreeSet<String>,
}

impl ManifestWorld {
    /// Indexes `objects`; objects without a namespace are taken to live in `default_namespace`.
    pub fn new<'a>(
        objects: impl IntoIterator<Item = &'a Value>,
        default_namespace: &str,
        cluster_domain: &str,
    ) -> Self {
        let mut world = ManifestWorld::default();
        for object in objects {
            world.insert(object.clone(), default_namespace, cluster_domain);
        }
        world
    }

    /// Adds one object.
    pub fn insert(&mut self, object: Value, default_namespace: &str, cluster_domain: &str) {
        let Some(kind) = Kind::of(&object) else {
            if let Some(name) = str_at(&object, &["metadata", "name"])
                .filter(|_| str_at(&object, &["kind"]) == Some("Namespace"))
            {
                self.namespaces.insert(name.to_owned());
            }
            return;
        };
        let subject = Subject::of(&object, kind, default_namespace);
        self.namespaces.insert(subject.namespace.clone());
        let object = Arc::new(object);
        match kind {
            Kind::Service => {
                self.services
                    .insert((subject.namespace, subject.name), object);
            }
            Kind::DestinationRule => {
                if let Some(host) = str_at(&object, &["spec", "host"]) {
                    let host = fqdn(host, &subject.namespace, cluster_domain);
                    self.destination_rules.entry(host).or_default().push(object);
                }
            }
            Kind::ServiceEntry => {
                for host in array_at(&object, &["spec", "hosts"])
                    .iter()
                    .filter_map(Value::as_str)
                {
                    self.service_entries
                        .entry(host.to_owned())
                        .or_default()
                        .push(object.clone());
                }
            }
            Kind::AuthorizationPolicy => {
                self.authorization_policies
                    .entry(subject.namespace)
                    .or_default()
                    .push(object);
            }
            Kind::Gateway => {}
        }
    }
}

impl World for ManifestWorld {
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.services
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    fn destination_rules(&self, host: &str) -> Vec<Arc<Value>> {
        self.destination_rules
            .get(host)
            .cloned()
            .unwrap_or_default()
    }

    fn service_entries(&self, host: &str) -> Vec<Arc<Value>> {
        self.service_entries.get(host).cloned().unwrap_or_default()
    }

    fn authorization_policies(&self, namespace: &str) -> Vec<Arc<Value>> {
        self.authorization_policies
            .get(namespace)
            .cloned()
            .unwrap_or_default()
    }

    fn namespaces(&self) -> Vec<String> {
        self.namespaces.iter().cloned().collect()
    }
}
