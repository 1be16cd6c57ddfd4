//! `failover-guard simulate`: where traffic for each host goes, per client, as Envoy gets it
//! from pilot (the model in [`crate::istio::traffic`]), and which priority carries the traffic
//! when a locality or cluster fails. An adapter: objects and a request in, a report out.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::{
    config::Config,
    istio::traffic::{self, Client, EnvoyCluster, Priority},
};

/// What to simulate.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Hosts to report (all when empty).
    pub hosts: Vec<String>,
    /// Client localities (this cluster's configured ones when empty).
    pub from: Vec<String>,
    /// Client namespace (each host's own when absent).
    pub namespace: Option<String>,
    /// Failures to apply: localities or cluster names.
    pub fail: Vec<String>,
}

/// One Envoy cluster with what happens under the requested failures.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterReport {
    #[serde(flatten)]
    pub cluster: EnvoyCluster,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

/// The table after ejecting the failed endpoints.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub fail: Vec<String>,
    pub priorities: Vec<Priority>,
    /// The priority that now carries the traffic; `None`: an outage.
    pub carried_by: Option<u32>,
    /// The remote clusters that receive it, if any.
    pub clusters: Vec<String>,
}

/// What an ambient client's ztunnel gets for a Service in an ambient namespace.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZtunnelReport {
    pub host: String,
    /// The waypoint (namespace/name) its traffic goes through; the Envoy tables above are then
    /// what the waypoint does with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waypoint: Option<String>,
    pub load_balancing: crate::istio::ambient::ZtunnelLoadBalancing,
    /// "global" or "local" where the mesh scopes services (multi-network ambient).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'static str>,
    /// The workloads ztunnel receives for the Service.
    pub workloads: Vec<crate::istio::ambient::ZtunnelWorkload>,
    /// Per client locality, the workloads (indexes into `workloads`) in the order ztunnel
    /// tries them: one tier per rank, the first tier first; a workload in no tier is never
    /// used (STRICT).
    pub order: Vec<ZtunnelOrder>,
}

/// The order in which one client's ztunnel uses a Service's workloads.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZtunnelOrder {
    pub from: String,
    pub tiers: Vec<Vec<usize>>,
}

/// The whole answer.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub clusters: Vec<ClusterReport>,
    /// Services in ambient namespaces, as ztunnel sees them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ztunnel: Vec<ZtunnelReport>,
    /// Local workloads assumed because the input had none.
    pub synthesized: Vec<String>,
}

/// Simulates every requested host for every requested client.
pub fn run(objects: &[Value], config: &Config, request: &Request) -> Report {
    let localities = if request.from.is_empty() {
        config.cluster.localities.clone()
    } else {
        request.from.clone()
    };
    let mut clusters = Vec::new();
    let mut synthesized = Vec::new();
    // Clients of each host's namespace, unless one namespace is asked for.
    let mut by_namespace: Vec<(String, Vec<String>)> = Vec::new();
    for (host, namespace) in traffic::hosts(objects, config) {
        if !request.hosts.is_empty() && !request.hosts.contains(&host) {
            continue;
        }
        let ns = request.namespace.clone().unwrap_or(namespace);
        match by_namespace.iter_mut().find(|(n, _)| *n == ns) {
            Some((_, hosts)) => hosts.push(host),
            None => by_namespace.push((ns, vec![host])),
        }
    }
    for (namespace, hosts) in by_namespace {
        let clients: Vec<Client> = localities
            .iter()
            .map(|l| Client {
                locality: l.clone(),
                namespace: namespace.clone(),
            })
            .collect();
        let simulation = traffic::simulate(objects, config, &clients, &hosts);
        synthesized = simulation.synthesized;
        clusters.extend(simulation.clusters.into_iter().map(|cluster| {
            let failure =
                (!request.fail.is_empty()).then(|| failure(&cluster, config, &request.fail));
            ClusterReport { cluster, failure }
        }));
    }
    Report {
        clusters,
        ztunnel: ztunnel(objects, config, request),
        synthesized,
    }
}

/// The Services of ambient namespaces among the objects, as ztunnel receives them.
fn ztunnel(objects: &[Value], config: &Config, request: &Request) -> Vec<ZtunnelReport> {
    use crate::istio::ambient::{
        DataPlane, Scope, ZtunnelClient, namespace_dataplane, scopes_services, service_scope,
        use_waypoint, ztunnel_load_balancing, ztunnel_rank,
    };
    let clients = if request.from.is_empty() {
        &config.cluster.localities
    } else {
        &request.from
    };
    let kind = |o: &Value, k: &str| {
        o.get("kind").and_then(Value::as_str) == Some(k)
            && o.get("apiVersion").and_then(Value::as_str) == Some("v1")
    };
    let name_of = |o: &Value| {
        o.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    objects
        .iter()
        .filter(|o| kind(o, "Service"))
        .filter_map(|svc| {
            let ns_name = svc
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                // As the traffic model reads an object without a namespace.
                .unwrap_or("default");
            let namespace = objects
                .iter()
                .find(|o| kind(o, "Namespace") && name_of(o) == ns_name);
            if namespace_dataplane(namespace) != DataPlane::Ambient {
                return None;
            }
            let host =
                crate::istio::service_host(&name_of(svc), ns_name, &config.cluster.cluster_domain);
            if !request.hosts.is_empty() && !request.hosts.contains(&host) {
                return None;
            }
            let load_balancing = ztunnel_load_balancing(svc, namespace, config.istio.version);
            let workloads = traffic::ztunnel_workloads(objects, config, ns_name, &name_of(svc));
            let order = clients
                .iter()
                .enumerate()
                .map(|(li, locality)| {
                    let client = ZtunnelClient {
                        cluster: config.cluster.name.clone(),
                        network: config.cluster.network.clone(),
                        locality: locality.clone(),
                        // The node the client shares with the workloads assumed in its locality.
                        node: format!("failover-guard-node-{li}"),
                    };
                    let mut tiers: std::collections::BTreeMap<usize, Vec<usize>> =
                        Default::default();
                    for (i, w) in workloads.iter().enumerate() {
                        if let Some(rank) = ztunnel_rank(&load_balancing, &client, w) {
                            tiers.entry(rank).or_default().push(i);
                        }
                    }
                    ZtunnelOrder {
                        from: locality.clone(),
                        tiers: tiers.into_values().collect(),
                    }
                })
                .collect();
            Some(ZtunnelReport {
                host,
                waypoint: use_waypoint(svc, namespace).map(|(ns, name)| format!("{ns}/{name}")),
                load_balancing,
                scope: scopes_services(&config.mesh).then(|| {
                    match service_scope(svc, namespace, &config.mesh) {
                        Scope::Global => "global",
                        Scope::Local => "local",
                    }
                }),
                workloads,
                order,
            })
        })
        .collect()
}

/// The table with the failed endpoints ejected, and the priority Envoy now sends traffic to:
/// the best priority with an endpoint left.
fn failure(cluster: &EnvoyCluster, config: &Config, fail: &[String]) -> Failure {
    let priorities: Vec<Priority> = cluster
        .priorities
        .iter()
        .map(|p| Priority {
            endpoints: p
                .endpoints
                .iter()
                .filter(|e| {
                    !fail
                        .iter()
                        .any(|f| traffic::fails(f, config, &p.locality, e))
                })
                .cloned()
                .collect(),
            ..p.clone()
        })
        .collect();
    let carried_by = priorities
        .iter()
        .filter(|p| !p.endpoints.is_empty())
        .map(|p| p.priority)
        .min();
    let mut clusters: Vec<String> = priorities
        .iter()
        .filter(|p| Some(p.priority) == carried_by)
        .flat_map(|p| p.endpoints.iter().map(|e| e.cluster.clone()))
        .filter(|c| !c.is_empty())
        .collect();
    clusters.dedup();
    Failure {
        fail: fail.to_vec(),
        priorities,
        carried_by,
        clusters,
    }
}

fn table(out: &mut String, priorities: &[Priority]) {
    for p in priorities {
        let endpoints: Vec<String> = p
            .endpoints
            .iter()
            .map(|e| {
                let mut s = format!("{}:{}", e.address, e.port);
                if !e.cluster.is_empty() {
                    s.push_str(&format!(
                        " ({}{})",
                        e.cluster,
                        if e.mtls { ", mTLS" } else { ", plaintext" }
                    ));
                }
                s
            })
            .collect();
        let locality = if p.locality.is_empty() {
            "(no locality)"
        } else {
            &p.locality
        };
        let _ = writeln!(
            out,
            "  p{} {locality}  weight {}  {}",
            p.priority,
            p.weight,
            if endpoints.is_empty() {
                "(no endpoints)".to_owned()
            } else {
                endpoints.join(", ")
            }
        );
    }
}

/// Human output: one block per Envoy cluster and client.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    for c in &report.clusters {
        let cluster = &c.cluster;
        let subset = if cluster.subset.is_empty() {
            String::new()
        } else {
            format!(" subset {}", cluster.subset)
        };
        let _ = writeln!(
            out,
            "{}:{}{subset} from {}@{}: {}",
            cluster.host,
            cluster.port,
            cluster.client.namespace,
            if cluster.client.locality.is_empty() {
                "(no locality)"
            } else {
                &cluster.client.locality
            },
            cluster.verdict
        );
        let od = if cluster.outlier_detection {
            format!(
                "on (maxEjectionPercent {})",
                if cluster.max_ejection_percent == 0 {
                    "unset: 10".to_owned()
                } else {
                    cluster.max_ejection_percent.to_string()
                }
            )
        } else {
            "off".to_owned()
        };
        let rule = if cluster.destination_rule.is_empty() {
            "no DestinationRule".to_owned()
        } else {
            format!("DestinationRule {}", cluster.destination_rule.join(" + "))
        };
        let _ = writeln!(out, "  outlier detection {od}; {rule}");
        table(&mut out, &cluster.priorities);
        if let Some(f) = &c.failure {
            let _ = writeln!(out, "  with {} failed:", f.fail.join(", "));
            table(&mut out, &f.priorities);
            let _ = match f.carried_by {
                None => writeln!(out, "  => outage: no endpoint is left"),
                Some(p) if f.clusters.is_empty() => {
                    writeln!(out, "  => p{p} carries the traffic (local)")
                }
                Some(p) => writeln!(
                    out,
                    "  => p{p} carries the traffic ({})",
                    f.clusters.join(", ")
                ),
            };
        }
        out.push('\n');
    }
    for z in &report.ztunnel {
        let lb = &z.load_balancing;
        let how = if lb.routing_preference.is_empty() {
            "no preference: spread over every endpoint it knows, in every cluster; no local-first failover".to_owned()
        } else {
            format!(
                "prefers {} ({})",
                lb.routing_preference.join(" > "),
                match lb.mode {
                    Some("STRICT") => "STRICT: only the closest endpoints, no failover",
                    _ => "FAILOVER: the closest ready endpoints, then the next scope",
                }
            )
        };
        let _ = match &z.waypoint {
            Some(w) => writeln!(
                out,
                "{} for ambient clients: through waypoint {w}, whose Envoy reads the DestinationRule as in the tables above",
                z.host
            ),
            None => writeln!(
                out,
                "{} for ambient clients: ztunnel (no waypoint, no DestinationRule read) {how}",
                z.host
            ),
        };
        if let Some(scope) = z.scope {
            let _ = writeln!(out, "  scope: {scope}");
        }
        if z.waypoint.is_none() {
            for order in &z.order {
                let tiers: Vec<String> = order
                    .tiers
                    .iter()
                    .map(|tier| {
                        tier.iter()
                            .filter_map(|i| z.workloads.get(*i))
                            .map(|w| {
                                if w.gateway {
                                    format!("{} via {}'s east-west gateway", w.network, w.cluster)
                                } else {
                                    format!("{} {}", w.cluster, w.locality)
                                }
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .collect();
                let _ = if tiers.is_empty() {
                    writeln!(out, "  from {}: no workload it may use", order.from)
                } else {
                    writeln!(out, "  from {}: {}", order.from, tiers.join(" > "))
                };
            }
        }
    }
    if !report.ztunnel.is_empty() {
        out.push('\n');
    }
    if !report.synthesized.is_empty() {
        let _ = writeln!(
            out,
            "Assumed local workloads (the input has none): {}",
            report.synthesized.join(", ")
        );
    }
    out
}
