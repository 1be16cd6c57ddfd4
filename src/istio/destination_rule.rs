//! DestinationRules as pilot reads them: which rule a client's sidecar uses for a service
//! (index, merge, exportTo, lookup) and the policy that resolves for one subset and port.
//! Every rule, `simulate`, FG601 and FG602 ask these functions; none re-derives them.
//!
//! Mirrors pilot/pkg/model/push_context.go (setDestinationRules, destinationRule,
//! getExportedDestinationRuleFromNamespace, sortConfigBySelectorAndCreationTime),
//! pilot/pkg/model/destination_rule.go (mergeDestinationRule, with
//! ENABLE_ENHANCED_DESTINATIONRULE_MERGE on, its default), pilot/pkg/model/sidecar.go
//! (SidecarScope.DestinationRule) and pilot/pkg/networking/util (GetPortLevelTrafficPolicy,
//! MergeSubsetTrafficPolicy).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use json_patch::jsonptr::PointerBuf;
use serde_json::Value;

use super::{fqdn, mesh::MeshConfig};
use crate::object::{Field as _, array_at, as_int, str_at};

/// Where a traffic policy resolves on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelKind {
    /// `spec.trafficPolicy`
    Top,
    /// `spec.trafficPolicy.portLevelSettings[i]`
    TopPort,
    /// `spec.subsets[j].trafficPolicy`
    Subset,
    /// `spec.subsets[j].trafficPolicy.portLevelSettings[i]`
    SubsetPort,
}

/// One policy level, by position: navigated directly (no pointer strings) and named in
/// messages by [`Level::path`].
#[derive(Debug, Clone, Copy)]
pub struct Level {
    pub kind: LevelKind,
    pub subset: Option<usize>,
    pub port: Option<usize>,
}

impl Level {
    pub const TOP: Level = Level {
        kind: LevelKind::Top,
        subset: None,
        port: None,
    };

    /// The policy object at this level.
    pub fn get<'a>(&self, dr: &'a Value) -> Option<&'a Value> {
        let spec = dr.field("spec")?;
        let policy = match self.subset {
            None => spec.field("trafficPolicy")?,
            Some(j) => spec.field("subsets")?.get(j)?.field("trafficPolicy")?,
        };
        match self.port {
            None => Some(policy),
            Some(i) => policy.field("portLevelSettings")?.get(i),
        }
    }

    pub fn get_mut<'a>(&self, dr: &'a mut Value) -> Option<&'a mut Value> {
        let spec = dr.field_mut("spec")?;
        let policy = match self.subset {
            None => spec.field_mut("trafficPolicy")?,
            Some(j) => spec
                .field_mut("subsets")?
                .get_mut(j)?
                .field_mut("trafficPolicy")?,
        };
        match self.port {
            None => Some(policy),
            Some(i) => policy.field_mut("portLevelSettings")?.get_mut(i),
        }
    }

    /// The member at `tail` inside the policy object at this level, as a JSON pointer (where
    /// a fix writes; an empty tail names the policy itself).
    pub fn pointer(&self, tail: &[&str]) -> PointerBuf {
        let (subset, port) = (
            self.subset.map(|j| j.to_string()),
            self.port.map(|i| i.to_string()),
        );
        let subset = subset.iter().flat_map(|j| ["subsets", j]);
        let port = port.iter().flat_map(|i| ["portLevelSettings", i]);
        let policy = ["spec"]
            .into_iter()
            .chain(subset)
            .chain(["trafficPolicy"])
            .chain(port);
        crate::object::pointer_of(policy.chain(tail.iter().copied()))
    }

    /// The level of the subset a subset port-level entry belongs to.
    pub fn subset_level(&self) -> Level {
        Level {
            kind: LevelKind::Subset,
            subset: self.subset,
            port: None,
        }
    }

    /// Where it is, as `spec.subsets[1].trafficPolicy.portLevelSettings[0]`.
    pub fn path(&self) -> String {
        let mut path = match self.subset {
            None => "spec.trafficPolicy".to_owned(),
            Some(j) => format!("spec.subsets[{j}].trafficPolicy"),
        };
        if let Some(i) = self.port {
            path.push_str(&format!(".portLevelSettings[{i}]"));
        }
        path
    }
}

/// Every policy level present in a DestinationRule, the top level listed even when absent:
/// the places pilot resolves a policy from (see [`effective_policy`]).
pub fn policy_levels(dr: &Value) -> Vec<Level> {
    let mut out = vec![Level::TOP];
    let ports = |policy: &Value| {
        policy
            .field("portLevelSettings")
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    };
    if let Some(top) = Level::TOP.get(dr) {
        out.extend((0..ports(top)).map(|i| Level {
            kind: LevelKind::TopPort,
            subset: None,
            port: Some(i),
        }));
    }
    if let Some(subsets) = dr
        .field("spec")
        .and_then(|s| s.field("subsets"))
        .and_then(Value::as_array)
    {
        for (j, subset) in subsets.iter().enumerate() {
            if let Some(policy) = subset.field("trafficPolicy").filter(|p| p.is_object()) {
                out.push(Level {
                    kind: LevelKind::Subset,
                    subset: Some(j),
                    port: None,
                });
                out.extend((0..ports(policy)).map(|i| Level {
                    kind: LevelKind::SubsetPort,
                    subset: Some(j),
                    port: Some(i),
                }));
            }
        }
    }
    out
}

/// The `exportTo` of an object as written, as a set (empty: not written, the mesh default).
pub fn export_set(object: &Value) -> BTreeSet<String> {
    array_at(object, &["spec", "exportTo"])
        .iter()
        .filter_map(|v| Some(v.as_str()?.to_owned()))
        .collect()
}

/// Whether an `exportTo` list (`*`, `.`, namespace names) of an object living in `own` makes it
/// visible in `namespace` (pkg/config/visibility: `.` is the object's own namespace, `*`
/// every namespace; an empty list is the mesh default, every namespace).
pub fn exported_to<S: AsRef<str>>(export: &[S], own: &str, namespace: &str) -> bool {
    export.is_empty()
        || export
            .iter()
            .map(AsRef::as_ref)
            .any(|e| e == "*" || e == namespace || (e == "." && own == namespace))
}

/// One DestinationRule after pilot's merge: the rules of one host and namespace that
/// mergeDestinationRule folded together (subsets concatenated, the oldest top-level
/// trafficPolicy kept).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Consolidated {
    /// `namespace/name` of every rule merged in, oldest first (ConsolidatedDestRule.from).
    pub names: Vec<String>,
    pub namespace: String,
    /// The rule whose top-level trafficPolicy is in force, if any has one.
    pub policy_from: Option<String>,
    pub traffic_policy: Option<Value>,
    pub subsets: Vec<Value>,
    /// The export set pilot keeps for it: as written, `{.}` for a rule with a selector.
    pub export_to: BTreeSet<String>,
    pub selector: Option<BTreeMap<String, String>>,
}

impl Consolidated {
    fn of(rule: &Rule<'_>) -> Self {
        let policy = rule
            .object
            .path(&["spec", "trafficPolicy"])
            .filter(|p| !p.is_null())
            .cloned();
        Consolidated {
            names: vec![rule.name.clone()],
            namespace: rule.namespace.clone(),
            policy_from: policy.as_ref().map(|_| rule.name.clone()),
            traffic_policy: policy,
            subsets: array_at(rule.object, &["spec", "subsets"]).to_vec(),
            export_to: rule.export_to.clone(),
            selector: rule.selector.clone(),
        }
    }

    /// mergeDestinationRule's fold of a newer rule into this one.
    fn absorb(&mut self, rule: &Rule<'_>) {
        self.names.push(rule.name.clone());
        for subset in array_at(rule.object, &["spec", "subsets"]) {
            let name = subset.field("name");
            if !self.subsets.iter().any(|s| s.field("name") == name) {
                self.subsets.push(subset.clone());
            }
        }
        if self.traffic_policy.is_none()
            && let Some(policy) = rule
                .object
                .path(&["spec", "trafficPolicy"])
                .filter(|p| !p.is_null())
        {
            self.traffic_policy = Some(policy.clone());
            self.policy_from = Some(rule.name.clone());
        }
    }
}

/// A DestinationRule as the index reads it.
struct Rule<'a> {
    object: &'a Value,
    host: String,
    name: String,
    namespace: String,
    export_to: BTreeSet<String>,
    selector: Option<BTreeMap<String, String>>,
}

/// Rules of one pool by resolved host (consolidatedDestRules: specific and wildcard hosts).
#[derive(Debug, Default, Clone)]
struct Table {
    by_host: BTreeMap<String, Vec<Consolidated>>,
}

impl Table {
    /// mergeDestinationRule (enhanced merge): fold the rule into an existing entry of its host
    /// where exportTo and selectors allow, else append it as an entry of its own.
    fn merge(&mut self, rule: &Rule<'_>) {
        let Some(list) = self.by_host.get_mut(&rule.host) else {
            self.by_host
                .insert(rule.host.clone(), vec![Consolidated::of(rule)]);
            return;
        };
        let mut separately = true;
        for existing in list.iter_mut() {
            if rule.export_to == existing.export_to {
                separately = false;
            } else if !existing.export_to.is_empty()
                && rule.export_to.is_superset(&existing.export_to)
            {
                separately = true;
            } else {
                separately = true;
                continue;
            }
            let both_without = rule.selector.is_none() && existing.selector.is_none();
            let both_with = rule.selector.is_some() && existing.selector.is_some();
            let selectors_match = rule.selector.clone().unwrap_or_default()
                == existing.selector.clone().unwrap_or_default();
            if both_with && !selectors_match {
                separately = true;
                continue;
            }
            if both_without || (both_with && selectors_match) {
                separately = false;
            }
            existing.absorb(rule);
        }
        if separately {
            list.push(Consolidated::of(rule));
        }
    }

    /// MostSpecificHostMatch: the exact host, else the longest wildcard host that matches.
    fn most_specific(&self, host: &str) -> Option<&[Consolidated]> {
        if let Some(list) = self.by_host.get(host) {
            return Some(list);
        }
        self.by_host
            .iter()
            .filter(|(h, _)| {
                h.strip_prefix('*')
                    .is_some_and(|suffix| host.ends_with(suffix) && !host.starts_with('*'))
            })
            .max_by_key(|(h, _)| h.len())
            .map(|(_, list)| list.as_slice())
    }
}

/// Pilot's DestinationRule index (PushContext.destinationRuleIndex) over a set of objects.
#[derive(Debug, Default, Clone)]
pub struct Index {
    namespace_local: HashMap<String, Table>,
    exported: HashMap<String, Table>,
    root_local: Table,
    root: String,
}

/// An object's creation order (sortConfigByCreationTime): its `creationTimestamp` when written, else its place
/// in the input (the Istio harness stamps objects 2026-01-01 plus one second per position).
pub(crate) fn creation_key(object: &Value, position: usize) -> i64 {
    const HARNESS_BASE: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
    str_at(object, &["metadata", "creationTimestamp"])
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .map(|t| t.as_second())
        .unwrap_or(HARNESS_BASE + position as i64)
}

impl Index {
    /// setDestinationRules over `objects` (DestinationRules among them, in creation order).
    pub fn new(
        objects: &[&Value],
        mesh: &MeshConfig,
        root_namespace: &str,
        cluster_domain: &str,
    ) -> Self {
        let mut rules: Vec<(i64, Rule<'_>)> = objects
            .iter()
            .enumerate()
            .filter(|(_, o)| is_destination_rule(o))
            .filter_map(|(i, o)| {
                let namespace = str_at(o, &["metadata", "namespace"])
                    .filter(|n| !n.is_empty())
                    .unwrap_or("default")
                    .to_owned();
                let host = fqdn(
                    o.path(&["spec", "host"])?.as_str()?,
                    &namespace,
                    cluster_domain,
                );
                let selector = o.path(&["spec", "workloadSelector"]).map(|s| {
                    s.field("matchLabels")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                });
                // A rule with a workload selector is never exported (setDestinationRules).
                let export_to = if selector.is_some() {
                    BTreeSet::from([".".to_owned()])
                } else {
                    export_set(o)
                };
                let name = format!(
                    "{namespace}/{}",
                    str_at(o, &["metadata", "name"]).unwrap_or("")
                );
                Some((
                    creation_key(o, i),
                    Rule {
                        object: o,
                        host,
                        name,
                        namespace,
                        export_to,
                        selector,
                    },
                ))
            })
            .collect();
        // sortConfigBySelectorAndCreationTime: rules with a selector first, then by creation
        // time, name, namespace.
        rules.sort_by(|(created_a, a), (created_b, b)| {
            b.selector
                .is_some()
                .cmp(&a.selector.is_some())
                .then(created_a.cmp(created_b))
                .then_with(|| {
                    str_at(a.object, &["metadata", "name"])
                        .cmp(&str_at(b.object, &["metadata", "name"]))
                })
                .then_with(|| a.namespace.cmp(&b.namespace))
        });
        let private_default = mesh.destination_rules_private_by_default();
        let mut index = Index {
            root: root_namespace.to_owned(),
            ..Index::default()
        };
        for (_, rule) in &rules {
            let e = &rule.export_to;
            let ns = &rule.namespace;
            if e.is_empty() || e.contains("*") || e.contains(".") || e.contains(ns) {
                index
                    .namespace_local
                    .entry(ns.clone())
                    .or_default()
                    .merge(rule);
            }
            let private_only = (e.is_empty() && private_default)
                || (e.len() == 1 && (e.contains(".") || e.contains(ns)));
            if !private_only {
                index.exported.entry(ns.clone()).or_default().merge(rule);
            } else if *ns == index.root {
                index.root_local.merge(rule);
            }
        }
        index
    }

    /// getExportedDestinationRuleFromNamespace.
    fn exported_from(&self, owner: &str, host: &str, client_ns: &str) -> Vec<&Consolidated> {
        self.exported
            .get(owner)
            .and_then(|t| t.most_specific(host))
            .into_iter()
            .flatten()
            .filter(|r| {
                r.export_to.is_empty()
                    || r.export_to.contains("*")
                    || r.export_to.contains(client_ns)
            })
            .collect()
    }

    /// PushContext.destinationRule: the merged rules a client namespace sees for a service:
    /// its own namespace's (the root namespace's private ones for a client there), else the
    /// service namespace's exported to it, else the root namespace's exported to it.
    pub fn lookup(&self, client_ns: &str, host: &str, service_ns: &str) -> Vec<&Consolidated> {
        let local = if client_ns != self.root {
            self.namespace_local.get(client_ns)
        } else {
            Some(&self.root_local)
        };
        if let Some(found) = local.and_then(|t| t.most_specific(host)) {
            return found.iter().collect();
        }
        if !service_ns.is_empty() {
            let out = self.exported_from(service_ns, host, client_ns);
            if !out.is_empty() {
                return out;
            }
        }
        self.exported_from(&self.root, host, client_ns)
    }

    /// The rule a sidecar in `client_ns` with `proxy_labels` uses (SidecarScope.DestinationRule
    /// over [`Index::lookup`]): the first rule of its own namespace whose selector its labels
    /// satisfy, else the last one without a selector.
    pub fn for_sidecar(
        &self,
        client_ns: &str,
        proxy_labels: &BTreeMap<String, String>,
        host: &str,
        service_ns: &str,
    ) -> Option<&Consolidated> {
        let mut catch_all = None;
        for rule in self.lookup(client_ns, host, service_ns) {
            match &rule.selector {
                None => catch_all = Some(rule),
                Some(selector) if rule.namespace == client_ns => {
                    if selector.iter().all(|(k, v)| proxy_labels.get(k) == Some(v)) {
                        return Some(rule);
                    }
                }
                Some(_) => {}
            }
        }
        catch_all
    }

    /// The rule a sidecar gets in a namespace that has no rules of its own and that no
    /// `exportTo` names: what "every other client" of a service uses.
    pub fn for_other_namespaces(&self, host: &str, service_ns: &str) -> Option<&Consolidated> {
        // Not a valid namespace name, so no rule lives there or is exported there by name.
        const UNNAMED: &str = "*other*";
        self.for_sidecar(UNNAMED, &BTreeMap::new(), host, service_ns)
    }

    /// The merged rules of one host in one namespace's own pool, as a client there sees them.
    pub fn in_namespace(&self, namespace: &str, host: &str) -> &[Consolidated] {
        self.namespace_local
            .get(namespace)
            .and_then(|t| t.by_host.get(host))
            .map_or(&[], Vec::as_slice)
    }
}

fn is_destination_rule(object: &Value) -> bool {
    str_at(object, &["kind"]) == Some("DestinationRule")
        && str_at(object, &["apiVersion"]).is_some_and(|a| a.starts_with("networking.istio.io/"))
}

/// The rules whose top-level trafficPolicy pilot uses instead of `subject`'s: in every merged
/// rule the subject joins in its own namespace, an older rule's policy is in force. `rules`
/// are the DestinationRules of the subject's host in creation order, the subject among them.
pub fn policy_shadowed_by(
    rules: &[&Value],
    subject: &str,
    mesh: &MeshConfig,
    root_namespace: &str,
    cluster_domain: &str,
) -> Vec<String> {
    let Some(subject_rule) = rules.iter().find(|r| qualified_name(r) == subject) else {
        return Vec::new();
    };
    let Some(host) = subject_rule.path(&["spec", "host"]).and_then(Value::as_str) else {
        return Vec::new();
    };
    let namespace = subject.split_once('/').map_or("default", |(ns, _)| ns);
    let host = fqdn(host, namespace, cluster_domain);
    let index = Index::new(rules, mesh, root_namespace, cluster_domain);
    let joined: Vec<&Consolidated> = index
        .in_namespace(namespace, &host)
        .iter()
        .filter(|c| c.names.iter().any(|n| n == subject))
        .collect();
    if joined.is_empty()
        || joined
            .iter()
            .any(|c| c.policy_from.as_deref() == Some(subject))
    {
        return Vec::new();
    }
    let mut out: Vec<String> = joined
        .iter()
        .filter_map(|c| c.policy_from.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `namespace/name` of an object.
pub fn qualified_name(object: &Value) -> String {
    format!(
        "{}/{}",
        str_at(object, &["metadata", "namespace"])
            .filter(|n| !n.is_empty())
            .unwrap_or("default"),
        str_at(object, &["metadata", "name"]).unwrap_or("")
    )
}

/// pilot/pkg/networking/util GetPortLevelTrafficPolicy: the port-level entry for the port,
/// replacing the whole policy (nothing inherited), and whether there was one.
pub fn port_level(policy: Option<&Value>, port: u32) -> (Option<Value>, bool) {
    let Some(policy) = policy else {
        return (None, false);
    };
    let entry = array_at(policy, &["portLevelSettings"])
        .iter()
        .find(|p| p.path(&["port", "number"]).and_then(as_int) == Some(i64::from(port)));
    match entry {
        Some(entry) => {
            let mut out = serde_json::Map::new();
            for key in ["connectionPool", "loadBalancer", "outlierDetection", "tls"] {
                if let Some(v) = entry.field(key).filter(|v| !v.is_null()) {
                    out.insert(key.into(), v.clone());
                }
            }
            (Some(Value::Object(out)), true)
        }
        None => (Some(policy.clone()), false),
    }
}

/// pilot/pkg/networking/util MergeSubsetTrafficPolicy (with model.MergeTrafficPolicy): the
/// policy of one subset (`""`: the service's own cluster) and port.
pub fn effective_policy(rule: &Consolidated, subset: &str, port: u32) -> Option<Value> {
    let (top, _) = port_level(rule.traffic_policy.as_ref(), port);
    let subset_policy = rule
        .subsets
        .iter()
        .find(|s| s.field("name").and_then(Value::as_str) == Some(subset))
        .and_then(|s| s.field("trafficPolicy"))
        .filter(|p| !p.is_null());
    let Some(subset_policy) = subset_policy.filter(|_| !subset.is_empty()) else {
        return top;
    };
    let (sub, has_port_level) = port_level(Some(subset_policy), port);
    let Some(mut merged) = top else { return sub };
    let sub = sub.unwrap_or(Value::Null);
    for key in ["connectionPool", "outlierDetection", "loadBalancer", "tls"] {
        let value = sub.get(key).filter(|v| !v.is_null());
        if (value.is_some() || has_port_level)
            && let Some(map) = merged.as_object_mut()
        {
            match value {
                Some(v) => {
                    map.insert(key.into(), v.clone());
                }
                None => {
                    map.remove(key);
                }
            }
        }
    }
    Some(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dr(ns: &str, name: &str, extra: Value) -> Value {
        let mut spec = json!({"host": "reviews"});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"namespace": ns, "name": name}, "spec": spec})
    }

    const HOST: &str = "reviews.bookinfo.svc.cluster.local";

    fn index(objects: &[&Value], mesh: &MeshConfig) -> Index {
        Index::new(objects, mesh, "istio-system", "svc.cluster.local")
    }

    #[test]
    fn rules_of_one_namespace_merge_and_the_oldest_policy_wins() {
        let a = dr(
            "bookinfo",
            "a",
            json!({"trafficPolicy": {"tls": {"mode": "DISABLE"}}, "subsets": [{"name": "v1"}]}),
        );
        let b = dr(
            "bookinfo",
            "b",
            json!({"trafficPolicy": {"outlierDetection": {}}, "subsets": [{"name": "v2"}]}),
        );
        let idx = index(&[&a, &b], &MeshConfig::default());
        let got = idx
            .for_sidecar("other", &BTreeMap::new(), HOST, "bookinfo")
            .unwrap();
        assert_eq!(got.names, ["bookinfo/a", "bookinfo/b"]);
        assert_eq!(got.policy_from.as_deref(), Some("bookinfo/a"));
        assert_eq!(got.subsets.len(), 2);
        assert_eq!(
            policy_shadowed_by(
                &[&a, &b],
                "bookinfo/b",
                &MeshConfig::default(),
                "istio-system",
                "svc.cluster.local"
            ),
            ["bookinfo/a"]
        );
        // A written creationTimestamp decides, not the input order.
        let mut b_old = b.clone();
        b_old["metadata"]["creationTimestamp"] = json!("2020-01-01T00:00:00Z");
        let idx = index(&[&a, &b_old], &MeshConfig::default());
        let got = idx
            .for_sidecar("bookinfo", &BTreeMap::new(), HOST, "bookinfo")
            .unwrap();
        assert_eq!(got.policy_from.as_deref(), Some("bookinfo/b"));
    }

    #[test]
    fn different_export_sets_stay_apart_and_the_last_catch_all_wins() {
        let a = dr(
            "bookinfo",
            "a",
            json!({"trafficPolicy": {"tls": {"mode": "DISABLE"}}}),
        );
        let b = dr(
            "bookinfo",
            "b",
            json!({"exportTo": ["."], "trafficPolicy": {"outlierDetection": {}}}),
        );
        let idx = index(&[&a, &b], &MeshConfig::default());
        // In bookinfo both are separate entries; the sidecar takes the last without selector.
        let own = idx
            .for_sidecar("bookinfo", &BTreeMap::new(), HOST, "bookinfo")
            .unwrap();
        assert_eq!(own.names, ["bookinfo/b"]);
        // Elsewhere only a is exported.
        let other = idx
            .for_sidecar("default", &BTreeMap::new(), HOST, "bookinfo")
            .unwrap();
        assert_eq!(other.names, ["bookinfo/a"]);
    }

    #[test]
    fn lookup_order_is_client_service_root() {
        let client = dr("default", "c", json!({"host": HOST}));
        let root = dr("istio-system", "r", json!({"host": HOST}));
        let service = dr("bookinfo", "s", json!({}));
        let idx = index(&[&client, &root, &service], &MeshConfig::default());
        let names = |ns: &str| {
            idx.for_sidecar(ns, &BTreeMap::new(), HOST, "bookinfo")
                .map(|c| c.names.clone())
        };
        assert_eq!(names("default"), Some(vec!["default/c".to_owned()]));
        assert_eq!(names("prod"), Some(vec!["bookinfo/s".to_owned()]));
        assert_eq!(
            idx.for_other_namespaces(HOST, "bookinfo")
                .map(|c| c.names.clone()),
            Some(vec!["bookinfo/s".to_owned()])
        );
        let idx = index(&[&client, &root], &MeshConfig::default());
        assert_eq!(
            idx.for_sidecar("prod", &BTreeMap::new(), HOST, "bookinfo")
                .map(|c| c.names.clone()),
            Some(vec!["istio-system/r".to_owned()])
        );
    }

    #[test]
    fn a_private_mesh_default_keeps_rules_without_export_to_home() {
        let service = dr("bookinfo", "s", json!({}));
        let mesh = MeshConfig::parse("defaultDestinationRuleExportTo: [\".\"]", "m").unwrap();
        let idx = index(&[&service], &mesh);
        assert!(
            idx.for_sidecar("prod", &BTreeMap::new(), HOST, "bookinfo")
                .is_none()
        );
        assert!(
            idx.for_sidecar("bookinfo", &BTreeMap::new(), HOST, "bookinfo")
                .is_some()
        );
    }

    #[test]
    fn wildcards_match_the_most_specific() {
        let broad = dr("bookinfo", "broad", json!({"host": "*.cluster.local"}));
        let narrow = dr(
            "bookinfo",
            "narrow",
            json!({"host": "*.bookinfo.svc.cluster.local"}),
        );
        let idx = index(&[&broad, &narrow], &MeshConfig::default());
        let got = idx
            .for_sidecar("bookinfo", &BTreeMap::new(), HOST, "bookinfo")
            .unwrap();
        assert_eq!(got.names, ["bookinfo/narrow"]);
    }

    #[test]
    fn selector_rules_apply_to_matching_sidecars_of_their_namespace() {
        let sel = dr(
            "bookinfo",
            "sel",
            json!({"workloadSelector": {"matchLabels": {"app": "a"}}}),
        );
        let all = dr("bookinfo", "all", json!({}));
        let idx = index(&[&all, &sel], &MeshConfig::default());
        let labels = BTreeMap::from([("app".to_owned(), "a".to_owned())]);
        assert_eq!(
            idx.for_sidecar("bookinfo", &labels, HOST, "bookinfo")
                .unwrap()
                .names,
            ["bookinfo/sel"]
        );
        assert_eq!(
            idx.for_sidecar("bookinfo", &BTreeMap::new(), HOST, "bookinfo")
                .unwrap()
                .names,
            ["bookinfo/all"]
        );
    }

    #[test]
    fn a_port_level_entry_replaces_the_policy_and_a_subset_overrides_fields() {
        let a = dr(
            "bookinfo",
            "a",
            json!({
            "trafficPolicy": {"outlierDetection": {}, "tls": {"mode": "ISTIO_MUTUAL"},
                "portLevelSettings": [{"port": {"number": 9080}, "tls": {"mode": "DISABLE"}}]},
            "subsets": [{"name": "v1", "trafficPolicy": {"tls": {"mode": "SIMPLE"}}}]}),
        );
        let idx = index(&[&a], &MeshConfig::default());
        let rule = idx
            .for_sidecar("bookinfo", &BTreeMap::new(), HOST, "bookinfo")
            .unwrap();
        assert_eq!(
            effective_policy(rule, "", 9080),
            Some(json!({"tls": {"mode": "DISABLE"}}))
        );
        assert_eq!(
            effective_policy(rule, "v1", 9090),
            Some(json!({"outlierDetection": {}, "tls": {"mode": "SIMPLE"},
                "portLevelSettings": [{"port": {"number": 9080}, "tls": {"mode": "DISABLE"}}]}))
        );
        assert_eq!(policy_levels(&a).len(), 3);
    }
}
