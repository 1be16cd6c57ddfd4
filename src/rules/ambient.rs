//! Rules for ambient namespaces (FG118, FG215, FG409): what ztunnel and waypoints read, which
//! is not what sidecars read (src/istio/ambient.rs).

use serde_json::Value;

use super::{Context, Issue, Issues, Rule};
use crate::{
    config::Mode,
    istio::ambient::{
        DataPlane, Scope, is_gateway_service, namespace_dataplane, scopes_services, service_scope,
        use_waypoint,
    },
    object::{Field as _, Kind},
};

/// The ambient Service a cluster-local host names, with its namespace object, when the
/// service's namespace is ambient and no waypoint is bound to it: ztunnel alone carries
/// ambient clients' traffic to it.
fn ztunnel_only(host: &str, cx: &Context<'_>) -> Option<(String, String)> {
    let world = cx.world?;
    let (name, namespace) =
        crate::istio::cluster_local_service(host, &cx.config.cluster.cluster_domain)?;
    let service = world.service(namespace, name)?;
    let ns = world.namespace(namespace);
    (namespace_dataplane(ns.as_deref()) == DataPlane::Ambient
        && use_waypoint(&service, ns.as_deref()).is_none())
    .then(|| (namespace.to_owned(), name.to_owned()))
}

/// Whether a traffic policy (or one of its port-level entries) sets what ztunnel ignores.
fn sets_failover(policy: Option<&Value>) -> bool {
    let Some(policy) = policy else { return false };
    let own = ["outlierDetection", "loadBalancer"]
        .iter()
        .any(|k| policy.field(k).is_some_and(|v| !v.is_null()));
    own || policy
        .field("portLevelSettings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|p| sets_failover(Some(p)))
}

// === FG118 ambient-service-ignores-destination-rule ===

/// FG118: locality and outlier settings for an ambient service without a waypoint.
pub static FG118: Rule = Rule {
    id: "FG118",
    name: "ambient-service-ignores-destination-rule",
    kinds: &[Kind::DestinationRule],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: true,
    guards_istiod: false,
    summary: "A DestinationRule with outlier detection or load-balancer settings for a Service in \
              an ambient namespace with no waypoint is a warning: ztunnel, which carries the \
              ambient clients' traffic, never reads it; it points at the Service's traffic \
              distribution or a waypoint.",
    istio: "In ambient mode a client's ztunnel connects to the service's endpoints itself unless \
            a waypoint is bound (pilot/pkg/serviceregistry/ambient waypoints.go \
            fetchWaypointForService: istio.io/use-waypoint on the Service, else its namespace). \
            What ztunnel receives for the service (services.go constructService, the \
            workloadapi.Service LoadBalancing) comes from its traffic distribution only: \
            DestinationRules are not part of it, so their outlier detection, localityLbSetting \
            and failoverPriority change nothing for ambient clients (istio/istio#55466). \
            Sidecar clients elsewhere still use the rule.",
    example_bad: "# Namespace sample is labelled istio.io/dataplane-mode: ambient; Service sample/helloworld has no waypoint\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: helloworld, namespace: sample}\nspec:\n  host: helloworld\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n    loadBalancer:\n      localityLbSetting:\n        failoverPriority: [topology.istio.io/cluster]\n",
    example_fixed: "apiVersion: v1\nkind: Service\nmetadata:\n  name: helloworld\n  namespace: sample\n  labels: {istio.io/use-waypoint: waypoint}   # or: spec.trafficDistribution: PreferClose\nspec:\n  selector: {app: helloworld}\n  ports: [{name: http, port: 5000}]\n",
    check: check_fg118,
};

fn check_fg118(dr: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    let Some(host) = super::destination_rule::rule_host(dr, cx) else {
        return;
    };
    let Some((namespace, name)) = ztunnel_only(host, cx) else {
        return;
    };
    let policies = std::iter::once(dr.path(&["spec", "trafficPolicy"])).chain(
        dr.path(&["spec", "subsets"])
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|s| s.field("trafficPolicy")),
    );
    if !policies.into_iter().any(sets_failover) {
        return;
    }
    out.push(
        Issue::warn(
            "spec.trafficPolicy",
            format!("Service {namespace}/{name} is in an ambient namespace and has no waypoint, so ztunnel, which carries its ambient clients' traffic, never reads this DestinationRule"),
        )
        .because("its outlier detection and locality settings change nothing for ambient clients: ztunnel orders endpoints by the Service's traffic distribution and fails over on readiness (sidecar clients still use the rule)")
        .fix(format!("set spec.trafficDistribution: PreferClose on Service {namespace}/{name} for locality-preferring failover, or bind a waypoint (label istio.io/use-waypoint) so that the rule applies")),
    );
}

// === FG215 ambient-namespace-sidecar-failover-entry ===

/// FG215: the sidecar pattern's failover entry in an ambient namespace.
pub static FG215: Rule = Rule {
    id: "FG215",
    name: "ambient-namespace-sidecar-failover-entry",
    kinds: &[Kind::ServiceEntry],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: true,
    guards_istiod: false,
    summary: "A failover ServiceEntry (remote east-west gateways at their mTLS port) in an \
              ambient namespace is a warning: ambient clients cannot use those endpoints; \
              ambient multicluster goes through istio-east-west gateways over HBONE.",
    istio: "The sidecar pattern's entry lists each remote east-west gateway's AUTO_PASSTHROUGH \
            port (15443), which routes by the SNI of the client sidecar's Istio mTLS. ztunnel \
            sends a mesh workload HBONE on 15008 and anything it does not know as a mesh \
            workload as plain TCP, so the gateway's TLS listener gets no SNI to route by. \
            Ambient multicluster instead merges global services across clusters and reaches \
            another network through an `istio-east-west` Gateway's HBONE listener \
            (pilot/pkg/serviceregistry/ambient, network gateways with an HBONE port).",
    example_bad: "# Namespace bookinfo is labelled istio.io/dataplane-mode: ambient\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - {address: 203.0.113.10, ports: {http: 15443}, locality: europe-west4/europe-west4-a, labels: {security.istio.io/tlsMode: istio}}\n",
    example_fixed: "# no entry: label the Service istio.io/global: \"true\" in every cluster\napiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n  namespace: bookinfo\n  labels: {istio.io/global: \"true\"}\nspec:\n  selector: {app: reviews}\n  ports: [{name: http, port: 9080}]\n",
    check: check_fg215,
};

fn check_fg215(se: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    let Some(world) = cx.world else { return };
    let ns = world.namespace(&cx.subject.namespace);
    if namespace_dataplane(ns.as_deref()) != DataPlane::Ambient
        || !super::service_entry::failover_shaped(se, cx)
        || se
            .path(&["spec", "endpoints"])
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
    {
        return;
    }
    out.push(
        Issue::warn(
            "spec.endpoints",
            format!(
                "namespace {} is ambient: its clients cannot fail over through this entry's east-west gateway endpoints",
                cx.subject.namespace
            ),
        )
        .because("the gateways' AUTO_PASSTHROUGH port routes by the SNI of a sidecar's Istio mTLS, which ztunnel does not send")
        .fix("for ambient multicluster, label the Service istio.io/global: \"true\" in every cluster and install an istio-east-west gateway; keep this entry only for sidecar namespaces"),
    );
}

// === FG409 waypoint-scope-mismatch ===

/// FG409: a service and its waypoint with different scopes in multi-network ambient.
pub static FG409: Rule = Rule {
    id: "FG409",
    name: "waypoint-scope-mismatch",
    kinds: &[Kind::Service],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: true,
    guards_istiod: false,
    summary: "Where the mesh scopes services (serviceScopeConfigs), a global Service bound to a \
              waypoint that is not global, or a local Service bound to a global waypoint, is a \
              warning.",
    istio: "Multi-network ambient merges only global services across clusters \
            (pilot/pkg/serviceregistry/ambient services.go matchServiceScope; a remote cluster's \
            non-global services are dropped). A service bound to a waypoint is reached through \
            that waypoint: if the waypoint's own Service is local, the other clusters never see \
            it and traffic never crosses clusters (istio/istio#57779, #58064); if a local \
            service shares a global waypoint, the other clusters reach it through the waypoint \
            (#57710).",
    example_bad: "apiVersion: v1\nkind: Service\nmetadata:\n  name: helloworld\n  namespace: sample\n  labels: {istio.io/global: \"true\", istio.io/use-waypoint: waypoint}\nspec:\n  selector: {app: helloworld}\n  ports: [{name: http, port: 5000}]\n# Service sample/waypoint has no istio.io/global label\n",
    example_fixed: "# label the waypoint's Service too\napiVersion: v1\nkind: Service\nmetadata:\n  name: waypoint\n  namespace: sample\n  labels: {istio.io/global: \"true\", gateway.istio.io/managed: istio.io-mesh-controller}\nspec:\n  ports: [{name: mesh, port: 15008}]\n",
    check: check_fg409,
};

fn check_fg409(svc: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    let Some(world) = cx.world else { return };
    let mesh = &cx.config.mesh;
    if !scopes_services(mesh) {
        return;
    }
    let ns = world.namespace(&cx.subject.namespace);
    let Some((wp_namespace, wp_name)) = use_waypoint(svc, ns.as_deref()) else {
        return;
    };
    let Some(waypoint) = world.service(&wp_namespace, &wp_name) else {
        return;
    };
    let own = service_scope(svc, ns.as_deref(), mesh);
    let theirs = service_scope(&waypoint, world.namespace(&wp_namespace).as_deref(), mesh);
    let name = format!("{}/{}", cx.subject.namespace, cx.subject.name);
    let issue = match (own, theirs) {
        (Scope::Global, Scope::Local) => Issue::warn(
            "metadata.labels",
            format!("Service {name} is global but its waypoint {wp_namespace}/{wp_name} is not"),
        )
        .because("its traffic goes through the waypoint, which the other clusters never see, so it never crosses clusters and does not fail over")
        .fix(format!("make Service {wp_namespace}/{wp_name} global too (label istio.io/global: \"true\") in every cluster")),
        (Scope::Local, Scope::Global) => Issue::warn(
            "metadata.labels",
            format!("Service {name} is local but its waypoint {wp_namespace}/{wp_name} is global"),
        )
        .because("the other clusters reach the global waypoint, and through it this service that was meant to stay in its cluster")
        .fix(format!("bind {name} to a waypoint that is not global, or make it global if that is intended")),
        _ => return,
    };
    out.push(issue);
}

// === FG410 non-global-service-loses-remote-endpoints ===

/// FG410: a Service that multi-network ambient keeps to its own cluster.
pub static FG410: Rule = Rule {
    id: "FG410",
    name: "non-global-service-loses-remote-endpoints",
    kinds: &[Kind::Service],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "In a native multicluster model where the mesh scopes services \
              (serviceScopeConfigs: multi-network ambient), a Service in failover scope that is \
              not global is a warning: pilot drops the other clusters' endpoints of it for every \
              proxy, sidecars included.",
    istio: "With multi-network ambient (AMBIENT_ENABLE_MULTI_NETWORK), pilot's EDS builder keeps \
            an endpoint from another cluster only for a global service \
            (pilot/pkg/xds/endpoints/endpoint_builder.go filterIstioEndpoint: serviceInfo.Scope \
            != Global and the endpoint's cluster is not the proxy's), for sidecars as for \
            ztunnel (istio/istio#61713). The scope comes from the mesh config's \
            serviceScopeConfigs (services.go matchServiceScope); the ambient profile makes \
            Services labelled istio.io/global: \"true\" global. A Service without it has no \
            endpoint to fail over to.",
    example_bad: "# mesh config: serviceScopeConfigs [{servicesSelector: {matchExpressions: [{key: istio.io/global, operator: In, values: [\"true\"]}]}, scope: GLOBAL}]\napiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  selector: {app: reviews}\n  ports: [{name: http, port: 9080}]\n",
    example_fixed: "apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n  namespace: bookinfo\n  labels: {istio.io/global: \"true\"}\nspec:\n  selector: {app: reviews}\n  ports: [{name: http, port: 9080}]\n",
    check: check_fg410,
};

fn check_fg410(svc: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    let mesh = &cx.config.mesh;
    let ns = &cx.subject.namespace;
    if !cx.config.multicluster.native()
        || !scopes_services(mesh)
        || !cx.config.in_failover_scope(ns)
        || cx.config.scope.gateway_namespaces.contains(ns)
        || is_gateway_service(svc)
    {
        return;
    }
    // The namespace exists where the Service does; without the world its labels are unknown.
    let empty = serde_json::json!({});
    let namespace = cx.world.and_then(|w| w.namespace(ns));
    let namespace = namespace.as_deref().unwrap_or(&empty);
    if service_scope(svc, Some(namespace), mesh) == Scope::Global {
        return;
    }
    out.push(
        Issue::warn(
            "metadata.labels",
            format!("Service {ns}/{} is not global, so pilot keeps only this cluster's endpoints of it", cx.subject.name),
        )
        .because("with multi-network ambient, the other clusters' endpoints of a service that is not global are dropped for every proxy, sidecars included: it never fails over to another cluster")
        .fix("make it global as the mesh config's serviceScopeConfigs say (with Istio's ambient profile: label it istio.io/global: \"true\" in every cluster)"),
    );
}

// === FG411 waypoint-not-uniform ===

/// FG411: a global service whose waypoint binding differs between clusters.
pub static FG411: Rule = Rule {
    id: "FG411",
    name: "waypoint-not-uniform",
    kinds: &[Kind::Service],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "In a native multicluster model, a Service whose waypoint (its istio.io/use-waypoint \
              label, else its namespace's) or istio.io/global label differs from the same \
              Service's in a remote cluster (read through discovery or --remote) is a warning.",
    istio: "Ambient multicluster merges a global service across clusters and supports only a \
            uniform waypoint setup: the same waypoint in every cluster that has the service, or \
            none anywhere (istio/istio#57394). A waypoint removed in one cluster and kept in \
            another makes cross-cluster requests fail the TLS handshake (#60985; the \
            maintainers' advice is to keep the configuration and scale the waypoint to 0); a \
            service global in one cluster and local in another is merged only where it is \
            global (pilot/pkg/serviceregistry/ambient services.go: a remote's non-global \
            service is dropped).",
    example_bad: "# cluster-b's Service sample/helloworld has istio.io/use-waypoint: waypoint\napiVersion: v1\nkind: Service\nmetadata:\n  name: helloworld\n  namespace: sample\n  labels: {istio.io/global: \"true\"}\nspec:\n  selector: {app: helloworld}\n  ports: [{name: http, port: 5000}]\n",
    example_fixed: "apiVersion: v1\nkind: Service\nmetadata:\n  name: helloworld\n  namespace: sample\n  labels: {istio.io/global: \"true\", istio.io/use-waypoint: waypoint}\nspec:\n  selector: {app: helloworld}\n  ports: [{name: http, port: 5000}]\n",
    check: check_fg411,
};

fn check_fg411(svc: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    use crate::istio::ambient::USE_WAYPOINT;
    if !cx.config.multicluster.native() {
        return;
    }
    let label = |o: &Value, key: &str| {
        o.path(&["metadata", "labels", key])
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let ns = &cx.subject.namespace;
    let name = &cx.subject.name;
    for remote in &cx.config.remotes {
        let Some(theirs) = remote.workloads.as_ref() else {
            continue;
        };
        let theirs = theirs.lookup();
        let Some(their_service) = theirs.get("", "Service", ns, name) else {
            continue;
        };
        // The waypoint as each cluster binds it (the Service's label, else its namespace's).
        let their_namespace = theirs.get("", "Namespace", "", ns);
        let our_namespace = cx.world.and_then(|w| w.namespace(ns));
        let waypoint = |o: &Value, n: Option<&Value>| {
            use_waypoint(o, n).map(|(wns, wname)| format!("{wns}/{wname}"))
        };
        for (key, what, here, there) in [
            (
                USE_WAYPOINT,
                "waypoint",
                waypoint(svc, our_namespace.as_deref()),
                waypoint(their_service, their_namespace),
            ),
            (
                "istio.io/global",
                "global label",
                label(svc, "istio.io/global"),
                label(their_service, "istio.io/global"),
            ),
        ] {
            if here == there {
                continue;
            }
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_owned());
            out.push(
                Issue::warn(
                    format!("metadata.labels[{key}]"),
                    format!(
                        "Service {ns}/{name} has {what} {} here but {} in {}",
                        show(&here),
                        show(&there),
                        remote.name
                    ),
                )
                .because(format!("ambient multicluster needs the same {what} for a service in every cluster: with a waypoint in one cluster and none in the other, cross-cluster requests fail; a service global in one cluster only is merged only there"))
                .fix(format!("use the same {key} in every cluster (to stop using a waypoint in one cluster, scale it to 0 instead of removing it)")),
            );
        }
    }
}

// === FG412 sidecars-cannot-use-ambient-gateway ===

/// FG412: sidecar clients and a remote network reached only through ambient's gateway.
pub static FG412: Rule = Rule {
    id: "FG412",
    name: "sidecars-cannot-use-ambient-gateway",
    kinds: &[Kind::Service],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: true,
    guards_istiod: false,
    summary: "In a native multicluster model, a Service in failover scope in a sidecar namespace is \
              a warning when a remote on another network has only an HBONE east-west gateway \
              (15008, ambient's): sidecars get no endpoint of that network.",
    istio: "Pilot gives a network gateway that does not listen on its mTLS port (15443, or the \
            networking.istio.io/gatewayPort label) no port for sidecars \
            (pilot/pkg/serviceregistry/kube/controller/network.go getGatewayDetails) and skips it \
            when it builds a sidecar's endpoints (pilot/pkg/xds/endpoints/ep_filters.go \
            selectNetworkGateways: Port 0). The other network's endpoints are then dropped \
            (with AMBIENT_ENABLE_MULTI_NETWORK: no reachable gateway) or sent as pod addresses \
            of another network that nothing routes to: sidecar clients never fail over there \
            (istio/istio#57878; ambient clients go through the gateway over double HBONE).",
    example_bad: "# remotes: [{name: cluster2, network: network2, locality: region2/zone1, gateway: {address: 198.51.100.20, port: 15008}}]\napiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  selector: {app: reviews}\n  ports: [{name: http, port: 9080}]\n",
    example_fixed: "# cluster2 also runs a sidecar east-west gateway (AUTO_PASSTHROUGH on 15443)\n# remotes: [{name: cluster2, network: network2, locality: region2/zone1, gateway: {address: 198.51.100.21, port: 15443}}]\n",
    check: check_fg412,
};

fn check_fg412(svc: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    let ns = &cx.subject.namespace;
    let config = cx.config;
    if !config.multicluster.native()
        || !config.in_failover_scope(ns)
        || config.scope.gateway_namespaces.contains(ns)
        || is_gateway_service(svc)
    {
        return;
    }
    let Some(world) = cx.world else { return };
    if namespace_dataplane(world.namespace(ns).as_deref()) == DataPlane::Ambient {
        return;
    }
    let unreachable: Vec<String> = config
        .remotes
        .iter()
        .filter(|r| {
            r.network != config.cluster.network
                && crate::istio::multicluster::hbone_only(r.gateway.port)
        })
        .map(|r| format!("{} ({})", r.name, r.network))
        .collect();
    if unreachable.is_empty() {
        return;
    }
    out.push(
        Issue::warn(
            "metadata",
            format!(
                "sidecar clients of Service {ns}/{} get no endpoint of {}: its east-west gateway speaks HBONE only (15008)",
                cx.subject.name,
                unreachable.join(", ")
            ),
        )
        .because("pilot gives sidecars no port on an ambient east-west gateway and drops, or sends unroutable, the endpoints behind it: they never fail over to that cluster")
        .fix("run a sidecar east-west gateway (AUTO_PASSTHROUGH on 15443) there as well and configure it as the remote's gateway, or enroll the clients' namespace in ambient"),
    );
}
