//! ServiceEntry rules (FG2xx).
//!
//! A *failover entry* is a ServiceEntry whose host is a cluster-local service name
//! (`<svc>.<ns>.svc.<domain>`), or that has an endpoint at a configured remote gateway, or that
//! carries `failover-guard.io/failover: "true"`. Istio merges such an entry's endpoints into the
//! local Service only under strict conditions (same namespace, same port name, STATIC IP
//! endpoints) and drops them silently otherwise.

use std::{collections::BTreeMap, net::IpAddr};

use json_patch::jsonptr::PointerBuf;
use serde_json::{Map, Value, json};

use crate::object::Field as _;

use super::{Context, Issue, Issues, Rule, Text, pointer};
use crate::{
    config::{Mode, Remote},
    istio::cluster_local_service,
    locality::{Locality, closest},
    object::{
        FAILOVER_ANNOTATION, Kind, Pointer as _, SUBSET_LABELS_ANNOTATION, annotation, array_at,
        as_int, insert_at, split_list, truncate,
    },
};

use crate::istio::labels::TLS_MODE as TLS_MODE_LABEL;

/// A host of an entry that names a cluster-local Service: `host` is
/// `<service>.<namespace>.<clusterDomain>`, the name pilot gives the Service, so it is also the
/// key of that Service's DestinationRules.
struct LocalService<'a> {
    /// The host's index in `spec.hosts`.
    index: usize,
    host: &'a str,
    service: &'a str,
    namespace: &'a str,
}

/// The cluster-local services an entry's hosts name, in host order (an iterator: the rules ask
/// this several times per admission, mostly whether there is one).
fn local_services<'a>(
    se: &'a Value,
    cx: &'a Context<'_>,
) -> impl Iterator<Item = LocalService<'a>> + 'a {
    array_at(se, &["spec", "hosts"])
        .iter()
        .enumerate()
        .filter_map(|(index, h)| {
            let host = h.as_str()?;
            let (service, namespace) =
                cluster_local_service(host, &cx.config.cluster.cluster_domain)?;
            Some(LocalService {
                index,
                host,
                service,
                namespace,
            })
        })
}

fn annotated_failover(se: &Value) -> bool {
    annotation(se, FAILOVER_ANNOTATION).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Whether this ServiceEntry is a failover entry: one that carries remote clusters' gateway
/// endpoints into this cluster. Decided once, from evidence, and the one answer FG201-FG211
/// use (a host that merely looks cluster-local is no evidence: an egress entry named
/// `test.default.svc.cluster.local` resolving example.com, or public IPs on port 80, is not
/// one, and making it MESH_INTERNAL or labelling it for mTLS would break it):
/// - it is annotated `failover-guard.io/failover: "true"`;
/// - an endpoint is at a configured or discovered remote gateway address;
/// - an endpoint reaches a gateway port (15443 or a configured one) and carries
///   `security.istio.io/tlsMode: istio` (or a serviceAccount), or the entry's host names a
///   cluster-local Service (istio/istio#19257's entry); the port alone is no evidence, so the
///   `*.global` entries of the pre-1.8 pattern are not failover entries of this cluster's
///   services;
/// - its host names a Service the world knows in the entry's namespace (pilot merges the
///   two whatever the entry was meant for);
/// - it has no endpoints yet (FG208 writes them), a cluster-local host, and is not explicitly
///   MESH_EXTERNAL.
///
/// Fixes never take that away, so it is worked out once per pass.
///
/// In the native multicluster models no entry is a failover entry: istiod merges the remote
/// endpoints itself, and an entry shaped like one is redundant ([`failover_shaped`], FG208).
pub fn is_failover_entry(se: &Value, cx: &Context<'_>) -> bool {
    !cx.config.multicluster.native() && failover_shaped(se, cx)
}

/// Whether an entry looks like a failover entry by the signs [`is_failover_entry`] lists,
/// whatever the multicluster model.
pub(crate) fn failover_shaped(se: &Value, cx: &Context<'_>) -> bool {
    *cx.facts.failover_entry.get_or_init(|| {
        if annotated_failover(se) || at_remote_gateway(se, cx) {
            return true;
        }
        let local = entry_service(se, cx);
        let gateway_ports = &cx.config.topology.gateway_ports;
        let at_gateway_port = endpoints(se).iter().any(|e| {
            let mtls = crate::istio::entry_endpoint_mtls(e);
            (mtls || local.is_some())
                && endpoint_ports(se, e)
                    .iter()
                    .any(|p| u16::try_from(*p).is_ok_and(|p| gateway_ports.contains(&p)))
        });
        if at_gateway_port {
            return true;
        }
        let Some(local) = local else { return false };
        // Pilot merges the entry into its Service whatever it was meant for (the Service's
        // attributes then decide, so the fixes change nothing for its egress).
        let known = local.namespace == cx.subject.namespace
            && cx
                .world
                .and_then(|w| w.service(local.namespace, local.service))
                .is_some();
        let explicit_external =
            se.path(&["spec", "location"]).and_then(Value::as_str) == Some("MESH_EXTERNAL");
        known || (endpoints(se).is_empty() && !explicit_external)
    })
}

/// Whether an endpoint of the entry is at a configured remote gateway.
pub(crate) fn at_remote_gateway(se: &Value, cx: &Context<'_>) -> bool {
    endpoints(se)
        .iter()
        .any(|e| address(e).is_some_and(|a| cx.config.remote_at(a).is_some()))
}

/// Whether pilot merges the entry's endpoints into a Kubernetes Service: a real failover
/// entry for a Service of its own namespace (pilot/pkg/serviceregistry/aggregate merges
/// services of one hostname and namespace; endpoints join by port name).
fn merges_with_service(se: &Value, cx: &Context<'_>) -> bool {
    local_services(se, cx).any(|s| {
        crate::istio::entry_merges_into_service(se, &cx.subject.namespace, s.host, s.namespace)
    }) && is_failover_entry(se, cx)
}

/// Whether every endpoint address is one Istio's validation accepts with resolution STATIC
/// (pkg/config/validation validateWorkloadEntry: an IP, unix://, or empty with a network).
fn static_addresses(se: &Value) -> bool {
    endpoints(se).iter().all(|e| {
        address(e)
            .is_none_or(|a| a.is_empty() || a.starts_with("unix://") || a.parse::<IpAddr>().is_ok())
    })
}

fn endpoints(se: &Value) -> &[Value] {
    array_at(se, &["spec", "endpoints"])
}

fn address(endpoint: &Value) -> Option<&str> {
    endpoint.field("address").and_then(Value::as_str)
}

/// An address that is an unexpanded shell substitution or template.
fn placeholder(address: &str) -> bool {
    address.trim().is_empty()
        || address.contains(['$', '{', '(', '`'])
        || address.chars().any(char::is_whitespace)
}

fn endpoint_path(i: usize) -> String {
    format!("spec.endpoints[{i}]")
}

/// Endpoint `i`, as a JSON pointer (where a fix of one endpoint writes).
fn endpoint_pointer(i: usize) -> PointerBuf {
    pointer(&["spec", "endpoints", &i.to_string()])
}

fn endpoints_mut(se: &mut Value) -> Option<&mut Vec<Value>> {
    se.at_mut("/spec/endpoints")?.as_array_mut()
}

fn has_locality(endpoint: &Value) -> bool {
    !crate::istio::entry_endpoint_locality(endpoint).is_empty()
}

// === FG201 endpoint-locality-missing ===

/// FG201: endpoints without a locality get priority 0 for clients on unlabelled nodes.
pub static FG201: Rule = Rule {
    id: "FG201",
    name: "endpoint-locality-missing",
    kinds: &[Kind::ServiceEntry],
    default: Mode::Mutate,
    can_mutate: true,
    needs_world: false,
    guards_istiod: false,
    summary: "A failover entry endpoint without locality gets the locality of the remote cluster \
              whose gateway it points at; if none matches, it is denied.",
    istio: "An entry endpoint's locality is its locality field or istio-locality label \
            (pilot/pkg/serviceregistry/serviceentry/conversion.go \
            convertWorkloadEntryToWorkloadInstance); without one, pilot/pkg/networking/util \
            LbPriority matches its empty locality with a client on a node without topology labels \
            (priority 0, ahead of the local pods) and ranks it last for everyone else.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - address: 203.0.113.10\n    ports: {http: 15443}\n    labels: {security.istio.io/tlsMode: istio}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - address: 203.0.113.10\n    ports: {http: 15443}\n    labels: {security.istio.io/tlsMode: istio}\n    locality: europe-west4/europe-west4-a\n",
    check: check_fg201,
};

fn check_fg201(se: &mut Value, cx: &Context<'_>, fix: bool, out: &mut Issues) {
    if !is_failover_entry(se, cx) {
        return;
    }
    let missing: Vec<(usize, Option<String>, String)> = endpoints(se)
        .iter()
        .enumerate()
        .filter(|(_, e)| e.is_object() && !has_locality(e))
        .map(|(i, e)| {
            let addr = address(e).unwrap_or("").to_owned();
            (
                i,
                cx.config.remote_at(&addr).map(|r| r.locality.clone()),
                addr,
            )
        })
        .collect();
    for (i, locality, addr) in missing {
        let path = endpoint_path(i);
        match locality {
            Some(locality) => {
                let fixed = fix
                    && endpoints_mut(se)
                        .and_then(|eps| eps.get_mut(i))
                        .and_then(Value::as_object_mut)
                        .map(|e| e.insert("locality".into(), json!(locality)))
                        .is_some();
                let wrote = fixed.then(|| endpoint_pointer(i).with_trailing_token("locality"));
                out.push(
                    Issue::fixable(path.clone(), format!("endpoint {addr} has no locality"), wrote)
                        .because("Istio gives it the client's own priority, so failover order is lost")
                        .fix(format!("set locality: {locality} (the remote cluster whose gateway it is)")),
                );
            }
            None if !placeholder(&addr) => out.push(
                Issue::deny(path.clone(), format!("endpoint {addr} has no locality and is not a configured remote gateway"))
                    .because("Istio gives it the client's own priority, so failover order is lost")
                    .fix("set the endpoint's locality, or add its cluster to remotes in the failover-guard config"),
            ),
            None => {}
        }
    }
}

// === FG202 locality-malformed ===

/// FG202: Istio never validates locality strings.
pub static FG202: Rule = Rule {
    id: "FG202",
    name: "locality-malformed",
    kinds: &[Kind::ServiceEntry],
    default: Mode::Deny,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "An endpoint locality that is not region[/zone[/subzone]], or (in a failover entry) \
              names a region the topology does not know, is denied.",
    istio: "pilot takes an entry endpoint's locality as written (serviceentry/conversion.go) and \
            splits it on '/' (pkg/model ConvertLocality): a.b is one region called a.b, a fourth \
            segment is dropped, * is literal, and matching is case-sensitive \
            (pilot/pkg/networking/util LocalityMatch, LbPriority). A malformed locality or an \
            unknown region matches no failover rule and no client, so the endpoint is ranked as a \
            stranger.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - address: 203.0.113.10\n    ports: {http: 15443}\n    labels: {security.istio.io/tlsMode: istio}\n    locality: europe-west4.europe-west4-a\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - address: 203.0.113.10\n    ports: {http: 15443}\n    labels: {security.istio.io/tlsMode: istio}\n    locality: europe-west4/europe-west4-a\n",
    check: check_fg202,
};

fn check_fg202(se: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    let failover = is_failover_entry(se, cx);
    let topology = &cx.config.topology;
    for (i, endpoint) in endpoints(se).iter().enumerate() {
        let Some(text) = endpoint.field("locality").and_then(Value::as_str) else {
            continue;
        };
        let path = format!("{}.locality", endpoint_path(i));
        match Locality::parse(text) {
            Err(error) => out.push(
                Issue::deny(path.clone(), format!("locality {text:?} {error}"))
                    .because("Istio matches it against no failover rule and no client locality")
                    .fix(
                        "write region/zone/subzone with slashes, e.g. europe-west4/europe-west4-a",
                    ),
            ),
            Ok(locality)
                if failover
                    && !topology.regions.is_empty()
                    && !topology.regions.contains(&locality.region) =>
            {
                let known = topology
                    .regions
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                let hint = match closest(
                    &locality.region,
                    topology.regions.iter().map(String::as_str),
                ) {
                    Some(close) if close.eq_ignore_ascii_case(&locality.region) => {
                        format!("did you mean {close:?}? locality matching is case-sensitive")
                    }
                    Some(close) => format!("did you mean {close:?}? known regions: {known}"),
                    None if topology.zones.contains_key(&locality.region) => format!(
                        "{:?} is a zone; write region/zone, e.g. {}/{}",
                        locality.region, topology.zones[&locality.region], locality.region
                    ),
                    None => format!("use a region of the topology: {known}"),
                };
                out.push(
                    Issue::deny(
                        path.clone(),
                        format!(
                            "locality {text:?} names region {:?}, which the topology does not know",
                            locality.region
                        ),
                    )
                    .because(
                        "no failover rule or client matches it, so the endpoint is never preferred",
                    )
                    .fix(hint),
                );
            }
            Ok(_) => {}
        }
    }
}

// === FG203 gateway-endpoint-plaintext ===

/// FG203: gateway endpoints need the tlsMode label or traffic goes out in plaintext.
pub static FG203: Rule = Rule {
    id: "FG203",
    name: "gateway-endpoint-plaintext",
    kinds: &[Kind::ServiceEntry],
    default: Mode::Mutate,
    can_mutate: true,
    needs_world: false,
    guards_istiod: false,
    summary: "An endpoint on a gateway port (15443 or configured) without \
              security.istio.io/tlsMode: istio gets that label.",
    istio: "With auto mTLS, pilot/pkg/networking/core/cluster_tls.go applyUpstreamTLSSettings puts \
            Istio mTLS in a transport socket match for endpoints whose metadata says tlsMode istio, \
            which pilot sets from the security.istio.io/tlsMode label; every other endpoint gets \
            plaintext. The remote gateway's AUTO_PASSTHROUGH port 15443 accepts only Istio mTLS, so \
            failover traffic to an unlabelled gateway endpoint fails.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - address: 203.0.113.10\n    ports: {http: 15443}\n    locality: europe-west4/europe-west4-a\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - address: 203.0.113.10\n    ports: {http: 15443}\n    locality: europe-west4/europe-west4-a\n    labels: {security.istio.io/tlsMode: istio}\n",
    check: check_fg203,
};

/// The ports an endpoint receives traffic on.
fn endpoint_ports(se: &Value, endpoint: &Value) -> Vec<i64> {
    let mapped = endpoint.field("ports").and_then(Value::as_object);
    array_at(se, &["spec", "ports"])
        .iter()
        .filter_map(|port| {
            let name = port.field("name").and_then(Value::as_str).unwrap_or("");
            mapped
                .and_then(|m| m.field(name))
                .and_then(as_int)
                .or_else(|| port.field("targetPort").and_then(as_int))
                .or_else(|| port.field("number").and_then(as_int))
        })
        .chain(
            mapped
                .into_iter()
                .flat_map(|m| m.values().filter_map(as_int)),
        )
        .collect()
}

fn check_fg203(se: &mut Value, cx: &Context<'_>, fix: bool, out: &mut Issues) {
    // Port 15443 alone is no failover: an egress entry may use it for anything.
    if !is_failover_entry(se, cx) {
        return;
    }
    let gateway_ports = &cx.config.topology.gateway_ports;
    let plain: Vec<(usize, String)> = endpoints(se)
        .iter()
        .enumerate()
        .filter(|(_, e)| e.is_object())
        .filter(|(_, e)| {
            let addr = address(e).unwrap_or("");
            cx.config.remote_at(addr).is_some()
                || endpoint_ports(se, e)
                    .iter()
                    .any(|p| u16::try_from(*p).is_ok_and(|p| gateway_ports.contains(&p)))
        })
        .filter(|(_, e)| {
            // A serviceAccount without the label is mTLS to pilot too.
            !crate::istio::entry_endpoint_mtls(e)
        })
        .map(|(i, e)| (i, address(e).unwrap_or("").to_owned()))
        .collect();
    for (i, addr) in plain {
        let path = endpoint_path(i);
        let wrote = fix
            .then(|| {
                let endpoint = endpoints_mut(se)?.get_mut(i)?;
                let within = insert_at(endpoint, &["labels"], TLS_MODE_LABEL, json!("istio"))?;
                Some(endpoint_pointer(i).concat(&within))
            })
            .flatten();
        out.push(
            Issue::fixable(
                path.clone(),
                format!("gateway endpoint {addr} has no {TLS_MODE_LABEL}: istio label"),
                wrote,
            )
            .because(
                "the sidecar sends plaintext to the gateway's mTLS port and the connection fails",
            )
            .fix(format!("add labels: {{{TLS_MODE_LABEL}: istio}}")),
        );
    }
}

// === FG204 failover-entry-mesh-external ===

/// FG204: MESH_EXTERNAL turns auto mTLS off.
pub static FG204: Rule = Rule {
    id: "FG204",
    name: "failover-entry-mesh-external",
    kinds: &[Kind::ServiceEntry],
    default: Mode::Mutate,
    can_mutate: true,
    needs_world: false,
    guards_istiod: false,
    summary: "A failover entry with location unset or MESH_EXTERNAL becomes MESH_INTERNAL.",
    istio: "location defaults to MESH_EXTERNAL, and for a mesh-external service pilot turns auto \
            mTLS off (pilot/pkg/networking/core/cluster_tls.go buildUpstreamTLSSettings sends no \
            Istio mTLS when meshExternal), so the remote gateway endpoints of a standalone \
            failover entry receive plaintext and reject it. For an entry merged into a Kubernetes \
            Service the Service's attributes decide and location changes nothing; MESH_INTERNAL \
            is still what the entry is.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - {address: 203.0.113.10, ports: {http: 15443}, locality: europe-west4/europe-west4-a, labels: {security.istio.io/tlsMode: istio}}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - {address: 203.0.113.10, ports: {http: 15443}, locality: europe-west4/europe-west4-a, labels: {security.istio.io/tlsMode: istio}}\n",
    check: check_fg204,
};

fn check_fg204(se: &mut Value, cx: &Context<'_>, fix: bool, out: &mut Issues) {
    if !is_failover_entry(se, cx) || !se.field("spec").is_some_and(Value::is_object) {
        return;
    }
    let location = se
        .path(&["spec", "location"])
        .and_then(Value::as_str)
        .unwrap_or("");
    if location == "MESH_INTERNAL" {
        return;
    }
    let problem: Text = if location.is_empty() {
        "failover entry has location unset (MESH_EXTERNAL)".into()
    } else {
        format!("failover entry has location {location}").into()
    };
    let fixed = fix
        && se
            .field_mut("spec")
            .and_then(Value::as_object_mut)
            .map(|spec| spec.insert("location".into(), json!("MESH_INTERNAL")))
            .is_some();
    let wrote = fixed.then(|| pointer(&["spec", "location"]));
    out.push(
        Issue::fixable("spec.location", problem, wrote)
            .because("Istio turns auto mTLS off for mesh-external entries, so remote gateways reject the traffic")
            .fix("set location: MESH_INTERNAL"),
    );
}

// === FG205 failover-entry-wrong-namespace ===

/// FG205: an entry merges into a Service only from the Service's namespace.
pub static FG205: Rule = Rule {
    id: "FG205",
    name: "failover-entry-wrong-namespace",
    kinds: &[Kind::ServiceEntry],
    default: Mode::Deny,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "A failover entry for host <svc>.<ns>.svc... declared from a namespace other than <ns> \
              is denied (when the Service is known or the entry points at a remote gateway).",
    istio: "Pilot keeps endpoints per hostname and namespace (pilot/pkg/model/endpointshards.go \
            EndpointIndex.ShardsForService), and a Service's EDS cluster reads the shards of its \
            own namespace: an entry in another namespace creates a second service of the same \
            name whose endpoints never join the Service's, so they are never used for failover. \
            A standalone entry that merely uses such a name (no such Service, no remote gateway) \
            is a service of its own and left alone.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: istio-system}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n",
    check: check_fg205,
};

fn check_fg205(se: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    let gateway = is_failover_entry(se, cx);
    for LocalService {
        index,
        service,
        namespace,
        ..
    } in local_services(se, cx)
    {
        let known = cx
            .world
            .and_then(|w| w.service(namespace, service))
            .is_some();
        if namespace != cx.subject.namespace && (known || gateway) {
            out.push(
                Issue::deny(
                    format!("spec.hosts[{index}]"),
                    format!("host of Service {namespace}/{service} is declared from namespace {}", cx.subject.namespace),
                )
                .because("Istio merges entry endpoints into a Service only within its namespace, so they are never used")
                .fix(format!("create this ServiceEntry in namespace {namespace}")),
            );
        }
    }
}

// === FG206 failover-entry-port-name ===

/// FG206: endpoints merge into a Service port by name.
pub static FG206: Rule = Rule {
    id: "FG206",
    name: "failover-entry-port-name",
    kinds: &[Kind::ServiceEntry],
    default: Mode::Mutate,
    can_mutate: true,
    needs_world: true,
    guards_istiod: false,
    summary: "A port whose number matches the Service's port but whose name differs is renamed to \
              the Service's port name (endpoint port maps follow).",
    istio: "Entry endpoints join a Kubernetes Service port by name: pilot keys them by \
            ServicePortName (pilot/pkg/serviceregistry/serviceentry) and the EDS builder keeps only \
            endpoints of the cluster's port name (pilot/pkg/xds/endpoints/endpoint_builder.go). With \
            another name the endpoints land on a port no client uses and are silently dropped; \
            numbers do not matter, so ports whose names already match are left alone.",
    example_bad: "# Service bookinfo/reviews has port {name: http-web, port: 9080}\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - {address: 203.0.113.10, ports: {http: 15443}, locality: europe-west4/europe-west4-a, labels: {security.istio.io/tlsMode: istio}}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http-web, protocol: HTTP}]\n  endpoints:\n  - {address: 203.0.113.10, ports: {http-web: 15443}, locality: europe-west4/europe-west4-a, labels: {security.istio.io/tlsMode: istio}}\n",
    check: check_fg206,
};

/// One port rename FG206 makes: the port at `index` from `from` to `to`.
struct Rename {
    index: usize,
    from: String,
    to: String,
}

fn check_fg206(se: &mut Value, cx: &Context<'_>, fix: bool, out: &mut Issues) {
    let Some(world) = cx.world else { return };
    let ports = array_at(se, &["spec", "ports"]);
    let names: Vec<&str> = ports
        .iter()
        .map(|p| p.field("name").and_then(Value::as_str).unwrap_or(""))
        .collect();
    let mut renames: Vec<(Rename, String)> = Vec::new();
    let mut unmatched: Vec<(String, Vec<String>)> = Vec::new();
    for LocalService {
        service, namespace, ..
    } in local_services(se, cx)
    {
        if namespace != cx.subject.namespace {
            continue;
        }
        let Some(svc) = world.service(namespace, service) else {
            continue;
        };
        let svc_ports: Vec<(i64, &str)> = array_at(&svc, &["spec", "ports"])
            .iter()
            .filter_map(|p| {
                let name = p.field("name").and_then(Value::as_str).unwrap_or("");
                Some((p.field("port").and_then(as_int)?, name))
            })
            .collect();
        let mut matched = false;
        for (i, port) in ports.iter().enumerate() {
            let Some(number) = port.field("number").and_then(as_int) else {
                continue;
            };
            if svc_ports
                .iter()
                .any(|(_, n)| !n.is_empty() && *n == names[i])
            {
                matched = true;
                continue;
            }
            if let Some((_, wanted)) = svc_ports
                .iter()
                .find(|(n, name)| *n == number && !name.is_empty())
            {
                matched = true;
                renames.push((
                    Rename {
                        index: i,
                        from: names[i].to_owned(),
                        to: (*wanted).to_owned(),
                    },
                    format!("{namespace}/{service}"),
                ));
            }
        }
        if !matched && !ports.is_empty() {
            unmatched.push((
                format!("{namespace}/{service}"),
                svc_ports
                    .iter()
                    .map(|(number, n)| {
                        if n.is_empty() {
                            format!("unnamed {number}")
                        } else {
                            (*n).to_owned()
                        }
                    })
                    .collect(),
            ));
        }
    }
    // The common case, ports named like the Service's: nothing to rename, nothing to walk.
    if renames.is_empty() && unmatched.is_empty() {
        return;
    }
    // A rename onto a name another port keeps would give the entry two ports of one name.
    // With the same number that other port *is* the renamed one: a GitOps re-apply (server-side
    // apply merges ports by name) brought the old name back beside it, and dropping the old
    // entry converges. With another number it is a real clash: report it.
    let renamed: std::collections::BTreeSet<usize> = renames.iter().map(|(r, _)| r.index).collect();
    let numbers: Vec<Option<i64>> = ports
        .iter()
        .map(|p| p.field("number").and_then(as_int))
        .collect();
    let kept_as = |r: &Rename| {
        names
            .iter()
            .enumerate()
            .find(|(j, n)| **n == r.to && !renamed.contains(j))
            .map(|(j, _)| j)
    };
    let (mut safe, mut duplicate, mut clashing) = (Vec::new(), Vec::new(), Vec::new());
    for (rename, service) in renames {
        match kept_as(&rename) {
            None => safe.push((rename, service)),
            Some(j) if numbers[j] == numbers[rename.index] => duplicate.push((rename, service)),
            Some(_) => clashing.push((rename, service)),
        }
    }
    let fixed = fix
        && rename_ports(se, safe.iter().map(|(r, _)| r))
        && drop_duplicate_ports(se, duplicate.iter().map(|(r, _)| r));
    // The ports and every endpoint's port map change together: the patch replaces the spec.
    let wrote = || fixed.then(|| pointer(&["spec"]));
    for (rename, service) in safe {
        out.push(
            Issue::fixable(
                format!("spec.ports[{}]", rename.index),
                format!("port {:?} has the number of Service {service}'s port {:?} but not its name", rename.from, rename.to),
                wrote(),
            )
            .because("Istio merges endpoints by port name, so these endpoints are dropped from the Service")
            .fix(format!("rename the port to {:?} (and the endpoints' port maps with it)", rename.to)),
        );
    }
    for (rename, service) in duplicate {
        out.push(
            Issue::fixable(
                format!("spec.ports[{}]", rename.index),
                format!("port {:?} duplicates port {:?} (Service {service}'s name for the same number)", rename.from, rename.to),
                wrote(),
            )
            .because("a re-apply of the manifest brought back the old port name beside the renamed one; Istio rejects two ports of one number")
            .fix(format!("name the port {:?} in the manifest", rename.to)),
        );
    }
    for (rename, service) in clashing {
        out.push(
            Issue::deny(
                format!("spec.ports[{}]", rename.index),
                format!("port {:?} has the number of Service {service}'s port {:?}, a name another port of this entry uses", rename.from, rename.to),
            )
            .because("Istio merges endpoints by port name, so these endpoints are dropped from the Service")
            .fix("give each entry port the name of the Service port with its number"),
        );
    }
    for (service, svc_names) in unmatched {
        out.push(
            Issue::deny(
                "spec.ports",
                format!("no port name of this entry is a port name of Service {service} ({})", svc_names.join(", ")),
            )
            .because("Istio merges entry endpoints into a Service port of the same name, so every endpoint is dropped")
            .fix("name the entry's ports like the Service's ports"),
        );
    }
}

/// Removes ports that duplicate a port of the Service's name (highest index first), moving
/// their endpoint port keys to that name where it has none.
fn drop_duplicate_ports<'a>(se: &mut Value, duplicates: impl Iterator<Item = &'a Rename>) -> bool {
    let mut duplicates: Vec<&Rename> = duplicates.collect();
    duplicates.sort_by_key(|r| std::cmp::Reverse(r.index));
    for rename in &duplicates {
        let Some(ports) = se.at_mut("/spec/ports").and_then(Value::as_array_mut) else {
            return false;
        };
        if rename.index < ports.len() {
            ports.remove(rename.index);
        }
    }
    for endpoint in endpoints_mut(se).into_iter().flatten() {
        if let Some(ports) = endpoint.field_mut("ports").and_then(Value::as_object_mut) {
            for rename in &duplicates {
                if let Some(value) = ports.remove(&rename.from) {
                    ports.entry(rename.to.clone()).or_insert(value);
                }
            }
        }
    }
    true
}

/// Renames ports all at once: the endpoints' port maps are rewritten in one pass, so swapped
/// or chained names (a->b, b->a) cannot overwrite each other.
fn rename_ports<'a>(se: &mut Value, renames: impl Iterator<Item = &'a Rename>) -> bool {
    let renames: Vec<&Rename> = renames.collect();
    let by_name: BTreeMap<&str, &str> = renames
        .iter()
        .map(|r| (r.from.as_str(), r.to.as_str()))
        .collect();
    for rename in &renames {
        let Some(port) = se
            .at_mut(&format!("/spec/ports/{}", rename.index))
            .and_then(Value::as_object_mut)
        else {
            return false;
        };
        port.insert("name".into(), json!(rename.to));
    }
    for endpoint in endpoints_mut(se).into_iter().flatten() {
        if let Some(ports) = endpoint.field_mut("ports").and_then(Value::as_object_mut) {
            let old = std::mem::take(ports);
            for (key, value) in old {
                let key = by_name
                    .get(key.as_str())
                    .map_or(key.clone(), |to| (*to).to_owned());
                ports.insert(key, value);
            }
        }
    }
    true
}

// === FG207 failover-entry-not-static ===

/// FG207: only IP endpoints merge into a Service.
pub static FG207: Rule = Rule {
    id: "FG207",
    name: "failover-entry-not-static",
    kinds: &[Kind::ServiceEntry],
    default: Mode::Deny,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "A non-IP endpoint address in an entry that merges with a Kubernetes Service is \
              denied; resolution DNS there is a warning (FG208 sets STATIC where it is unset).",
    istio: "pilot/pkg/serviceregistry/serviceentry/conversion.go convertWorkloadEntryToWorkloadInstance \
            marks an endpoint with a hostname (or unix://) address dnsServiceEntryOnly: it never \
            joins a Kubernetes Service's endpoints, so that failover target silently does not \
            exist. IP endpoints merge whatever the resolution, so DNS with IPs works but says \
            something else than what happens (a warning); resolution NONE with endpoints is \
            rejected by Istio's validation (pkg/config/validation ValidateServiceEntry), and \
            FG208 sets STATIC there. Standalone entries (no Service to merge with) are left \
            alone.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: DNS\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - {address: 203.0.113.10, ports: {http: 15443}, locality: europe-west4/europe-west4-a, labels: {security.istio.io/tlsMode: istio}}\n  - {address: gw.cluster-c.example.com, ports: {http: 15443}, locality: europe-west4/europe-west4-b, labels: {security.istio.io/tlsMode: istio}}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - {address: 203.0.113.10, ports: {http: 15443}, locality: europe-west4/europe-west4-a, labels: {security.istio.io/tlsMode: istio}}\n",
    check: check_fg207,
};

fn check_fg207(se: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    if se.path(&["spec", "workloadSelector"]).is_some() || !merges_with_service(se, cx) {
        return;
    }
    // Whether the Service the host names exists here: a hostname endpoint is dropped only
    // when it does (then the entry merges into it); without a world nobody can tell.
    let service = entry_service(se, cx).map(|s| (s.namespace, s.service));
    let exists = match (cx.world, service) {
        (Some(world), Some((namespace, name))) => Some(world.service(namespace, name).is_some()),
        _ => None,
    };
    for (i, endpoint) in endpoints(se).iter().enumerate() {
        let Some(addr) = address(endpoint) else {
            continue;
        };
        if placeholder(addr) || addr.parse::<IpAddr>().is_ok() {
            continue;
        }
        let path = format!("{}.address", endpoint_path(i));
        match exists {
            Some(true) => out.push(
                Issue::deny(path, format!("endpoint address {addr:?} is not an IP address"))
                    .because("pilot never merges a hostname endpoint into the Service's endpoints, so this gateway is never used")
                    .fix("use the remote gateway's IP address"),
            ),
            // The Service lives only in the remote clusters: a standalone DNS entry.
            Some(false) => {}
            None => out.push(
                Issue::warn(path, format!("endpoint address {addr:?} is not an IP address"))
                    .because("where this cluster has the Service, pilot never merges a hostname endpoint into its endpoints and this gateway is never used (an entry for a Service that exists only remotely resolves it by DNS)")
                    .fix("use the remote gateway's IP address"),
            ),
        }
    }
    // Nothing to merge with: the resolution is the entry's own business.
    if endpoints(se).is_empty() || exists == Some(false) {
        return;
    }
    match se.path(&["spec", "resolution"]).and_then(Value::as_str).unwrap_or("NONE") {
        // NONE is FG208's to fix (it owns the resolution of the entries it fills).
        "STATIC" | "NONE" => {}
        other => out.push(
            Issue::warn("spec.resolution", format!("failover entry has resolution {other}"))
                .because("its IP endpoints are merged into the Service as they are; the resolution says otherwise")
                .fix("set resolution: STATIC"),
        ),
    }
}

// === FG208 failover-endpoints ===

/// FG208: generate one endpoint per remote cluster (and subset).
pub static FG208: Rule = Rule {
    id: "FG208",
    name: "failover-endpoints",
    kinds: &[Kind::ServiceEntry],
    default: Mode::Mutate,
    can_mutate: true,
    needs_world: false,
    guards_istiod: false,
    summary: "A failover entry with no endpoints, or annotated failover-guard.io/failover: \"true\", \
              gets one endpoint per remote cluster (and per subset label set); resolution unset or \
              NONE with IP endpoints becomes STATIC.",
    istio: "A failover entry only fails over to the endpoints it lists. Hand-written endpoints drift \
            from the real topology (a new cluster, a new gateway address, a new version subset), and \
            a subset's Envoy cluster keeps only endpoints with its labels \
            (pilot/pkg/xds/endpoints/endpoint_builder.go), so a subset without labelled remote \
            endpoints has no fallback. Endpoints need resolution STATIC: Istio's validation \
            (pkg/config/validation ValidateServiceEntry) rejects endpoints with resolution NONE, the \
            default.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: reviews-failover\n  namespace: bookinfo\n  annotations: {failover-guard.io/subset-labels: \"version=v1;version=v2\"}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: reviews-failover\n  namespace: bookinfo\n  annotations: {failover-guard.io/subset-labels: \"version=v1;version=v2\"}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - {address: 203.0.113.10, ports: {http: 15443}, locality: europe-west4/europe-west4-a, network: network-b, labels: {security.istio.io/tlsMode: istio, version: v1}, weight: 1}\n  - {address: 203.0.113.10, ports: {http: 15443}, locality: europe-west4/europe-west4-a, network: network-b, labels: {security.istio.io/tlsMode: istio, version: v2}, weight: 1}\n",
    check: check_fg208,
};

/// In a native model, a failover-shaped entry for a cluster-local Service adds endpoints istiod
/// already has: each remote's workloads come through its remote secret (with the remote's
/// cluster label), and the entry adds them again labelled with *this* cluster's ID
/// (convertWorkloadEntryToWorkloadInstance), so they tie with the local pods under
/// failoverPriority [topology.istio.io/cluster], the usual multi-primary setting.
fn redundant_failover_entry(se: &Value, cx: &Context<'_>, out: &mut Issues) {
    let Some(service) = entry_service(se, cx) else {
        return;
    };
    if !failover_shaped(se, cx) || endpoints(se).is_empty() {
        return;
    }
    let model = cx.config.multicluster.model;
    out.push(
        Issue::warn(
            "spec.endpoints",
            format!(
                "this entry lists remote endpoints of {}, which istiod already merges in the {model} model",
                service.host
            ),
        )
        .because(format!(
            "istiod reads the remote clusters' endpoints of {} through its remote secrets, labelled with their own cluster; this entry adds them again labelled with this cluster ({}), so under failoverPriority [topology.istio.io/cluster] they tie with the local pods and traffic crosses clusters all the time",
            service.host, cx.config.cluster.name
        ))
        .fix("delete this ServiceEntry (or set multicluster.model serviceEntries in the failover-guard config if the clusters do not share remote secrets)"),
    );
}

/// The subset label sets failover endpoints are generated for: explicit sets from the
/// annotation (`version=v1;version=v2`), or the subsets of the host's DestinationRule
/// (restricted to the keys the annotation names, when it names keys).
fn subset_label_sets(se: &Value, cx: &Context<'_>) -> Vec<BTreeMap<String, String>> {
    let annotation = annotation(se, SUBSET_LABELS_ANNOTATION).unwrap_or("");
    let mut sets = Vec::new();
    let mut keys = Vec::new();
    for item in annotation
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if item.contains('=') {
            let set: BTreeMap<String, String> = split_list(item)
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect();
            if !set.is_empty() {
                sets.push(set);
            }
        } else {
            keys.extend(split_list(item).map(str::to_owned));
        }
    }
    if !sets.is_empty() {
        return sets;
    }
    let Some(world) = cx.world else { return sets };
    for LocalService { host, .. } in local_services(se, cx) {
        for dr in world.destination_rules(host) {
            for subset in array_at(&dr, &["spec", "subsets"]) {
                let Some(labels) = subset.field("labels").and_then(Value::as_object) else {
                    continue;
                };
                let set: BTreeMap<String, String> = labels
                    .iter()
                    .filter(|(k, _)| keys.is_empty() || keys.contains(k))
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect();
                if !set.is_empty() && !sets.contains(&set) {
                    sets.push(set);
                }
            }
        }
    }
    sets
}

/// The Service a failover entry stands in for: its first cluster-local host's.
fn entry_service<'a>(se: &'a Value, cx: &'a Context<'_>) -> Option<LocalService<'a>> {
    local_services(se, cx).next()
}

/// A remote's weight split over `n` gateway addresses: shares as even as whole numbers allow
/// (at least 1 each), or none when the weight is unknown.
fn split_weight(weight: Option<u32>, n: usize) -> Vec<Option<u32>> {
    let n32 = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    (0..n32)
        .map(|i| {
            weight.map(|w| {
                if n32 == 1 {
                    w
                } else {
                    (w / n32 + u32::from(i < w % n32)).max(1)
                }
            })
        })
        .collect()
}

fn generated_endpoint(
    se: &Value,
    remote: &Remote,
    address: &str,
    labels: &BTreeMap<String, String>,
    weight: Option<u32>,
) -> Value {
    let names = array_at(se, &["spec", "ports"])
        .iter()
        .filter_map(|p| p.field("name").and_then(Value::as_str));
    let mut ports = Map::with_capacity(names.clone().count());
    for name in names {
        ports.insert(name.to_owned(), Value::from(remote.gateway.port));
    }
    let mut all_labels = Map::with_capacity(labels.len() + 1);
    all_labels.insert(TLS_MODE_LABEL.into(), Value::from("istio"));
    for (k, v) in labels {
        all_labels.insert(k.clone(), Value::from(v.as_str()));
    }
    let mut endpoint = Map::with_capacity(6);
    endpoint.insert("address".into(), Value::from(address));
    endpoint.insert("ports".into(), Value::Object(ports));
    endpoint.insert("locality".into(), Value::from(remote.locality.as_str()));
    endpoint.insert("network".into(), Value::from(remote.network.as_str()));
    endpoint.insert("labels".into(), Value::Object(all_labels));
    // Behind the gateway stand the remote's ready replicas: weigh it by them when discovery
    // counts them, else by the configured weight (split over its addresses).
    if let Some(weight) = weight {
        endpoint.insert("weight".into(), Value::from(weight));
    }
    Value::Object(endpoint)
}

/// Whether `existing` already stands for the endpoint of `remote` with these subset labels.
fn covers(existing: &Value, gateway_address: &str, labels: &BTreeMap<String, String>) -> bool {
    address(existing) == Some(gateway_address)
        && labels.iter().all(|(k, v)| {
            existing
                .field("labels")
                .and_then(|l| l.field(k))
                .and_then(Value::as_str)
                == Some(v.as_str())
        })
}

fn check_fg208(se: &mut Value, cx: &Context<'_>, fix: bool, out: &mut Issues) {
    if cx.config.multicluster.native() {
        redundant_failover_entry(se, cx, out);
        return;
    }
    if !is_failover_entry(se, cx)
        || se.path(&["spec", "workloadSelector"]).is_some()
        || !se.field("spec").is_some_and(Value::is_object)
    {
        return;
    }
    let mut missing: Vec<Value> = Vec::new();
    let fills =
        !cx.config.remotes.is_empty() && (annotated_failover(se) || endpoints(se).is_empty());
    // A discovered gateway hostname that did not resolve gets no endpoint: pilot would drop a
    // hostname endpoint of a merged entry (FG207), and there is no address to write.
    let unresolved: Vec<&str> = cx
        .config
        .remotes
        .iter()
        .filter(|r| fills && r.gateway_is_hostname() && r.resolved.is_empty())
        .map(|r| r.name.as_str())
        .collect();
    if !unresolved.is_empty() {
        out.push(
            Issue::warn("spec.endpoints", format!("the east-west gateway of {} is a hostname that does not resolve", unresolved.join(", ")))
                .because("pilot merges only IP endpoints into a Service, so failover-guard writes no endpoint for it until the name resolves")
                .fix("check the gateway LoadBalancer's DNS name (failover-guard resolves it again on every change of the remote, and at least once a minute)"),
        );
    }
    if fills {
        let mut sets = subset_label_sets(se, cx);
        if sets.is_empty() {
            sets.push(BTreeMap::new());
        }
        let service = entry_service(se, cx);
        // A remote where discovery shows the Service absent or without a ready endpoint gets
        // none: an endpoint there would be a black hole (FG213 warns about existing ones).
        missing = cx
            .config
            .remotes
            .iter()
            // Ready endpoints of the entry's Service there, when discovery knows the remote.
            .map(|remote| {
                let ready = service
                    .as_ref()
                    .and_then(|s| remote.ready_endpoints(s.namespace, s.service));
                (remote, ready)
            })
            .filter(|(remote, ready)| {
                *ready != Some(0) && !(remote.gateway_is_hostname() && remote.resolved.is_empty())
            })
            .flat_map(|(remote, ready)| sets.iter().map(move |set| (remote, ready, set)))
            .flat_map(|(remote, ready, set)| {
                // One endpoint per gateway address (a resolved hostname may have several),
                // the remote's weight split among them; an address already listed stays.
                let addresses = remote.gateway_addresses();
                let weights = split_weight(ready.or(remote.weight), addresses.len());
                addresses
                    .into_iter()
                    .zip(weights)
                    .filter(|(address, _)| !endpoints(se).iter().any(|e| covers(e, address, set)))
                    .map(|(address, weight)| generated_endpoint(se, remote, address, set, weight))
                    .collect::<Vec<_>>()
            })
            .collect();
    }
    // Endpoints with resolution NONE (the default) are rejected by Istio; STATIC takes IP
    // endpoints only. This rule owns the resolution of the entries it fills, so a re-applied
    // manifest that says NONE again is fixed by the same rule (and the mutated annotation
    // stays the same).
    let resolution = se
        .path(&["spec", "resolution"])
        .and_then(Value::as_str)
        .unwrap_or("NONE");
    // DNS_ROUND_ROBIN takes at most one endpoint (Istio's validation, pkg/config/validation
    // ValidateServiceEntry): filled with more, the entry becomes STATIC when every address is
    // an IP, and gets nothing otherwise.
    let round_robin = resolution == "DNS_ROUND_ROBIN"
        && !missing.is_empty()
        && endpoints(se).len() + missing.len() > 1;
    if round_robin
        && !(static_addresses(se)
            && missing
                .iter()
                .all(|e| address(e).is_some_and(|a| a.parse::<IpAddr>().is_ok())))
    {
        out.push(
            Issue::deny(
                "spec.resolution",
                format!("failover entry with resolution DNS_ROUND_ROBIN lacks {} endpoint(s) for the configured remote clusters", missing.len()),
            )
            .because("Istio's validation allows DNS_ROUND_ROBIN one endpoint, and an address here is a hostname, so failover-guard cannot write them as STATIC")
            .fix("use resolution: STATIC with the remote gateways' IP addresses (failover-guard then adds one endpoint per remote)"),
        );
        return;
    }
    let needs_static = (resolution == "NONE" || round_robin)
        && (!endpoints(se).is_empty() || !missing.is_empty())
        && static_addresses(se);
    if missing.is_empty() && !needs_static {
        return;
    }
    let count = missing.len();
    let fixed = fix
        && se
            .field_mut("spec")
            .and_then(Value::as_object_mut)
            .map(|spec| {
                match spec.field_mut("endpoints").and_then(Value::as_array_mut) {
                    Some(endpoints) => endpoints.extend(missing),
                    None if !missing.is_empty() => {
                        spec.insert("endpoints".into(), Value::Array(missing));
                    }
                    None => {}
                }
                if needs_static {
                    spec.insert("resolution".into(), json!("STATIC"));
                }
            })
            .is_some();
    // Endpoints are appended (the array is sent whole, or created); resolution is set.
    let wrote = |key: &str| fixed.then(|| pointer(&["spec", key]));
    if count > 0 {
        out.push(
            Issue::fixable(
                "spec.endpoints",
                format!("failover entry lacks {count} endpoint(s) for the configured remote clusters"),
                wrote("endpoints"),
            )
            .and_wrote(wrote("resolution").filter(|_| needs_static))
            .because("traffic can only fail over to endpoints the entry lists")
            .fix("add one endpoint per remote gateway (and subset), with locality, network and tlsMode label"),
        );
    } else {
        out.push(
            Issue::fixable(
                "spec.resolution",
                "failover entry has endpoints but resolution NONE",
                wrote("resolution"),
            )
            .because("Istio's validation rejects endpoints with resolution NONE")
            .fix("set resolution: STATIC"),
        );
    }
}

// === FG209 endpoint-address-placeholder ===

/// FG209: the address is an unexpanded shell substitution.
pub static FG209: Rule = Rule {
    id: "FG209",
    name: "endpoint-address-placeholder",
    kinds: &[Kind::ServiceEntry],
    default: Mode::Deny,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "An empty endpoint address, or one holding $, {, (, backticks or spaces (an \
              unexpanded shell substitution), is denied.",
    istio: "Istio's validation (pkg/config/validation validateWorkloadEntry) accepts an empty \
            address only with a network, and a hostname only with DNS resolution; a $(kubectl ...) \
            or ${GW_ADDR} that was not expanded (a heredoc with quotes, a failed command) is either \
            rejected with a message that does not say why, or, in a DNS entry, kept as an endpoint \
            that resolves to nothing: the failover target silently does not exist.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - {address: \"${CLUSTER2_GW_ADDR}\", ports: {http: 15443}, locality: europe-west4/europe-west4-a}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - {address: 203.0.113.10, ports: {http: 15443}, locality: europe-west4/europe-west4-a, labels: {security.istio.io/tlsMode: istio}}\n",
    check: check_fg209,
};

fn check_fg209(se: &mut Value, _cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    for (i, endpoint) in endpoints(se).iter().enumerate() {
        let Some(addr) = endpoint.field("address").map(|a| a.as_str().unwrap_or("")) else {
            continue;
        };
        let network = endpoint
            .field("network")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        // An empty address with a network is Istio's way to name a workload reached through
        // that network's gateway (pkg/config/validation ValidateWorkloadEntry allows it).
        if addr.is_empty() && network {
            continue;
        }
        if placeholder(addr) {
            let shown = truncate(addr, 60);
            out.push(
                Issue::deny(
                    format!("{}.address", endpoint_path(i)),
                    format!(
                        "endpoint address {shown:?} looks like an unexpanded shell substitution"
                    ),
                )
                .because("the endpoint resolves to nothing, so this failover target does not exist")
                .fix("expand the variable or command before applying (check the heredoc quoting)"),
            );
        }
    }
}

// === FG214 remote-trust-domain-untrusted ===

/// FG214: failover to a remote whose certificates this cluster does not accept.
pub static FG214: Rule = Rule {
    id: "FG214",
    name: "remote-trust-domain-untrusted",
    kinds: &[Kind::ServiceEntry],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "A failover endpoint at the gateway of a remote whose trust domain is neither this \
              cluster's nor one of its aliases is a warning (also said when the config loads).",
    istio: "Through the remote east-west gateway (AUTO_PASSTHROUGH) the client's mTLS ends at the \
            remote workload, and pilot has the client verify its SPIFFE identity against the \
            service's accounts in this mesh's trust domain, expanded with \
            meshConfig.trustDomainAliases (pkg/spiffe ExpandWithTrustDomains, \
            pilot/pkg/networking/core/cluster_tls.go). A remote with another trust domain that \
            is no alias fails that check: every failover connection to it fails the handshake.",
    example_bad: "# config: remotes: [{name: cluster-b, trustDomain: cluster-b.example, gateway: {address: 203.0.113.10}, ...}]\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - {address: 203.0.113.10, ports: {http: 15443}, locality: europe-west4/europe-west4-a, labels: {security.istio.io/tlsMode: istio}}\n",
    example_fixed: "# config: cluster: {trustDomainAliases: [cluster-b.example]} (and meshConfig.trustDomainAliases)\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - {address: 203.0.113.10, ports: {http: 15443}, locality: europe-west4/europe-west4-a, labels: {security.istio.io/tlsMode: istio}}\n",
    check: check_fg214,
};

fn check_fg214(se: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    if !is_failover_entry(se, cx) {
        return;
    }
    let untrusted: std::collections::BTreeSet<(&str, &str)> = endpoints(se)
        .iter()
        .filter_map(|e| cx.config.remote_at(address(e)?))
        .filter(|r| !cx.config.trusts(&r.trust_domain))
        .map(|r| (r.name.as_str(), r.trust_domain.as_str()))
        .collect();
    for (remote, trust_domain) in untrusted {
        out.push(
            Issue::warn("spec.endpoints", format!("failover to {remote}, whose trust domain {trust_domain} this cluster does not trust"))
                .because("clients here verify the remote workloads' identities against this mesh's trust domain and its aliases, so every failover connection to it fails the handshake")
                .fix(format!("add {trust_domain} to trustDomainAliases (failover-guard's cluster section and meshConfig)")),
        );
    }
}

// === FG213 failover-target-missing ===

/// FG213: a failover endpoint for a remote that does not run the service.
pub static FG213: Rule = Rule {
    id: "FG213",
    name: "failover-target-missing",
    kinds: &[Kind::ServiceEntry],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "A failover entry's endpoint at a remote gateway, where remote discovery shows the \
              service absent or without a ready endpoint, is a warning.",
    istio: "The east-west gateway serves AUTO_PASSTHROUGH: one filter chain per SNI \
            (outbound_.<port>_._.<host>) of the services its own istiod knows, with Envoy's \
            sni_cluster and tcp_proxy filters (pilot/pkg/networking/core/gateway.go \
            buildGatewayListeners). A service that does not exist in that cluster, or has no \
            ready endpoint there, has no cluster or no host behind the SNI: the connection is \
            reset, and the failover priority that points there is a black hole exactly when the \
            local endpoints are gone. Needs `discovery` (serve); silent otherwise.",
    example_bad: "# discovery: cluster-b has no Service bookinfo/reviews\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - {address: 203.0.113.10, ports: {http: 15443}, locality: europe-west4/europe-west4-a, network: network-b, labels: {security.istio.io/tlsMode: istio}}\n",
    example_fixed: "# discovery: cluster-b runs bookinfo/reviews with 3 ready endpoints\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - {address: 203.0.113.10, ports: {http: 15443}, locality: europe-west4/europe-west4-a, network: network-b, weight: 3, labels: {security.istio.io/tlsMode: istio}}\n",
    check: check_fg213,
};

fn check_fg213(se: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    let Some(LocalService {
        namespace,
        service: name,
        ..
    }) = entry_service(se, cx)
    else {
        return;
    };
    for (i, endpoint) in endpoints(se).iter().enumerate() {
        let Some(remote) = address(endpoint).and_then(|a| cx.config.remote_at(a)) else {
            continue;
        };
        if remote.ready_endpoints(namespace, name) != Some(0) {
            continue;
        }
        let present = remote
            .services
            .as_ref()
            .is_some_and(|s| s.contains_key(&format!("{namespace}/{name}")));
        out.push(
            Issue::warn(
                endpoint_path(i),
                format!(
                    "Service {namespace}/{name} {} in {}, yet endpoint {} sends failover traffic there",
                    if present {
                        "has no ready endpoint"
                    } else {
                        "does not exist"
                    },
                    remote.name,
                    truncate(address(endpoint).unwrap_or(""), 60),
                ),
            )
            .because("that cluster's east-west gateway has nothing behind this service's SNI, so failover lands in a black hole")
            .fix(format!(
                "deploy {name} in {}, or remove this endpoint (failover-guard generates endpoints only for clusters that run the service)",
                remote.name
            )),
        );
    }
}

// === FG210 endpoint-locality-mismatch ===

/// FG210: a remote gateway endpoint that claims another locality than its cluster's.
pub static FG210: Rule = Rule {
    id: "FG210",
    name: "endpoint-locality-mismatch",
    kinds: &[Kind::ServiceEntry],
    default: Mode::Mutate,
    can_mutate: true,
    needs_world: false,
    guards_istiod: false,
    summary: "A failover endpoint at a configured remote gateway whose locality differs from that \
              remote's configured locality gets the remote's locality.",
    istio: "Pilot ranks endpoints by locality (pilot/pkg/networking/core/loadbalancer \
            applyLocalityFailover, util.LbPriority) and takes an entry endpoint's locality as \
            written (serviceentry/conversion.go convertWorkloadEntryToWorkloadInstance). A remote \
            gateway endpoint that carries one of this cluster's localities lands at priority 0 \
            beside the local pods: traffic crosses clusters all the time and nothing fails over. \
            Any other wrong locality misorders failover between remotes.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - address: 203.0.113.10   # cluster-b's gateway\n    ports: {http: 15443}\n    labels: {security.istio.io/tlsMode: istio}\n    locality: europe-west1/europe-west1-b   # this cluster's locality\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - address: 203.0.113.10\n    ports: {http: 15443}\n    labels: {security.istio.io/tlsMode: istio}\n    locality: europe-west4/europe-west4-a\n",
    check: check_fg210,
};

fn check_fg210(se: &mut Value, cx: &Context<'_>, fix: bool, out: &mut Issues) {
    let local: Vec<&str> = cx
        .config
        .cluster
        .localities
        .iter()
        .map(String::as_str)
        .collect();
    let wrong: Vec<(usize, String, String, String)> = endpoints(se)
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let remote = cx.config.remote_at(address(e)?)?;
            let written = e
                .field("locality")
                .and_then(Value::as_str)
                .filter(|l| !l.is_empty())?;
            (written != remote.locality).then(|| {
                (
                    i,
                    written.to_owned(),
                    remote.locality.clone(),
                    remote.name.clone(),
                )
            })
        })
        .collect();
    // The fix must not give a DNS-resolved entry endpoints in two localities where a stored
    // failoverPriority rule makes pilot panic on them (FG602): then the locality stays, and
    // the denial says why.
    let crashes = !wrong.is_empty() && {
        let mut fixed = se.clone();
        if let Some(eps) = endpoints_mut(&mut fixed) {
            for (i, _, wanted, _) in &wrong {
                if let Some(e) = eps.get_mut(*i).and_then(Value::as_object_mut) {
                    e.insert("locality".into(), json!(wanted));
                }
            }
        }
        crate::rules::failover::crashes_pilot(&fixed, cx)
    };
    if crashes {
        out.push(
            Issue::deny(
                "spec.endpoints",
                "remote gateway endpoints carry the wrong locality, and giving them their clusters' localities would spread this DNS-resolved entry over several localities",
            )
            .because("with the failoverPriority DestinationRule already stored for this host, pilot panics on a DNS cluster whose endpoints span localities (FG602), so failover-guard does not write that fix")
            .fix("resolve the entry STATIC with the gateways' IP addresses (then the localities can be fixed), or remove failoverPriority from the host's DestinationRule"),
        );
        return;
    }
    // A stored rule whose failoverPriority starts with the network label ranks a remote
    // network's endpoints after the local ones whatever their locality
    // (applyFailoverPriorityPerLocality): then a local locality does not tie them.
    let network_first = cx.world.is_some_and(|w| {
        local_services(se, cx).any(|s| {
            w.destination_rules(s.host).iter().any(|dr| {
                const PRIORITY: &[&str] = &[
                    "spec",
                    "trafficPolicy",
                    "loadBalancer",
                    "localityLbSetting",
                    "failoverPriority",
                ];
                array_at(dr, PRIORITY).first().and_then(Value::as_str)
                    == Some(crate::istio::labels::NETWORK)
            })
        })
    });
    for (i, written, wanted, remote) in wrong {
        let on_other_network = endpoints(se)
            .get(i)
            .and_then(|e| e.field("network"))
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty() && n != cx.config.cluster.network);
        let fixed = fix
            && endpoints_mut(se)
                .and_then(|eps| eps.get_mut(i))
                .and_then(Value::as_object_mut)
                .map(|e| e.insert("locality".into(), json!(wanted)))
                .is_some();
        let consequence = if local.contains(&written.as_str()) && network_first && on_other_network
        {
            "that is this cluster's locality; the host's failoverPriority ranks the remote network after the local pods, so failover still happens, but every ordering by locality (failover rules, zones, other remotes) is wrong for it"
        } else if local.contains(&written.as_str()) {
            "that is this cluster's locality, so pilot ranks the remote gateway beside the local pods and traffic crosses clusters all the time"
        } else {
            "pilot ranks it by the locality written, so failover goes to the wrong place first"
        };
        out.push(
            Issue::fixable(
                format!("{}.locality", endpoint_path(i)),
                format!("endpoint of {remote}'s gateway has locality {written}, but {remote} is in {wanted}"),
                fixed.then(|| endpoint_pointer(i).with_trailing_token("locality")),
            )
            .because(consequence)
            .fix(format!("set locality: {wanted}")),
        );
    }
}

// === FG211 failover-endpoint-subset-labels ===

/// FG211: subsets whose labels no failover endpoint carries have no remote fallback.
pub static FG211: Rule = Rule {
    id: "FG211",
    name: "failover-endpoint-subset-labels",
    kinds: &[Kind::ServiceEntry],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: true,
    guards_istiod: false,
    summary: "Hand-written failover endpoints without the labels of a DestinationRule subset are a \
              warning: that subset's Envoy cluster gets no remote endpoint.",
    istio: "A subset's Envoy cluster holds only the endpoints whose labels match the subset's \
            (pilot/pkg/xds/endpoints/endpoint_builder.go filters by subset labels), and those are \
            the labels pilot gives the endpoint: its own, with the topology labels of its \
            locality and network and this cluster's ID (labelutil.AugmentLabels), so a subset on \
            topology.kubernetes.io/region matches by locality. Failover endpoints without them \
            join the plain cluster only: clients routed to the subset by a VirtualService have \
            nothing to fail over to.",
    example_bad: "# DestinationRule bookinfo/reviews has subsets v1 (version: v1) and v2 (version: v2)\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - {address: 203.0.113.10, ports: {http: 15443}, locality: europe-west4/europe-west4-a, labels: {security.istio.io/tlsMode: istio}}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: reviews-failover\n  namespace: bookinfo\n  annotations: {failover-guard.io/failover: \"true\", failover-guard.io/subset-labels: version}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n",
    check: check_fg211,
};

fn check_fg211(se: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    let Some(world) = cx.world else { return };
    // Generated endpoints (FG208) follow the subsets already.
    if annotated_failover(se) {
        return;
    }
    // The labels pilot matches subsets against: the endpoint's own, augmented with its
    // locality, network and this cluster's ID (crate::istio::entry_endpoint_labels).
    let remote: Vec<BTreeMap<String, String>> = endpoints(se)
        .iter()
        .filter(|e| address(e).is_some_and(|a| cx.config.remote_at(a).is_some()))
        .map(|e| crate::istio::entry_endpoint_labels(e, &cx.config.cluster.name))
        .collect();
    if remote.is_empty() {
        return;
    }
    for LocalService { host, .. } in local_services(se, cx) {
        for dr in world.destination_rules(host) {
            for subset in array_at(&dr, &["spec", "subsets"]) {
                let Some(labels) = subset.field("labels").and_then(Value::as_object) else {
                    continue;
                };
                let carried = remote.iter().any(|e| {
                    labels.iter().all(|(k, v)| {
                        v.as_str()
                            .is_some_and(|v| e.get(k).map(String::as_str) == Some(v))
                    })
                });
                if carried {
                    continue;
                }
                let name = subset.field("name").and_then(Value::as_str).unwrap_or("");
                let wanted: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect();
                out.push(
                    Issue::warn("spec.endpoints", format!("no failover endpoint carries the labels of subset {name} ({})", wanted.join(", ")))
                        .because("that subset's Envoy cluster gets no remote endpoint, so its clients have nothing to fail over to")
                        .fix(format!("add an endpoint per remote gateway with labels {}, or annotate the entry failover-guard.io/failover: \"true\" to generate them", wanted.join(", "))),
                );
            }
        }
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

    /// FG210's consequence holds only where nothing else separates the networks: a stored
    /// failoverPriority led by the network label already ranks the remote after the local pods.
    #[test]
    fn fg210_consequence_follows_a_network_first_failover_priority() {
        let entry = yaml(
            "{apiVersion: networking.istio.io/v1, kind: ServiceEntry, metadata: {name: reviews-failover, namespace: bookinfo}, spec: {hosts: [reviews.bookinfo.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 9080, name: http, protocol: HTTP}], endpoints: [{address: 203.0.113.10, ports: {http: 15443}, locality: europe-west1/europe-west1-b, network: network-b, labels: {security.istio.io/tlsMode: istio}}]}}",
        );
        let rule = |priority: &str| {
            yaml(&format!(
                "{{apiVersion: networking.istio.io/v1, kind: DestinationRule, metadata: {{name: reviews, namespace: bookinfo}}, spec: {{host: reviews, trafficPolicy: {{outlierDetection: {{}}, loadBalancer: {{localityLbSetting: {{failoverPriority: [{priority}]}}}}}}}}}}"
            ))
        };
        let config = Config::example();
        let consequence = |world: &ManifestWorld| {
            let (_, issues) = run_rule(&FG210, &config, Some(world), &entry, false);
            assert_eq!(issues.len(), 1, "{issues:?}");
            issues[0].consequence.to_string()
        };
        let network_first = ManifestWorld::new(
            [&rule(
                "topology.istio.io/network, topology.kubernetes.io/region",
            )],
            "default",
            "svc.cluster.local",
        );
        assert!(consequence(&network_first).contains("failover still happens"));
        let region_first = ManifestWorld::new(
            [&rule("topology.kubernetes.io/region")],
            "default",
            "svc.cluster.local",
        );
        assert!(consequence(&region_first).contains("traffic crosses clusters all the time"));
    }
}
