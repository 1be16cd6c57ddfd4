//! The "world": other objects that cross-object (W) rules look up. The engine only sees the
//! [`World`] trait; the webhook backs it with watches on the cluster ([`crate::cluster`]),
//! `check` with the manifests it was given ([`ManifestWorld`]). Without a world, W rules stay
//! silent. Both share [`Index`]: lookups by host and by namespace are hash lookups, so
//! admission latency does not grow with the number of objects.

use std::{
    any::Any,
    collections::BTreeSet,
    sync::{Arc, Mutex, PoisonError},
};

use serde_json::Value;

use crate::{
    istio::fqdn,
    object::{Kind, Subject, array_at, str_at},
};

/// Read access to the other objects of a cluster (or of a set of manifests).
pub trait World: Send + Sync {
    /// The Service `name` in `namespace`.
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Value>>;
    /// The Namespace object `name` (its labels and annotations), when the world holds it.
    fn namespace(&self, _name: &str) -> Option<Arc<Value>> {
        None
    }
    /// DestinationRules whose `spec.host` expands to this fully qualified host.
    fn destination_rules(&self, host: &str) -> Vec<Arc<Value>>;
    /// ServiceEntries that list this fully qualified host.
    fn service_entries(&self, host: &str) -> Vec<Arc<Value>>;
    /// AuthorizationPolicies in a namespace.
    fn authorization_policies(&self, namespace: &str) -> Vec<Arc<Value>>;
    /// PeerAuthentications in a namespace.
    fn peer_authentications(&self, _namespace: &str) -> Vec<Arc<Value>> {
        Vec::new()
    }
    /// Every namespace known to the world.
    fn namespaces(&self) -> Vec<String>;
    /// Whether lookups answer for the whole world yet (a watch cache that has not listed
    /// everything once would make W rules report objects as missing).
    fn is_ready(&self) -> bool {
        true
    }
    /// A one-line state for /readyz.
    fn describe(&self) -> String {
        "ready".into()
    }
    /// Where FG601 remembers its simulations over this world's objects (none: simulate
    /// every time).
    fn memo(&self) -> Option<&Memo> {
        None
    }
}

/// The kinds a world holds: the engine's kinds and Namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorldKind {
    Object(Kind),
    Namespace,
}

impl WorldKind {
    pub fn of(object: &Value) -> Option<WorldKind> {
        if let Some(kind) = Kind::of(object) {
            return Some(WorldKind::Object(kind));
        }
        (str_at(object, &["apiVersion"]) == Some("v1")
            && str_at(object, &["kind"]) == Some("Namespace"))
        .then_some(WorldKind::Namespace)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WorldKind::Object(kind) => kind.as_str(),
            WorldKind::Namespace => "Namespace",
        }
    }
}

type Key = (String, String);

/// A [`Key`] borrowed for a lookup. It hashes as the owned key does (a tuple and a tuple
/// struct both hash their fields in order), so finding an object allocates nothing.
#[derive(Hash)]
struct KeyRef<'a>(&'a str, &'a str);

impl hashbrown::Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

/// Hash maps of the index: looked up several times per admission, with keys from the
/// cluster's own objects, so a fast hasher (foldhash) rather than SipHash.
type HashMap<K, V> = hashbrown::HashMap<K, V, foldhash::quality::RandomState>;

/// Objects of one kind by (namespace, name), with a secondary index.
#[derive(Default)]
struct Table {
    objects: HashMap<Key, Arc<Value>>,
    by: HashMap<String, BTreeSet<Key>>,
}

impl Table {
    fn lookup(&self, index_key: &str) -> Vec<Arc<Value>> {
        self.by
            .get(index_key)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| self.objects.get(k).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Every object of a world, indexed for the lookups of [`World`].
#[derive(Default)]
pub struct Index {
    default_namespace: String,
    cluster_domain: String,
    tables: HashMap<WorldKind, Table>,
    namespaces: BTreeSet<String>,
}

impl Index {
    /// Every object held (Namespaces included), in a stable order (kind, namespace, name), for
    /// a full pass such as PolicyReports.
    pub fn objects(&self) -> Vec<Arc<Value>> {
        let mut kinds: Vec<&WorldKind> = self.tables.keys().collect();
        kinds.sort();
        kinds
            .into_iter()
            .flat_map(|kind| {
                let table = &self.tables[kind];
                let mut keys: Vec<&Key> = table.objects.keys().collect();
                keys.sort();
                keys.into_iter().map(move |k| table.objects[k].clone())
            })
            .collect()
    }

    /// An empty index; objects without a namespace are placed in `default_namespace`.
    pub fn new(default_namespace: &str, cluster_domain: &str) -> Self {
        Self {
            default_namespace: default_namespace.to_owned(),
            cluster_domain: cluster_domain.to_owned(),
            ..Self::default()
        }
    }

    fn key(&self, object: &Value, kind: WorldKind) -> Key {
        match kind {
            WorldKind::Object(kind) => {
                let s = Subject::of(object, kind, &self.default_namespace);
                (s.namespace, s.name)
            }
            WorldKind::Namespace => (
                String::new(),
                str_at(object, &["metadata", "name"])
                    .unwrap_or("")
                    .to_owned(),
            ),
        }
    }

    /// The secondary index keys of an object: hosts, or its namespace.
    fn index_keys(&self, object: &Value, kind: WorldKind, namespace: &str) -> Vec<String> {
        match kind {
            WorldKind::Object(Kind::DestinationRule) => str_at(object, &["spec", "host"])
                .map(|h| vec![fqdn(h, namespace, &self.cluster_domain)])
                .unwrap_or_default(),
            WorldKind::Object(Kind::ServiceEntry) => array_at(object, &["spec", "hosts"])
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            WorldKind::Object(Kind::AuthorizationPolicy | Kind::PeerAuthentication) => {
                vec![namespace.to_owned()]
            }
            _ => Vec::new(),
        }
    }

    /// Adds or replaces an object; objects of other kinds are ignored.
    pub fn upsert(&mut self, object: Value) {
        let Some(kind) = WorldKind::of(&object) else {
            return;
        };
        self.remove(&object);
        let key = self.key(&object, kind);
        let index_keys = self.index_keys(&object, kind, &key.0);
        match kind {
            WorldKind::Namespace => {
                self.namespaces.insert(key.1.clone());
            }
            WorldKind::Object(_) => {
                self.namespaces.insert(key.0.clone());
            }
        }
        let table = self.tables.entry(kind).or_default();
        for index_key in index_keys {
            table.by.entry(index_key).or_default().insert(key.clone());
        }
        table.objects.insert(key, Arc::new(object));
    }

    /// Removes the object with the identity of `object`.
    pub fn remove(&mut self, object: &Value) {
        let Some(kind) = WorldKind::of(object) else {
            return;
        };
        let key = self.key(object, kind);
        let Some(old) = self
            .tables
            .get(&kind)
            .and_then(|t| t.objects.get(&key).cloned())
        else {
            return;
        };
        let index_keys = self.index_keys(&old, kind, &key.0);
        if let Some(table) = self.tables.get_mut(&kind) {
            table.objects.remove(&key);
            for index_key in index_keys {
                if let Some(keys) = table.by.get_mut(&index_key) {
                    keys.remove(&key);
                    if keys.is_empty() {
                        table.by.remove(&index_key);
                    }
                }
            }
        }
        if kind == WorldKind::Namespace {
            self.namespaces.remove(&key.1);
        }
    }

    /// Replaces every object of one kind (a re-list after a watch restart).
    pub fn replace_kind(&mut self, kind: WorldKind, objects: Vec<Value>) {
        self.tables.remove(&kind);
        if kind == WorldKind::Namespace {
            self.namespaces.clear();
        }
        for object in objects {
            self.upsert(object);
        }
    }

    /// Number of objects of a kind.
    pub fn len(&self, kind: WorldKind) -> usize {
        self.tables.get(&kind).map_or(0, |t| t.objects.len())
    }

    /// Whether the index holds no object at all.
    pub fn is_empty(&self) -> bool {
        self.tables.values().all(|t| t.objects.is_empty())
    }
}

impl World for Index {
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.tables
            .get(&WorldKind::Object(Kind::Service))?
            .objects
            .get(&KeyRef(namespace, name))
            .cloned()
    }
    fn namespace(&self, name: &str) -> Option<Arc<Value>> {
        self.tables
            .get(&WorldKind::Namespace)?
            .objects
            .get(&KeyRef("", name))
            .cloned()
    }

    fn destination_rules(&self, host: &str) -> Vec<Arc<Value>> {
        self.tables
            .get(&WorldKind::Object(Kind::DestinationRule))
            .map(|t| t.lookup(host))
            .unwrap_or_default()
    }

    fn service_entries(&self, host: &str) -> Vec<Arc<Value>> {
        self.tables
            .get(&WorldKind::Object(Kind::ServiceEntry))
            .map(|t| t.lookup(host))
            .unwrap_or_default()
    }

    fn authorization_policies(&self, namespace: &str) -> Vec<Arc<Value>> {
        self.tables
            .get(&WorldKind::Object(Kind::AuthorizationPolicy))
            .map(|t| t.lookup(namespace))
            .unwrap_or_default()
    }

    fn peer_authentications(&self, namespace: &str) -> Vec<Arc<Value>> {
        self.tables
            .get(&WorldKind::Object(Kind::PeerAuthentication))
            .map(|t| t.lookup(namespace))
            .unwrap_or_default()
    }

    fn namespaces(&self) -> Vec<String> {
        self.namespaces.iter().cloned().collect()
    }
}

/// A world made of parsed manifests, indexed once.
pub struct ManifestWorld {
    index: Index,
    memo: Memo,
}

impl ManifestWorld {
    /// Indexes `objects`; objects without a namespace are taken to live in `default_namespace`.
    pub fn new<'a>(
        objects: impl IntoIterator<Item = &'a Value>,
        default_namespace: &str,
        cluster_domain: &str,
    ) -> Self {
        let mut index = Index::new(default_namespace, cluster_domain);
        for object in objects {
            index.upsert(object.clone());
        }
        ManifestWorld {
            index,
            memo: Memo::default(),
        }
    }

    /// Puts an object in (replacing the one of the same kind, namespace and name): an object
    /// as it is stored once applied.
    pub fn upsert(&mut self, object: Value) {
        self.index.upsert(object);
    }
}

impl World for ManifestWorld {
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.index.service(namespace, name)
    }
    fn namespace(&self, name: &str) -> Option<Arc<Value>> {
        self.index.namespace(name)
    }
    fn destination_rules(&self, host: &str) -> Vec<Arc<Value>> {
        self.index.destination_rules(host)
    }
    fn service_entries(&self, host: &str) -> Vec<Arc<Value>> {
        self.index.service_entries(host)
    }
    fn authorization_policies(&self, namespace: &str) -> Vec<Arc<Value>> {
        self.index.authorization_policies(namespace)
    }
    fn peer_authentications(&self, namespace: &str) -> Vec<Arc<Value>> {
        self.index.peer_authentications(namespace)
    }
    fn namespaces(&self) -> Vec<String> {
        self.index.namespaces()
    }
    fn memo(&self) -> Option<&Memo> {
        Some(&self.memo)
    }
}

/// An input of a remembered answer: an object of the world, known by identity, or the admitted
/// object, known by content.
pub enum Input<'a> {
    /// The world replaces an object's `Arc` whenever the object changes, and the memo keeps
    /// the `Arc` it saw, so that address is never reused for another object meanwhile.
    Stored(&'a Arc<Value>),
    Admitted(&'a Value),
}

impl Input<'_> {
    pub fn value(&self) -> &Value {
        match self {
            Input::Stored(v) => v,
            Input::Admitted(v) => v,
        }
    }
}

enum Kept {
    Stored(Arc<Value>),
    Admitted(Value),
}

impl Kept {
    fn matches(&self, input: &Input<'_>) -> bool {
        match (self, input) {
            (Kept::Stored(kept), Input::Stored(input)) => Arc::ptr_eq(kept, input),
            (Kept::Admitted(kept), Input::Admitted(input)) => crate::object::equal(kept, input),
            _ => false,
        }
    }
}

struct Remembered {
    generation: u64,
    inputs: Vec<Kept>,
    answer: Arc<dyn Any + Send + Sync>,
}

/// Answers a rule worked out from the world's objects and the admitted one, remembered so that
/// the same question is not worked out again (FG601's simulation costs 10-35 µs, and in GitOps
/// most admissions re-apply an unchanged object into an unchanged world). An answer is reused
/// only when every input is the same: the same world objects, an equal admitted object, the
/// same configuration (its generation).
///
/// Answers are kept in two generations of at most half the limit each: when the current one is
/// full it becomes the previous one (the one before is forgotten), and an answer found in the
/// previous one moves back into the current one. An answer asked for again within about 512
/// new ones is kept, however many other hosts come and go; forgetting all at once when full
/// made every busy host's next admission pay for a simulation again.
#[derive(Default)]
pub struct Memo {
    entries: Mutex<Generations>,
}

#[derive(Default)]
struct Generations {
    current: HashMap<String, Remembered>,
    previous: HashMap<String, Remembered>,
}

impl Generations {
    /// The entry under `key`, moved into the current generation when it was in the previous.
    fn get(&mut self, key: &str) -> Option<&Remembered> {
        if !self.current.contains_key(key) {
            let (key, entry) = self.previous.remove_entry(key)?;
            self.insert(key, entry);
        }
        self.current.get(key)
    }

    fn insert(&mut self, key: String, entry: Remembered) {
        if self.current.len() >= MEMO_LIMIT / 2 && !self.current.contains_key(&key) {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, entry);
    }
}

/// At most this many remembered answers, over both generations.
const MEMO_LIMIT: usize = 1024;
/// Answers over larger inputs (about this many bytes together) are not remembered: the memo
/// keeps a copy of the admitted object and the world's objects as they were, so this bounds it
/// to about 16 MiB, whatever size of object is admitted.
const MEMO_INPUT_BYTES: usize = 16 * 1024;

impl Memo {
    /// The answer remembered under `key` for these inputs, or `compute`'s, then remembered.
    pub fn get_or_insert_with<T: Any + Send + Sync>(
        &self,
        key: &str,
        generation: u64,
        inputs: &[Input<'_>],
        compute: impl FnOnce() -> T,
    ) -> Arc<T> {
        let remembered = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            entries
                .get(key)
                .filter(|r| {
                    r.generation == generation
                        && r.inputs.len() == inputs.len()
                        && r.inputs.iter().zip(inputs).all(|(k, i)| k.matches(i))
                })
                .map(|r| Arc::clone(&r.answer))
        };
        if let Some(answer) = remembered.and_then(|a| a.downcast::<T>().ok()) {
            return answer;
        }
        let answer = Arc::new(compute());
        let mut budget = MEMO_INPUT_BYTES;
        if !inputs
            .iter()
            .all(|i| crate::object::fits(i.value(), &mut budget))
        {
            return answer;
        }
        let kept = inputs
            .iter()
            .map(|i| match i {
                Input::Stored(v) => Kept::Stored(Arc::clone(v)),
                Input::Admitted(v) => Kept::Admitted((*v).clone()),
            })
            .collect();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.insert(
            key.to_owned(),
            Remembered {
                generation,
                inputs: kept,
                answer: answer.clone(),
            },
        );
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_service_is_found_by_namespace_and_name_until_removed() {
        let service = |ns: &str, port: u16| {
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "reviews", "namespace": ns},
                   "spec": {"ports": [{"name": "http", "port": port}]}})
        };
        let port = |found: Option<Arc<Value>>| {
            found.and_then(|s| {
                array_at(&s, &["spec", "ports"])
                    .first()?
                    .get("port")?
                    .as_u64()
            })
        };
        let mut index = Index::new("default", "svc.cluster.local");
        index.upsert(service("bookinfo", 9080));
        index.upsert(service("other", 8080));
        assert_eq!(port(index.service("bookinfo", "reviews")), Some(9080));
        assert_eq!(port(index.service("other", "reviews")), Some(8080));
        // Namespace and name are two fields, not one joined string.
        assert!(index.service("bookinfo.reviews", "").is_none());
        assert!(index.service("bookinfo", "ratings").is_none());
        index.upsert(service("bookinfo", 9090));
        assert_eq!(port(index.service("bookinfo", "reviews")), Some(9090));
        index.remove(&service("bookinfo", 9090));
        assert!(index.service("bookinfo", "reviews").is_none());
        assert_eq!(index.len(WorldKind::Object(Kind::Service)), 1);
    }

    #[test]
    fn memo_remembers_small_inputs_only_while_they_stay_the_same() {
        let memo = Memo::default();
        let stored = Arc::new(json!({"kind": "Service", "metadata": {"name": "a"}}));
        let admitted = json!({"kind": "DestinationRule", "spec": {"host": "a"}});
        let ask = |stored: &Arc<Value>, admitted: &Value, generation: u64| {
            memo.get_or_insert_with(
                "key",
                generation,
                &[Input::Stored(stored), Input::Admitted(admitted)],
                || admitted.to_string(),
            )
        };
        let first = ask(&stored, &admitted, 1);
        assert!(Arc::ptr_eq(&first, &ask(&stored, &admitted, 1)));
        // A new version of a world object, even with equal content, is another input.
        let replaced = Arc::new((*stored).clone());
        assert!(!Arc::ptr_eq(&first, &ask(&replaced, &admitted, 1)));
        // So are another configuration and another admitted object.
        let again = ask(&replaced, &admitted, 1);
        assert!(!Arc::ptr_eq(&again, &ask(&replaced, &admitted, 2)));
        let changed = json!({"kind": "DestinationRule", "spec": {"host": "b"}});
        assert_eq!(*ask(&replaced, &changed, 2), changed.to_string());
        // A large admitted object is answered every time, never kept.
        let large = json!({"kind": "DestinationRule", "metadata": {"annotations": {"a": "x".repeat(1 << 20)}}});
        let answer = ask(&replaced, &large, 2);
        assert_eq!(*answer, large.to_string());
        assert!(!Arc::ptr_eq(&answer, &ask(&replaced, &large, 2)));
    }

    #[test]
    fn memo_keeps_an_answer_asked_for_again_and_stays_bounded() {
        let memo = Memo::default();
        let admitted = json!({"kind": "DestinationRule"});
        let computed = std::sync::atomic::AtomicUsize::new(0);
        let ask = |key: &str| {
            memo.get_or_insert_with(key, 1, &[Input::Admitted(&admitted)], || {
                computed.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            })
        };
        let hot = ask("hot");
        for i in 0..10 * MEMO_LIMIT {
            ask(&format!("cold-{i}"));
            if i % 100 == 0 {
                assert!(Arc::ptr_eq(&hot, &ask("hot")), "forgotten after {i}");
            }
        }
        let entries = memo.entries.lock().unwrap();
        assert!(entries.current.len() + entries.previous.len() <= MEMO_LIMIT);
        drop(entries);
        // A cold answer long gone is worked out again.
        let before = computed.load(std::sync::atomic::Ordering::Relaxed);
        ask("cold-0");
        assert_eq!(
            computed.load(std::sync::atomic::Ordering::Relaxed),
            before + 1
        );
    }

    #[test]
    fn index_follows_updates_and_deletes() {
        let mut index = Index::new("default", "svc.cluster.local");
        let dr = |host: &str| {
            json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "r", "namespace": "ns"}, "spec": {"host": host}})
        };
        index.upsert(dr("a"));
        assert_eq!(index.destination_rules("a.ns.svc.cluster.local").len(), 1);
        index.upsert(dr("b"));
        assert!(
            index.destination_rules("a.ns.svc.cluster.local").is_empty(),
            "old host unindexed"
        );
        assert_eq!(index.destination_rules("b.ns.svc.cluster.local").len(), 1);
        index.remove(&dr("b"));
        assert!(index.destination_rules("b.ns.svc.cluster.local").is_empty());
        assert_eq!(index.len(WorldKind::Object(Kind::DestinationRule)), 0);

        index
            .upsert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
        index.upsert(json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "metadata": {"name": "p", "namespace": "shop"}}));
        assert_eq!(index.authorization_policies("shop").len(), 1);
        assert!(index.namespaces().contains(&"shop".to_owned()));
        index.replace_kind(WorldKind::Object(Kind::AuthorizationPolicy), vec![]);
        assert!(index.authorization_policies("shop").is_empty());
    }
}
