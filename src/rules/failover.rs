//! Whole-host rules (FG6xx): what Envoy ends up with once every object is taken together.

use std::sync::Arc;

use serde_json::Value;

use super::{Context, Issue, Issues, Rule};
use crate::{
    config::Mode,
    istio::{
        cluster_local_service, fqdn,
        traffic::{self, Client, EnvoyCluster},
    },
    object::{Kind, array_at, str_at},
    world::Input,
};

// === FG601 failover-not-effective ===

/// FG601: the simulated priorities for a local client are not failover.
pub static FG601: Rule = Rule {
    id: "FG601",
    name: "failover-not-effective",
    kinds: &[Kind::DestinationRule, Kind::ServiceEntry, Kind::Service],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: true,
    guards_istiod: false,
    summary: "A host in failover scope whose simulated Envoy priorities for a local client are not \
              failover is a warning (configurable to deny), with the simulated table.",
    istio: "Computes what pilot sends a local sidecar for the host with the object admitted and \
            the rest of the world (src/istio/traffic.rs, which mirrors \
            pilot/pkg/model/push_context.go destinationRule, pilot/pkg/networking/util \
            MergeSubsetTrafficPolicy, pilot/pkg/networking/core/loadbalancer \
            ApplyLocalityLoadBalancer and pilot/pkg/xds/endpoints/endpoint_builder.go, and is \
            checked against pilot itself). This catches causes no single rule names: the sum of \
            rules in several objects that leaves traffic spread, inert, plaintext or without a \
            remote.",
    example_bad: "# with Service bookinfo/reviews and a DestinationRule with outlier detection\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - {address: 198.51.100.7, ports: {http: 15443}, locality: europe-west1/europe-west1-b, labels: {security.istio.io/tlsMode: istio}}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - {address: 203.0.113.10, ports: {http: 15443}, locality: europe-west4/europe-west4-a, labels: {security.istio.io/tlsMode: istio}}\n",
    check: check_fg601,
};

/// The hosts the object is about, as pilot names them (a Service's own, a DestinationRule's
/// completed in its namespace, an entry's as written).
fn object_hosts(object: &Value, cx: &Context<'_>) -> Vec<String> {
    let domain = &cx.config.cluster.cluster_domain;
    let ns = &cx.subject.namespace;
    match cx.subject.kind {
        Kind::Service => vec![format!("{}.{ns}.{domain}", cx.subject.name)],
        Kind::DestinationRule => str_at(object, &["spec", "host"])
            .map(|h| vec![fqdn(h, ns, domain)])
            .unwrap_or_default(),
        Kind::ServiceEntry => array_at(object, &["spec", "hosts"])
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// The cluster-local service hosts the object is about.
fn hosts(object: &Value, cx: &Context<'_>) -> Vec<String> {
    let domain = &cx.config.cluster.cluster_domain;
    object_hosts(object, cx)
        .into_iter()
        .filter(|h| cluster_local_service(h, domain).is_some())
        .collect()
}

/// One line per verdict: the cluster, its table, what it means.
fn summary(c: &EnvoyCluster) -> String {
    // Groups of one priority and locality read as one (pods and entries keep their locality
    // labels apart).
    let mut groups: std::collections::BTreeMap<(u32, &str), std::collections::BTreeSet<String>> =
        std::collections::BTreeMap::new();
    for p in c.priorities.iter().filter(|p| !p.endpoints.is_empty()) {
        groups
            .entry((p.priority, p.locality.as_str()))
            .or_default()
            .extend(p.endpoints.iter().map(|e| {
                if e.cluster.is_empty() {
                    "local".to_owned()
                } else {
                    format!("{} ({})", e.address, e.cluster)
                }
            }));
    }
    let table: Vec<String> = groups
        .iter()
        .map(|((priority, locality), who)| {
            let who: Vec<&str> = who.iter().map(String::as_str).collect();
            format!(
                "p{priority} {} {}",
                if locality.is_empty() { "-" } else { locality },
                who.join(" + ")
            )
        })
        .collect();
    let subset = if c.subset.is_empty() {
        String::new()
    } else {
        format!(" {}", c.subset)
    };
    let host = c.host.split('.').next().unwrap_or("");
    if table.is_empty() {
        return format!("{host}:{}{subset}: {}", c.port, c.verdict);
    }
    format!(
        "{host}:{}{subset}: {}: {}",
        c.port,
        table.join("; "),
        c.verdict
    )
}

fn meaning(verdict: &str) -> &'static str {
    match verdict {
        "spread" => "traffic always crosses clusters",
        "inert" => "no outlier detection: no priorities, nothing fails over",
        "capped" => "maxEjectionPercent keeps the local priority from emptying",
        "plaintext" => "the remote gateway gets no Istio mTLS and rejects failover traffic",
        "remote-first" => "traffic goes to the remote cluster first",
        "no-local" => "no local endpoint: every request crosses clusters",
        "no-remote" => "the failover endpoints never join the Service",
        traffic::PILOT_PANIC => "pilot panics building this cluster, and istiod with it",
        _ => "no endpoint at all",
    }
}

fn check_fg601(object: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    let Some(world) = cx.world else { return };
    if !cx.config.in_failover_scope(&cx.subject.namespace)
        || cx.config.cluster.localities.is_empty()
    {
        return;
    }
    for host in hosts(object, cx) {
        let Some((service, namespace)) =
            cluster_local_service(&host, &cx.config.cluster.cluster_domain)
        else {
            continue;
        };
        // The world with the object admitted in place of its stored version.
        let same = |other: &Value| cx.subject.is(other);
        // Borrowed, not copied: the world's objects are shared (`Arc`), the admitted one is
        // referenced in place.
        let object: &Value = object;
        let entries = world.service_entries(&host);
        // Nothing to fail over to yet is FG402's to say.
        let local_entry = |o: &Value| {
            Kind::of(o) == Some(Kind::ServiceEntry)
                && str_at(o, &["metadata", "namespace"]).unwrap_or("default") == namespace
        };
        let has_entry = entries.iter().any(|o| !same(o) && local_entry(o))
            || (cx.subject.kind == Kind::ServiceEntry && local_entry(object));
        if !has_entry {
            continue;
        }
        let stored_service = world.service(namespace, service);
        let rules = world.destination_rules(&host);
        // What else pilot reads for the host: the namespace's and the mesh's
        // PeerAuthentications (auto mTLS), and the Namespace (traffic distribution).
        let peers: Vec<Arc<Value>> = world
            .peer_authentications(namespace)
            .into_iter()
            .chain(world.peer_authentications(&cx.config.scope.root_namespace))
            .chain(world.namespace(namespace))
            .collect();
        let mut inputs: Vec<Input<'_>> =
            Vec::with_capacity(entries.len() + rules.len() + peers.len() + 2);
        if cx.subject.kind == Kind::Service {
            inputs.push(Input::Admitted(object));
        } else if let Some(svc) = &stored_service {
            inputs.push(Input::Stored(svc));
        } else {
            continue;
        }
        inputs.extend(
            rules
                .iter()
                .chain(entries.iter())
                .filter(|o| !same(o))
                .map(Input::Stored),
        );
        inputs.extend(peers.iter().map(Input::Stored));
        if cx.subject.kind != Kind::Service {
            inputs.push(Input::Admitted(object));
        }
        let objects: Vec<&Value> = inputs.iter().map(Input::value).collect();
        let work = || judge(&objects, cx, namespace, &host);
        // A re-applied object in an unchanged world gets the answer it got last time.
        let issue = match world.memo() {
            Some(memo) => memo.get_or_insert_with(
                &format!("FG601 {host} {}", cx.subject),
                cx.config.topology.generation,
                &inputs,
                work,
            ),
            None => Arc::new(work()),
        };
        out.extend(Option::clone(&issue));
    }
}

/// The simulation of `host` over `objects` for clients in each of this cluster's localities:
/// one warning when some Envoy cluster falls short, naming the plain cluster first (the one
/// most clients use) and how many other Envoy clusters (subsets, ports) fall short too.
fn judge(objects: &[&Value], cx: &Context<'_>, namespace: &str, host: &str) -> Option<Issue> {
    let clients: Vec<Client> = cx
        .config
        .cluster
        .localities
        .iter()
        .map(|l| Client {
            locality: l.clone(),
            namespace: namespace.to_owned(),
        })
        .collect();
    let mut failing = traffic::shortfalls(objects, cx.config, &clients, host);
    failing.sort_by_key(|c| (!c.subset.is_empty(), c.port, c.subset.clone()));
    let lines: std::collections::BTreeSet<String> = failing.iter().map(summary).collect();
    let first = failing.first()?;
    let others = lines.len() - 1;
    let mut line = summary(first);
    if others > 0 {
        line.push_str(&format!(
            " (and {others} more Envoy cluster{})",
            if others == 1 { "" } else { "s" }
        ));
    }
    Some(
        Issue::warn("spec", line)
            .because(meaning(&first.verdict))
            .fix("run `failover-guard simulate` on these objects for the full table"),
    )
}

// === FG602 crashes-pilot ===

/// FG602: an object that, with those already stored, makes pilot panic.
pub static FG602: Rule = Rule {
    id: "FG602",
    name: "crashes-pilot",
    kinds: &[Kind::DestinationRule, Kind::ServiceEntry],
    default: Mode::Deny,
    can_mutate: false,
    needs_world: true,
    guards_istiod: true,
    summary: "A DestinationRule or ServiceEntry that, together with the objects already stored, \
              makes pilot panic while building a cluster is denied, whichever of them arrives \
              second: failoverPriority (with outlier detection) on a DNS-resolved ServiceEntry \
              host whose endpoints span more than one locality.",
    istio: "For a DNS-resolved host, pilot wraps the cluster's endpoints as one group: the first \
            locality group the CDS endpoint builder made, beside every endpoint of the port \
            (pilot/pkg/networking/core/cluster.go buildOutboundClusters, \
            dnsWrappedLocalityLbEndpoints). failoverPriority then ranks the endpoints by position \
            (loadbalancer.go applyFailoverPriorityPerLocality) and indexes the first group with \
            positions of all of them: with endpoints in two localities the index is out of range \
            and pilot panics. Pilot's push path has no recover, so one such pair of objects takes \
            istiod down at this Istio version. The model (src/istio/traffic.rs \
            dns_failover_priorities) predicts it and the Istio harness shows the panic.",
    example_bad: "# with a DestinationRule for api.example.com that sets outlierDetection and\n# localityLbSetting.failoverPriority\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: api, namespace: bookinfo}\nspec:\n  hosts: [api.example.com]\n  location: MESH_EXTERNAL\n  resolution: DNS\n  ports: [{number: 443, name: tls, protocol: TLS}]\n  endpoints:\n  - {address: api-a.example.com, locality: europe-west1/europe-west1-b}\n  - {address: api-b.example.com, locality: europe-west4/europe-west4-a}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: api, namespace: bookinfo}\nspec:\n  hosts: [api.example.com]\n  location: MESH_EXTERNAL\n  resolution: DNS\n  ports: [{number: 443, name: tls, protocol: TLS}]\n  endpoints:\n  - {address: api-a.example.com, locality: europe-west1/europe-west1-b}\n  - {address: api-b.example.com, locality: europe-west1/europe-west1-b}\n",
    check: check_fg602,
};

use crate::istio::dns_resolved;

/// The hosts an object takes part in that name a cluster of their own (no wildcards).
fn named_hosts(object: &Value, cx: &Context<'_>) -> Vec<String> {
    object_hosts(object, cx)
        .into_iter()
        .filter(|h| !h.contains('*'))
        .collect()
}

/// The Envoy clusters pilot could not build for `host` with `object` admitted beside the
/// world's objects (empty when the host has no DNS-resolved entry or no DestinationRule).
pub(crate) fn pilot_panics_with(
    object: &Value,
    cx: &Context<'_>,
    world: &dyn crate::world::World,
    host: &str,
) -> Vec<EnvoyCluster> {
    let same = |other: &Value| cx.subject.is(other);
    let entries: Vec<Arc<Value>> = world
        .service_entries(host)
        .into_iter()
        .filter(|o| !same(o))
        .collect();
    let rules: Vec<Arc<Value>> = world
        .destination_rules(host)
        .into_iter()
        .filter(|o| !same(o))
        .collect();
    let is_entry = cx.subject.kind == Kind::ServiceEntry;
    let has_dns = entries.iter().any(|e| dns_resolved(e)) || (is_entry && dns_resolved(object));
    let has_rule = !rules.is_empty() || cx.subject.kind == Kind::DestinationRule;
    if !has_dns || !has_rule {
        return Vec::new();
    }
    let service = cluster_local_service(host, &cx.config.cluster.cluster_domain)
        .and_then(|(name, namespace)| world.service(namespace, name));
    let mut all_entries: Vec<&Value> = entries.iter().map(|o| &**o).collect();
    if is_entry {
        all_entries.push(object);
    }
    let rules: Vec<&Value> = rules
        .iter()
        .map(|o| &**o)
        .chain((!is_entry).then_some(object))
        .collect();
    // Clients where each rule and entry lives, and the root namespace: the DestinationRule a
    // client sees depends on its namespace.
    let mut namespaces: Vec<String> = all_entries
        .iter()
        .chain(rules.iter())
        .map(|o| {
            str_at(o, &["metadata", "namespace"])
                .filter(|n| !n.is_empty())
                .unwrap_or(&cx.subject.namespace)
                .to_owned()
        })
        .chain([cx.config.scope.root_namespace.clone()])
        .collect();
    namespaces.sort();
    namespaces.dedup();
    let mut objects: Vec<&Value> = Vec::with_capacity(all_entries.len() + rules.len() + 1);
    objects.extend(service.as_deref());
    objects.extend(all_entries.iter().copied());
    objects.extend(rules.iter().copied());
    traffic::pilot_panics(&objects, cx.config, &namespaces, host)
}

/// Whether pilot would panic on some host of `object` admitted beside the world (FG602's
/// question, for fixes that must not create what FG602 denies).
pub(crate) fn crashes_pilot(object: &Value, cx: &Context<'_>) -> bool {
    let Some(world) = cx.world else { return false };
    named_hosts(object, cx)
        .iter()
        .any(|host| !pilot_panics_with(object, cx, world, host).is_empty())
}

fn check_fg602(object: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    let Some(world) = cx.world else { return };
    for host in named_hosts(object, cx) {
        let crashed = pilot_panics_with(object, cx, world, &host);
        let Some(first) = crashed.first() else {
            continue;
        };
        let localities: std::collections::BTreeSet<&str> = crashed
            .iter()
            .flat_map(|c| c.priorities.iter().map(|p| p.locality.as_str()))
            .map(|l| if l.is_empty() { "(none)" } else { l })
            .collect();
        let localities: Vec<&str> = localities.into_iter().collect();
        out.push(
            Issue::deny(
                "spec",
                format!(
                    "with the objects already stored, pilot panics building {} (failoverPriority on the DNS-resolved host {host}, whose endpoints span the localities {})",
                    first.name,
                    localities.join(", ")
                ),
            )
            .because("pilot ranks a DNS cluster's endpoints of every locality against its first locality's group (loadbalancer.go applyFailoverPriorityPerLocality: index out of range), and istiod's push has no recover: this Istio version's control plane crashes")
            .fix(format!("keep the DNS entry's endpoints for {host} in one locality, resolve it STATIC with IP endpoints, or remove failoverPriority from the DestinationRule for {host}")),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::Config,
        rules::testing::{run_rule, yaml},
        world::ManifestWorld,
    };

    fn warnings(config: &Config, world: &ManifestWorld, object: &Value) -> Vec<String> {
        let (_, issues) = run_rule(&FG601, config, Some(world), object, false);
        issues.into_iter().map(|i| i.problem.into_owned()).collect()
    }

    /// A cluster with no endpoint reads as its verdict, not as an empty table.
    #[test]
    fn an_empty_table_reads_as_its_verdict() {
        let cluster = EnvoyCluster {
            name: "outbound|9080||reviews.bookinfo.svc.cluster.local".into(),
            host: "reviews.bookinfo.svc.cluster.local".into(),
            port: 9080,
            subset: "v1".into(),
            client: Client {
                locality: "europe-west1/europe-west1-b".into(),
                namespace: "bookinfo".into(),
            },
            kind: "EDS".into(),
            outlier_detection: true,
            max_ejection_percent: 0,
            destination_rule: vec![],
            priorities: vec![],
            verdict: "no-endpoints".into(),
        };
        assert_eq!(summary(&cluster), "reviews:9080 v1: no-endpoints");
    }

    /// What FG602 denies takes istiod down: no configuration and no skip annotation lets it
    /// through.
    #[test]
    fn fg602_cannot_be_switched_off_or_skipped() {
        let base = crate::config::EXAMPLE;
        for mode in ["off", "warn", "mutate"] {
            let text = base.replace("rules: {}", &format!("rules: {{FG602: {mode}}}"));
            let err = crate::engine::parse_config(&text, "config.yaml")
                .expect_err("FG602 switched off")
                .to_string();
            assert!(err.contains("FG602 cannot"), "{mode}: {err}");
        }
        let entry = yaml(
            "{apiVersion: networking.istio.io/v1, kind: ServiceEntry, metadata: {name: api, namespace: ns}, spec: {hosts: [api.example.com], resolution: DNS, ports: [{number: 443, name: tls, protocol: TLS}], endpoints: [{address: api-a.example.com, locality: a/b}, {address: api-b.example.com, locality: c/d}]}}",
        );
        let world = ManifestWorld::new([&entry], "default", "svc.cluster.local");
        let mut rule = yaml(&format!(
            "{{apiVersion: networking.istio.io/v1, kind: DestinationRule, metadata: {{name: api, namespace: ns, annotations: {{{}: 'FG602,FG108'}}}}, spec: {{host: api.example.com, trafficPolicy: {{outlierDetection: {{consecutive5xxErrors: 5}}, loadBalancer: {{localityLbSetting: {{failoverPriority: [topology.kubernetes.io/region]}}}}}}}}}}",
            crate::object::SKIP_ANNOTATION
        ));
        let judged = crate::engine::evaluate(
            &mut rule,
            &Config::example(),
            Some(&world),
            "default",
            crate::engine::Pass::Validate,
        );
        assert_eq!(
            judged.denials().map(|f| f.rule).collect::<Vec<_>>(),
            ["FG602"]
        );
        assert!(!judged.skipped.contains(&"FG602"));
    }

    /// FG601 remembers its simulations; what it answers must still follow every change of the
    /// admitted object, the world and the configuration.
    #[test]
    fn remembered_verdicts_follow_the_object_the_world_and_the_config() {
        let service = yaml(
            "{apiVersion: v1, kind: Service, metadata: {name: reviews, namespace: bookinfo}, spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}}",
        );
        let entry = |locality: &str| {
            yaml(&format!(
                "{{apiVersion: networking.istio.io/v1, kind: ServiceEntry, metadata: {{name: reviews-failover, namespace: bookinfo}}, spec: {{hosts: [reviews.bookinfo.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{{number: 9080, name: http, protocol: HTTP}}], endpoints: [{{address: 203.0.113.10, ports: {{http: 15443}}, locality: {locality}, labels: {{security.istio.io/tlsMode: istio}}}}]}}}}"
            ))
        };
        let rule = |policy: &str| {
            yaml(&format!(
                "{{apiVersion: networking.istio.io/v1, kind: DestinationRule, metadata: {{name: reviews, namespace: bookinfo}}, spec: {{host: reviews, trafficPolicy: {policy}}}}}"
            ))
        };
        let inert = rule("{connectionPool: {tcp: {maxConnections: 10}}}");
        let good = rule("{outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}}");
        let config = Config::example();
        let mut world = ManifestWorld::new(
            [&service, &entry("europe-west4/europe-west4-a")],
            "default",
            "svc.cluster.local",
        );
        let is = |found: Vec<String>, verdict: &str| {
            assert!(
                found.len() == 1 && found[0].ends_with(verdict),
                "{verdict}: {found:?}"
            )
        };
        is(warnings(&config, &world, &inert), ": inert");
        is(warnings(&config, &world, &inert), ": inert");
        assert_eq!(warnings(&config, &world, &good), Vec::<String>::new());
        is(warnings(&config, &world, &inert), ": inert");
        // The world changes: the entry's gateway now carries this cluster's locality.
        world.upsert(entry("europe-west1/europe-west1-b"));
        is(warnings(&config, &world, &good), ": spread");
        world.upsert(entry("europe-west4/europe-west4-a"));
        assert_eq!(warnings(&config, &world, &good), Vec::<String>::new());
        // Another configuration: this cluster now sits where the remote's gateway is.
        let mut moved = Config::example();
        moved.cluster.localities = vec!["europe-west4/europe-west4-a".into()];
        let moved = moved.with_discovered(&[]);
        is(warnings(&moved, &world, &good), ": spread");
    }
}
