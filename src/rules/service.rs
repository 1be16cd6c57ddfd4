//! Service and Gateway rules (FG4xx, FG5xx).

use serde_json::{Value, json};

use crate::object::Field as _;

use super::{Context, Issue, Issues, Rule};
use crate::{
    config::Mode,
    object::{Kind, array_at, label},
};

const NETWORK_LABEL: &str = "topology.istio.io/network";

fn selects_gateway(svc: &Value, cx: &Context<'_>) -> bool {
    let selector = &cx.config.scope.gateway_selector;
    let Some(actual) = svc.path(&["spec", "selector"]).and_then(Value::as_object) else {
        return false;
    };
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| actual.field(k).and_then(Value::as_str) == Some(v.as_str()))
}

// === FG401 gateway-network-label ===

/// FG401: the east-west gateway Service must say which network it serves.
pub static FG401: Rule = Rule {
    id: "FG401",
    name: "gateway-network-label",
    kinds: &[Kind::Service],
    default: Mode::Mutate,
    can_mutate: true,
    needs_world: false,
    guards_istiod: false,
    summary: "The east-west gateway Service without topology.istio.io/network gets this cluster's \
              network; a different value is denied.",
    istio: "pilot finds a network's gateway through the topology.istio.io/network label of its \
            Service (pilot/pkg/serviceregistry/kube/controller/network.go \
            extractGatewaysFromService, getGatewayDetails). Without it, or with another network's \
            name, remote clusters do not route cross-network traffic to this gateway and failover \
            into this cluster fails.",
    example_bad: "apiVersion: v1\nkind: Service\nmetadata: {name: istio-eastwestgateway, namespace: istio-system}\nspec:\n  type: LoadBalancer\n  selector: {istio: eastwestgateway}\n  ports: [{name: tls, port: 15443}]\n",
    example_fixed: "apiVersion: v1\nkind: Service\nmetadata:\n  name: istio-eastwestgateway\n  namespace: istio-system\n  labels: {topology.istio.io/network: network-a}\nspec:\n  type: LoadBalancer\n  selector: {istio: eastwestgateway}\n  ports: [{name: tls, port: 15443}]\n",
    check: check_fg401,
};

fn check_fg401(svc: &mut Value, cx: &Context<'_>, fix: bool, out: &mut Issues) {
    if !selects_gateway(svc, cx) {
        return;
    }
    let network = &cx.config.cluster.network;
    match label(svc, NETWORK_LABEL) {
        Some(value) if value == network => {}
        Some(value) => out.push(
            Issue::deny("metadata.labels", format!("east-west gateway is labelled network {value:?}, but this cluster is {network:?}"))
                .because("remote clusters route this network's traffic elsewhere, so failover into this cluster fails")
                .fix(format!("set {NETWORK_LABEL}: {network}, or fix cluster.network in the failover-guard config")),
        ),
        None => {
            let wrote = fix
                .then(|| crate::object::insert_at(svc, &["metadata", "labels"], NETWORK_LABEL, json!(network)))
                .flatten();
            out.push(
                Issue::fixable("metadata.labels", format!("east-west gateway Service has no {NETWORK_LABEL} label"), wrote)
                    .because("remote clusters cannot find this network's gateway, so failover into this cluster fails")
                    .fix(format!("add the label {NETWORK_LABEL}: {network}")),
            );
        }
    }
}

// === FG402 service-not-protected ===

/// FG402: a Service in failover scope without the objects that make failover work.
pub static FG402: Rule = Rule {
    id: "FG402",
    name: "service-not-protected",
    kinds: &[Kind::Service],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: true,
    guards_istiod: false,
    summary: "A Service in failover scope with no DestinationRule that gives it outlier detection, \
              or (in the serviceEntries model) with no failover ServiceEntry, is a warning; in the \
              native models istiod merges the remote endpoints, so only the rule is asked for.",
    istio: "Without a DestinationRule with outlier detection visible to every client \
            (pilot/pkg/model/push_context.go destinationRule: client namespace, service namespace, \
            root namespace), LocalityLBSettings.ApplyToCluster orders no failover; without a \
            failover ServiceEntry listing the remote gateways there is nothing to fail over to: the \
            Service silently has no cross-cluster protection.",
    example_bad: "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  selector: {app: reviews}\n  ports: [{name: http, port: 9080}]\n# and no DestinationRule or ServiceEntry for reviews.bookinfo.svc.cluster.local\n",
    example_fixed: "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  selector: {app: reviews}\n  ports: [{name: http, port: 9080}]\n# plus a DestinationRule (outlierDetection) and a failover ServiceEntry for the same host\n",
    check: check_fg402,
};

fn check_fg402(svc: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    let Some(world) = cx.world else { return };
    let ns = &cx.subject.namespace;
    // In a primary-remote remote, the rules for this Service live in the primary, unseen here.
    let rules_elsewhere = !cx
        .config
        .multicluster
        .istiod_reads_here(Kind::DestinationRule);
    if rules_elsewhere
        || !cx.config.in_failover_scope(ns)
        || cx.config.scope.gateway_namespaces.contains(ns)
        || svc
            .path(&["spec", "selector"])
            .and_then(Value::as_object)
            .is_none_or(|s| s.is_empty())
        || svc.path(&["spec", "type"]).and_then(Value::as_str) == Some("ExternalName")
        || crate::istio::ambient::is_gateway_service(svc)
    {
        return;
    }
    let host = crate::istio::service_host(&cx.subject.name, ns, &cx.config.cluster.cluster_domain);
    let namespace = world.namespace(ns);
    let distribution = crate::istio::service_traffic_distribution(
        svc,
        namespace.as_deref(),
        cx.config.istio.version,
    );
    // An ambient service without a waypoint: ztunnel reads its traffic distribution only.
    if crate::istio::ambient::namespace_dataplane(namespace.as_deref())
        == crate::istio::ambient::DataPlane::Ambient
        && crate::istio::ambient::use_waypoint(svc, namespace.as_deref()).is_none()
    {
        if distribution == crate::istio::TrafficDistribution::Any {
            out.push(
                Issue::warn("metadata.name", format!("{host} is an ambient service with no traffic distribution and no waypoint"))
                    .because("ztunnel spreads its clients' traffic over every endpoint it knows, in every cluster, and prefers no locality: there is no local-first failover")
                    .fix("set spec.trafficDistribution: PreferClose (or the networking.istio.io/traffic-distribution annotation on the Service or its namespace)"),
            );
        }
        return;
    }
    let fg101_fixes = cx
        .config
        .rules
        .get("FG101")
        .is_none_or(|m| *m == Mode::Mutate);
    // The rule every other client gets (PushContext.destinationRule: the service namespace's
    // exported rules, else the root namespace's; see FG113).
    let index = super::world_destination_rules(cx, &host);
    let rule = index
        .as_ref()
        .and_then(|index| index.for_other_namespaces(&host, ns));
    let detects = rule.is_some_and(|rule| {
        fg101_fixes
            || rule
                .traffic_policy
                .as_ref()
                .and_then(|p| p.field("outlierDetection"))
                .is_some_and(|od| !od.is_null())
    });
    // A traffic distribution fails over on readiness with no outlier detection, unless a
    // rule's localityLbSetting replaces it (GetEffectiveLbSetting; FG117).
    let distributes = distribution != crate::istio::TrafficDistribution::Any
        && cx
            .config
            .istio
            .version
            .has(crate::istio::version::Behaviour::SidecarTrafficDistribution)
        && rule
            .and_then(|r| r.traffic_policy.as_ref())
            .and_then(|p| p.path(&["loadBalancer", "localityLbSetting"]))
            .is_none_or(Value::is_null);
    let protected = detects || distributes;
    let mut missing = Vec::new();
    if !protected {
        missing.push("DestinationRule with outlierDetection");
    }
    // In the native models istiod merges the remote clusters' endpoints itself.
    let native = cx.config.multicluster.native();
    if !native && world.service_entries(&host).is_empty() {
        missing.push("failover ServiceEntry");
    }
    if !missing.is_empty() {
        let because = if native {
            "istiod merges the remote clusters' endpoints of this Service, but without outlier detection it turns locality load balancing off: traffic is spread over every cluster and never fails over"
        } else {
            "Istio will not fail this Service over to the remote clusters"
        };
        out.push(
            Issue::warn(
                "metadata.name",
                format!("{host} has no {}", missing.join(" and no ")),
            )
            .because(because)
            .fix(format!("create a {} for {host}", missing.join(" and a "))),
        );
    }
}

// === FG403 unnamed-service-port ===

/// FG403: failover entries merge with Service ports by name.
pub static FG403: Rule = Rule {
    id: "FG403",
    name: "unnamed-service-port",
    kinds: &[Kind::Service],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "A Service port without a name is a warning (appProtocol does not make it mergeable).",
    istio: "A failover ServiceEntry's endpoints join a Kubernetes Service port only when the \
            entry's port name equals the Service port's name (pilot/pkg/serviceregistry/\
            serviceentry: endpoints are keyed by ServicePortName, and the EDS builder \
            pilot/pkg/xds/endpoints/endpoint_builder.go keeps only endpoints of the cluster's \
            port name). An unnamed port cannot be matched by name, whatever its appProtocol.",
    example_bad: "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  selector: {app: reviews}\n  ports: [{port: 9080}]\n",
    example_fixed: "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  selector: {app: reviews}\n  ports: [{name: http, port: 9080, appProtocol: http}]\n",
    check: check_fg403,
};

fn check_fg403(svc: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    // Only a failover entry merges by port name: none in the native models, none that ambient
    // clients use.
    let ambient = cx.world.is_some_and(|w| {
        crate::istio::ambient::namespace_dataplane(w.namespace(&cx.subject.namespace).as_deref())
            == crate::istio::ambient::DataPlane::Ambient
    });
    if !cx.config.in_failover_scope(&cx.subject.namespace)
        || cx.config.multicluster.native()
        || ambient
    {
        return;
    }
    for (i, port) in array_at(svc, &["spec", "ports"]).iter().enumerate() {
        let named = |k: &str| {
            port.field(k)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        };
        if !named("name") {
            let number = port
                .field("port")
                .map(|p| p.to_string())
                .unwrap_or_default();
            out.push(
                Issue::warn(
                    format!("spec.ports[{i}]"),
                    format!("port {number} has no name"),
                )
                .because("a failover ServiceEntry merges its endpoints by port name, so none can join an unnamed port (appProtocol does not help)")
                .fix("name the port (e.g. http) and use the same name in the failover ServiceEntry"),
            );
        }
    }
}

// === FG404 internal-traffic-policy-local ===

/// FG404: `internalTrafficPolicy: Local` drops every failover endpoint.
pub static FG404: Rule = Rule {
    id: "FG404",
    name: "internal-traffic-policy-local",
    kinds: &[Kind::Service],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "A Service in failover scope with internalTrafficPolicy: Local is a warning.",
    istio: "With internalTrafficPolicy: Local pilot keeps only endpoints on the client's own node \
            (pilot/pkg/xds/endpoints/endpoint_builder.go: NodeLocal filters by the proxy's node \
            name). ServiceEntry endpoints have no node, so every failover endpoint is dropped and \
            there is nothing to fail over to.",
    example_bad: "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  selector: {app: reviews}\n  internalTrafficPolicy: Local\n  ports: [{name: http, port: 9080}]\n",
    example_fixed: "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  selector: {app: reviews}\n  ports: [{name: http, port: 9080}]\n",
    check: check_fg404,
};

fn check_fg404(svc: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    if !cx.config.in_failover_scope(&cx.subject.namespace)
        || svc
            .path(&["spec", "internalTrafficPolicy"])
            .and_then(Value::as_str)
            != Some("Local")
    {
        return;
    }
    out.push(
        Issue::warn("spec.internalTrafficPolicy", "Service has internalTrafficPolicy: Local")
            .because("pilot keeps only endpoints on the client's node, so every failover endpoint (which has no node) is dropped")
            .fix("remove internalTrafficPolicy: Local from Services that should fail over"),
    );
}

// === FG406 service-hidden-from-gateway ===

/// The annotation that sets a Service's exportTo (networking.istio.io/exportTo).
const SERVICE_EXPORT_TO: &str = "networking.istio.io/exportTo";

/// FG406: a Service the east-west gateway cannot see takes no failover traffic.
pub static FG406: Rule = Rule {
    id: "FG406",
    name: "service-hidden-from-gateway",
    kinds: &[Kind::Service],
    default: Mode::Mutate,
    can_mutate: true,
    needs_world: false,
    guards_istiod: false,
    summary: "A Service in failover scope whose networking.istio.io/exportTo annotation hides it \
              from the east-west gateway namespaces gets them added.",
    istio: "Remote clusters fail over to this cluster through its east-west gateway, which routes \
            by SNI (AUTO_PASSTHROUGH) to clusters it builds for the services visible in its own \
            namespace (pilot/pkg/model/push_context.go: a Service's exportTo, read from the \
            networking.istio.io/exportTo annotation, decides which namespaces see it). A Service \
            exported to \".\" (or to a list without the gateway's namespace) has no cluster there: \
            the gateway resets every incoming failover connection.",
    example_bad: "apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n  namespace: bookinfo\n  annotations: {networking.istio.io/exportTo: \".\"}\nspec:\n  selector: {app: reviews}\n  ports: [{name: http, port: 9080}]\n",
    example_fixed: "apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n  namespace: bookinfo\n  annotations: {networking.istio.io/exportTo: \".,istio-system\"}\nspec:\n  selector: {app: reviews}\n  ports: [{name: http, port: 9080}]\n",
    check: check_fg406,
};

fn check_fg406(svc: &mut Value, cx: &Context<'_>, fix: bool, out: &mut Issues) {
    if !cx.config.in_failover_scope(&cx.subject.namespace) {
        return;
    }
    let Some(export) = crate::object::annotation(svc, SERVICE_EXPORT_TO) else {
        return;
    };
    let export: Vec<String> = crate::object::split_list(export)
        .map(str::to_owned)
        .collect();
    let own = cx.subject.namespace.as_str();
    let hidden = super::gateway_namespaces_outside(&export, own, cx);
    if hidden.is_empty() {
        return;
    }
    let mut value = export.join(",");
    for gw in &hidden {
        if !value.is_empty() {
            value.push(',');
        }
        value.push_str(gw);
    }
    let wrote = if fix {
        crate::object::set_annotation(svc, SERVICE_EXPORT_TO, value.clone())
    } else {
        None
    };
    out.push(
        Issue::fixable(
            format!("metadata.annotations[{SERVICE_EXPORT_TO}]"),
            format!("Service is not exported to the east-west gateway namespace {}", hidden.join(", ")),
            wrote,
        )
        .because("the gateway has no cluster for it, so it resets every failover connection from the remote clusters")
        .fix(format!("set {SERVICE_EXPORT_TO}: \"{value}\"")),
    );
}

// === FG407 traffic-distribution-unknown ===

/// FG407: a traffic-distribution annotation pilot does not know means no preference.
pub static FG407: Rule = Rule {
    id: "FG407",
    name: "traffic-distribution-unknown",
    kinds: &[Kind::Service, Kind::ServiceEntry],
    default: Mode::Deny,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "A networking.istio.io/traffic-distribution annotation whose value pilot does not \
              know (a typo of PreferClose, PreferSameZone or PreferSameNode) is denied.",
    istio: "pilot/pkg/model/service.go GetTrafficDistribution reads the annotation \
            case-insensitively after a Service's spec.trafficDistribution; any other value \
            becomes TrafficDistributionAny with a warning in istiod's log only, and it also \
            hides the Namespace's annotation. loadbalancer.GetEffectiveLbSetting then forces no \
            failoverPriority: without a DestinationRule with outlier detection the service \
            gets no locality priorities at all, and traffic crosses clusters all the time.",
    example_bad: "apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n  namespace: bookinfo\n  annotations: {networking.istio.io/traffic-distribution: PreferClosest}\nspec:\n  selector: {app: reviews}\n  ports: [{name: http, port: 9080}]\n",
    example_fixed: "apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n  namespace: bookinfo\n  annotations: {networking.istio.io/traffic-distribution: PreferClose}\nspec:\n  selector: {app: reviews}\n  ports: [{name: http, port: 9080}]\n",
    check: check_fg407,
};

fn check_fg407(object: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    use crate::istio::{
        TRAFFIC_DISTRIBUTION_ANNOTATION, TrafficDistribution, traffic_distribution,
    };
    let Some(value) = crate::object::annotation(object, TRAFFIC_DISTRIBUTION_ANNOTATION)
        .filter(|v| !v.is_empty())
    else {
        return;
    };
    let version = cx.config.istio.version;
    if crate::istio::traffic_distribution_known(value, version) {
        return;
    }
    // A Service's own spec.trafficDistribution decides first; pilot never reads the annotation.
    let spec = crate::object::str_at(object, &["spec", "trafficDistribution"]);
    if cx.subject.kind == Kind::Service
        && traffic_distribution(spec, None, None, version) != TrafficDistribution::Any
    {
        return;
    }
    // A value a later release knows (PreferSameZone before 1.27) is unknown to this mesh.
    let later = crate::istio::traffic_distribution_known(value, crate::istio::version::PINNED);
    let known: &[&str] = if version.has(crate::istio::version::Behaviour::PreferSameZoneAndNode) {
        &["PreferClose", "PreferSameZone", "PreferSameNode"]
    } else {
        &["PreferClose"]
    };
    let (problem, fix) = if later {
        (
            format!(
                "{TRAFFIC_DISTRIBUTION_ANNOTATION}: {value} is not a value Istio {version} knows (it arrived in {})",
                crate::istio::version::Behaviour::PreferSameZoneAndNode.since()
            ),
            "write PreferClose, or set istio.version in the failover-guard config if the mesh runs a newer Istio".to_owned(),
        )
    } else {
        let fix = match crate::locality::closest(value, known.iter().copied()) {
            Some(close) => format!("write {close} (did you mean it?)"),
            None => format!("write one of {}", known.join(", ")),
        };
        (
            format!("{TRAFFIC_DISTRIBUTION_ANNOTATION}: {value} is not a value Istio knows"),
            fix,
        )
    };
    out.push(
        Issue::deny(
            format!("metadata.annotations[{TRAFFIC_DISTRIBUTION_ANNOTATION}]"),
            problem,
        )
        .because("pilot takes it as no preference (and ignores the namespace's annotation), so this service gets no traffic-distribution failover and nothing says so")
        .fix(fix),
    );
}

// === FG501 gateway-exposes-all ===

/// FG501: a wildcard AUTO_PASSTHROUGH gateway exposes every service to every cluster.
pub static FG501: Rule = Rule {
    id: "FG501",
    name: "gateway-exposes-all",
    kinds: &[Kind::Gateway],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: true,
    guards_istiod: false,
    summary: "An AUTO_PASSTHROUGH Gateway server with hosts *, *.local, *.cluster.local or \
              *.svc.<domain> is a warning listing the namespaces in scope without an \
              AuthorizationPolicy (a mesh-wide policy in the root namespace covers them all).",
    istio: "An AUTO_PASSTHROUGH server builds one SNI filter chain per service its hosts match \
            (pilot/pkg/networking/core/gateway.go builtAutoPassthroughFilterChains): for *, *.local, \
            *.cluster.local or *.svc.cluster.local that is every service of the cluster, reachable \
            by every workload of every cluster that shares the root CA. Namespaces without an \
            AuthorizationPolicy (and no mesh-wide one in the root namespace) are open to all of \
            them.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: cross-network-gateway, namespace: istio-system}\nspec:\n  selector: {istio: eastwestgateway}\n  servers:\n  - port: {number: 15443, name: tls, protocol: TLS}\n    tls: {mode: AUTO_PASSTHROUGH}\n    hosts: [\"*.local\"]\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: cross-network-gateway, namespace: istio-system}\nspec:\n  selector: {istio: eastwestgateway}\n  servers:\n  - port: {number: 15443, name: tls, protocol: TLS}\n    tls: {mode: AUTO_PASSTHROUGH}\n    hosts: [\"*.local\"]\n# plus an AuthorizationPolicy in every namespace it exposes\n",
    check: check_fg501,
};

fn check_fg501(gw: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    let Some(world) = cx.world else { return };
    let domain = &cx.config.cluster.cluster_domain;
    // svc.cluster.local -> cluster.local: `*.cluster.local` matches every service too.
    let parent = domain.strip_prefix("svc.").unwrap_or(domain);
    let wide = |host: &str| {
        let host = host.split_once('/').map_or(host, |(_, h)| h);
        host == "*"
            || host == "*.local"
            || host == format!("*.{domain}")
            || host == format!("*.{parent}")
    };
    // A selector-less policy in the root namespace applies to every workload of the mesh
    // (pilot/pkg/model/authorization.go: root namespace policies are mesh-wide).
    let root = &cx.config.scope.root_namespace;
    let mesh_wide = world.authorization_policies(root).iter().any(|ap| {
        ap.path(&["spec", "selector"]).is_none()
            && ap.path(&["spec", "targetRef"]).is_none()
            && ap.path(&["spec", "targetRefs"]).is_none()
    });
    if mesh_wide {
        return;
    }
    for (i, server) in array_at(gw, &["spec", "servers"]).iter().enumerate() {
        if server.path(&["tls", "mode"]).and_then(Value::as_str) != Some("AUTO_PASSTHROUGH") {
            continue;
        }
        let Some(host) = array_at(server, &["hosts"])
            .iter()
            .filter_map(Value::as_str)
            .find(|h| wide(h))
        else {
            continue;
        };
        let open: Vec<String> = world
            .namespaces()
            .into_iter()
            .filter(|ns| cx.config.in_scope(ns) && !cx.config.scope.gateway_namespaces.contains(ns))
            .filter(|ns| world.authorization_policies(ns).is_empty())
            .collect();
        if open.is_empty() {
            continue;
        }
        let shown: Vec<&str> = open.iter().take(5).map(String::as_str).collect();
        let more = if open.len() > 5 {
            format!(" and {} more", open.len() - 5)
        } else {
            String::new()
        };
        out.push(
            Issue::warn(
                format!("spec.servers[{i}]"),
                format!("AUTO_PASSTHROUGH {host} exposes namespaces without AuthorizationPolicy: {}{more}", shown.join(", ")),
            )
            .because("every workload of every cluster sharing the root CA can reach their services")
            .fix("add AuthorizationPolicies to those namespaces, or narrow the gateway hosts"),
        );
    }
}

// === FG502 gateway-misses-failover-scope ===

/// FG502: an east-west gateway that routes no failover traffic.
pub static FG502: Rule = Rule {
    id: "FG502",
    name: "gateway-misses-failover-scope",
    kinds: &[Kind::Gateway],
    default: Mode::Deny,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "An east-west Gateway (the configured selector) whose server on a gateway port is \
              not AUTO_PASSTHROUGH, or whose AUTO_PASSTHROUGH hosts match no cluster-local \
              service (*.global), is denied: every failover into this cluster fails.",
    istio: "Remote clients fail over with Istio mTLS and the SNI outbound_.<port>_.<subset>_.<host> \
            of the service they call; only an AUTO_PASSTHROUGH server builds the SNI filter \
            chains that route it (pilot/pkg/networking/core/gateway.go \
            builtAutoPassthroughFilterChains), one per service its hosts match. A PASSTHROUGH \
            server routes by VirtualService only and has no route for those names, and hosts \
            such as *.global (the pre-1.8 pattern) match no *.svc.cluster.local service: either \
            way the gateway resets every failover connection.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: cross-network-gateway, namespace: istio-system}\nspec:\n  selector: {istio: eastwestgateway}\n  servers:\n  - port: {number: 15443, name: tls, protocol: TLS}\n    tls: {mode: PASSTHROUGH}\n    hosts: [\"*.global\"]\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: cross-network-gateway, namespace: istio-system}\nspec:\n  selector: {istio: eastwestgateway}\n  servers:\n  - port: {number: 15443, name: tls, protocol: TLS}\n    tls: {mode: AUTO_PASSTHROUGH}\n    hosts: [\"*.local\"]\n",
    check: check_fg502,
};

fn check_fg502(gw: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    let selector = &cx.config.scope.gateway_selector;
    let selects = !selector.is_empty()
        && selector.iter().all(|(k, v)| {
            gw.path(&["spec", "selector", k]).and_then(Value::as_str) == Some(v.as_str())
        });
    if !selects || cx.config.remotes.is_empty() {
        return;
    }
    let domain = &cx.config.cluster.cluster_domain;
    // Whether a server host matches some <service>.<namespace>.<domain>.
    let covers = |host: &str| {
        let host = host.split_once('/').map_or(host, |(_, h)| h);
        match host.strip_prefix('*') {
            _ if host == "*" => true,
            Some(suffix) => {
                format!(".{domain}").ends_with(suffix) || suffix.ends_with(&format!(".{domain}"))
            }
            None => host.ends_with(&format!(".{domain}")),
        }
    };
    for (i, server) in array_at(gw, &["spec", "servers"]).iter().enumerate() {
        let on_gateway_port = server
            .path(&["port", "number"])
            .and_then(crate::object::as_int)
            .and_then(|p| u16::try_from(p).ok())
            .is_some_and(|p| cx.config.topology.gateway_ports.contains(&p));
        if !on_gateway_port {
            continue;
        }
        let mode = server
            .path(&["tls", "mode"])
            .and_then(Value::as_str)
            .unwrap_or("none");
        let path = format!("spec.servers[{i}]");
        if mode != "AUTO_PASSTHROUGH" {
            out.push(
                Issue::deny(path.clone(), format!("east-west gateway server on a gateway port has tls mode {mode}, not AUTO_PASSTHROUGH"))
                    .because("only AUTO_PASSTHROUGH routes the SNI remote clients fail over with, so the gateway resets every failover connection into this cluster")
                    .fix("set tls.mode: AUTO_PASSTHROUGH"),
            );
            continue;
        }
        let hosts: Vec<&str> = array_at(server, &["hosts"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if !hosts.is_empty() && !hosts.iter().any(|h| covers(h)) {
            out.push(
                Issue::deny(path, format!("east-west gateway server hosts {} match no *.{domain} service", hosts.join(", ")))
                    .because("the gateway builds routes only for the services its hosts match, so it resets every failover connection into this cluster")
                    .fix(format!("use hosts: [\"*.{}\"] (or the namespaces in failover scope, as \"*.<namespace>.{domain}\")", domain.strip_prefix("svc.").unwrap_or(domain))),
            );
        }
    }
}

// === FG413 topology-aware-routing-ignored ===

/// FG413: Kubernetes topology-aware routing annotations, which no Istio proxy reads.
pub static FG413: Rule = Rule {
    id: "FG413",
    name: "topology-aware-routing-ignored",
    kinds: &[Kind::Service],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: true,
    guards_istiod: false,
    summary: "A Service in failover scope that asks for Kubernetes topology-aware routing \
              (service.kubernetes.io/topology-mode or topology-aware-hints) with no traffic \
              distribution Istio reads is a warning: the mesh ignores the annotation.",
    istio: "Pilot orders a Service's endpoints by spec.trafficDistribution, else the \
            networking.istio.io/traffic-distribution annotation of the Service, else of its \
            namespace (pilot/pkg/model/service.go GetTrafficDistribution), and by a \
            DestinationRule's or the mesh's localityLbSetting; nothing in pilot reads \
            service.kubernetes.io/topology-mode, topology-aware-hints or the EndpointSlice hints \
            they produce, so sidecars, gateways and ztunnel spread traffic over every zone and \
            cluster as if the annotation were absent (istio/istio#59514).",
    example_bad: "apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n  namespace: bookinfo\n  annotations: {service.kubernetes.io/topology-mode: Auto}\nspec:\n  selector: {app: reviews}\n  ports: [{name: http, port: 9080}]\n",
    example_fixed: "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  trafficDistribution: PreferClose\n  selector: {app: reviews}\n  ports: [{name: http, port: 9080}]\n",
    check: check_fg413,
};

fn check_fg413(svc: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    let ns = &cx.subject.namespace;
    if !cx.config.in_failover_scope(ns) {
        return;
    }
    let Some((annotation, value)) =
        crate::istio::IGNORED_TOPOLOGY_ANNOTATIONS
            .iter()
            .find_map(|a| {
                svc.path(&["metadata", "annotations"])
                    .and_then(|m| m.field(a))
                    .and_then(Value::as_str)
                    .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("disabled"))
                    .map(|v| (*a, v.to_owned()))
            })
    else {
        return;
    };
    let namespace = cx.world.and_then(|w| w.namespace(ns));
    if crate::istio::service_traffic_distribution(
        svc,
        namespace.as_deref(),
        cx.config.istio.version,
    ) != crate::istio::TrafficDistribution::Any
    {
        return;
    }
    out.push(
        Issue::warn(
            format!("metadata.annotations.{annotation}"),
            format!("{annotation}: {value} asks for topology-aware routing, which Istio ignores"),
        )
        .because("pilot reads only the Service's traffic distribution (and locality load balancing), not Kubernetes' topology annotations or EndpointSlice hints: traffic is spread over every zone and cluster")
        .fix("set spec.trafficDistribution: PreferClose (or the annotation networking.istio.io/traffic-distribution: PreferClose), which Istio honours and fails over by"),
    );
}
