//! DestinationRule rules (FG1xx).
//!
//! Istio resolves a traffic policy per subset and port: a `portLevelSettings` entry replaces
//! the whole policy for its port (nothing is inherited), a subset's fields override the top
//! level's, and a subset's matching port-level entry wipes what the subset inherited. Locality
//! failover is ordered only where the resolved policy has `outlierDetection`. So the rules
//! below walk every *policy level*, not just `spec.trafficPolicy`.

use serde_json::{Map, Value, json};

use crate::object::Field as _;

use super::{Context, Issue, Issues, Rule, Text};
use crate::{
    config::Mode,
    istio::{
        cluster_local_service,
        destination_rule::{Level, LevelKind, policy_levels, policy_shadowed_by, qualified_name},
        fqdn,
    },
    locality::{closest, has_partial_wildcard},
    object::{Kind, as_int},
};

/// A field at a level, as named in messages; formatted only when a finding names it.
#[derive(Debug, Clone, Copy)]
struct FieldPath {
    level: Level,
    field: &'static str,
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.level.path(), self.field)
    }
}

impl From<&FieldPath> for Text {
    fn from(path: &FieldPath) -> Text {
        path.to_string().into()
    }
}

/// Every policy level present in the object; the top level is listed even when absent. No
/// fix adds a level (they write into levels that exist, or create the top one), so they are
/// found once per pass.
fn levels<'c>(dr: &Value, cx: &'c Context<'_>) -> &'c [Level] {
    cx.facts.levels.get_or_init(|| policy_levels(dr))
}

/// Whether a policy turns locality load balancing off (`enabled: false`).
fn locality_disabled(policy: &Value) -> bool {
    policy
        .path(&["loadBalancer", "localityLbSetting", "enabled"])
        .and_then(Value::as_bool)
        == Some(false)
}

/// A present, non-null field.
fn has(value: &Value, key: &str) -> bool {
    value.field(key).is_some_and(|v| !v.is_null())
}

/// The policy object at a level, created (with its parents) for the top level when absent.
fn policy_mut<'a>(dr: &'a mut Value, level: &Level) -> Option<&'a mut Map<String, Value>> {
    if level.kind == LevelKind::Top {
        let spec = crate::object::child_object(dr, "spec")?;
        return spec
            .entry("trafficPolicy")
            .or_insert_with(|| json!({}))
            .as_object_mut();
    }
    level.get_mut(dr)?.as_object_mut()
}

// === FG101 outlier-detection-missing ===

/// FG101: every policy level that resolves on its own needs `outlierDetection` for ordered
/// locality failover.
pub static FG101: Rule = Rule {
    id: "FG101",
    name: "outlier-detection-missing",
    kinds: &[Kind::DestinationRule],
    default: Mode::Mutate,
    can_mutate: true,
    needs_world: false,
    guards_istiod: false,
    summary: "A policy level without outlierDetection gets the configured default outlier detection \
              (a wildcard-host DestinationRule gets a warning instead).",
    istio: "pilot/pkg/networking/core/loadbalancer LocalityLBSettings.ApplyToCluster enables \
            failover only when the Envoy cluster has outlier detection (c.OutlierDetection != nil, \
            {} counts), which applyOutlierDetection sets from the policy that resolves for that \
            subset and port (model.MergeTrafficPolicy, util.GetPortLevelTrafficPolicy). Without it \
            ApplyLocalityLoadBalancer skips applyLocalityFailover: every endpoint keeps priority 0, \
            traffic is sprayed across clusters and nothing fails over. portLevelSettings entries \
            replace the whole policy for their port, so each needs its own. Only hosts in failover \
            scope (cluster-local services, hosts of failover entries) get it injected; a second \
            rule merged with an older one that has a top-level trafficPolicy \
            (PushContext.mergeDestinationRule) gets none.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews.bookinfo.svc.cluster.local\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 9080}\n      connectionPool: {http: {http1MaxPendingRequests: 100}}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews.bookinfo.svc.cluster.local\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, consecutiveGatewayErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 100}\n    portLevelSettings:\n    - port: {number: 9080}\n      connectionPool: {http: {http1MaxPendingRequests: 100}}\n      outlierDetection: {consecutive5xxErrors: 5, consecutiveGatewayErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 100}\n",
    check: check_fg101,
};

/// The rule's host, fully qualified in the rule's namespace (model.ResolveShortnameToFQDN).
/// No fix changes the host: it is worked out once per pass.
pub(crate) fn rule_host<'c>(dr: &Value, cx: &'c Context<'_>) -> Option<&'c str> {
    cx.facts
        .host
        .get_or_init(|| {
            let host = dr.path(&["spec", "host"])?.as_str()?;
            Some(fqdn(
                host,
                &cx.subject.namespace,
                &cx.config.cluster.cluster_domain,
            ))
        })
        .as_deref()
}

/// Whether the world shows a failover entry for the host with an endpoint at a configured
/// remote gateway.
fn fed_by_remote_gateway(host: &str, cx: &Context<'_>) -> bool {
    cx.world.is_some_and(|w| {
        w.service_entries(host)
            .iter()
            .any(|se| super::service_entry::at_remote_gateway(se, cx))
    })
}

/// Whether a DestinationRule's host is one locality failover is for: a cluster-local service
/// host, or a host that the world shows fed by a failover entry.
fn in_failover_scope(dr: &Value, cx: &Context<'_>) -> bool {
    *cx.facts.in_failover_scope.get_or_init(|| {
        let Some(host) = rule_host(dr, cx) else {
            return false;
        };
        if let Some((_, namespace)) = cluster_local_service(host, &cx.config.cluster.cluster_domain)
        {
            return cx.config.in_scope(namespace);
        }
        fed_by_remote_gateway(host, cx)
    })
}

/// Other DestinationRules whose top-level `trafficPolicy` pilot uses instead of this one's
/// (the model's merge: `istio::destination_rule::policy_shadowed_by`). The subject takes the
/// place of its stored version, or comes last (newest) when it is new.
fn policy_partners(dr: &Value, cx: &Context<'_>) -> Vec<String> {
    let (Some(world), Some(host)) = (cx.world, rule_host(dr, cx)) else {
        return Vec::new();
    };
    let stored = world.destination_rules(host);
    let subject = format!("{}/{}", cx.subject.namespace, cx.subject.name);
    // Only an older rule of this namespace with a policy of its own can shadow this one: the
    // common case (one rule per host) builds nothing.
    let rival = stored.iter().any(|other| {
        crate::object::str_at(other, &["metadata", "namespace"]).unwrap_or("default")
            == cx.subject.namespace
            && qualified_name(other) != subject
            && other
                .path(&["spec", "trafficPolicy"])
                .is_some_and(|p| !p.is_null())
    });
    if !rival {
        return Vec::new();
    }
    let admitted = super::as_stored(dr, cx);
    let rules = super::with_admitted(&stored, &admitted, cx);
    policy_shadowed_by(
        &rules,
        &subject,
        &cx.config.mesh,
        &cx.config.scope.root_namespace,
        &cx.config.cluster.cluster_domain,
    )
    .into_iter()
    .map(|name| {
        name.split_once('/')
            .map_or(name.clone(), |(_, n)| n.to_owned())
    })
    .collect()
}

/// Whether a subset's own loadBalancer turns locality load balancing back on under a
/// top-level `enabled: false` (a subset's loadBalancer replaces the top-level one whole).
fn subset_reenables_locality(dr: &Value, level: &Level) -> bool {
    let top = Level::TOP.get(dr);
    top.is_some_and(locality_disabled)
        && !top.is_some_and(|p| has(p, "outlierDetection"))
        && level
            .get(dr)
            .and_then(|p| p.field("loadBalancer"))
            .is_some_and(|lb| {
                lb.is_object()
                    && !lb
                        .path(&["localityLbSetting", "enabled"])
                        .is_some_and(|e| e == false)
            })
}

fn check_fg101(dr: &mut Value, cx: &Context<'_>, fix: bool, out: &mut Issues) {
    if dr.field("spec").is_some_and(|s| !s.is_object()) {
        return;
    }
    // A wildcard host (`*.local`, `*.global`) makes this a mesh- or namespace-wide default.
    // Injecting outlier detection there would start ejecting endpoints of every service that
    // has no DestinationRule of its own: a change nobody asked for. Say so instead.
    let wildcard = dr
        .path(&["spec", "host"])
        .and_then(Value::as_str)
        .is_some_and(|h| h.contains('*'));
    if wildcard {
        let top = Level::TOP.get(dr);
        if !top.is_some_and(|p| has(p, "outlierDetection") || locality_disabled(p)) {
            out.push(
                Issue::warn(
                    "spec.trafficPolicy",
                    "wildcard-host DestinationRule has no outlierDetection",
                )
                .because("services that rely on it get no locality failover")
                .fix("give each failover service its own DestinationRule with outlierDetection"),
            );
        }
        return;
    }
    // An egress rule for an external host is no failover target: ejecting its endpoints is
    // the user's call. Warn only when it asks for locality failover explicitly.
    if !in_failover_scope(dr, cx) {
        let asks = locality_settings(dr, cx).iter().any(|(level, _)| {
            setting(dr, level).is_some_and(|s| {
                non_empty(s.field("failover")) || non_empty(s.field("failoverPriority"))
            }) && !level.get(dr).is_some_and(|p| has(p, "outlierDetection"))
        });
        if asks {
            out.push(
                Issue::warn("spec.trafficPolicy", "locality failover is configured without outlierDetection")
                    .because("pilot applies failover priorities only with outlier detection, so nothing fails over")
                    .fix("add outlierDetection next to localityLbSetting"),
            );
        }
        return;
    }
    let partners = policy_partners(dr, cx);
    for &level in levels(dr, cx) {
        match level.kind {
            // A subset inherits the top level's outlierDetection, unless its own load
            // balancer re-enables locality under a top level that disabled it.
            LevelKind::Subset if !subset_reenables_locality(dr, &level) => continue,
            // Merged with an older rule that has a top-level trafficPolicy, this rule's top
            // level is never used: injecting one would only make a second, ignored policy.
            LevelKind::Top | LevelKind::TopPort if !partners.is_empty() => continue,
            _ => {}
        }
        let policy = level.get(dr);
        let disabled_here =
            level.kind != LevelKind::Subset && policy.is_some_and(locality_disabled);
        if policy.is_some_and(|p| !p.is_object() || has(p, "outlierDetection") || disabled_here) {
            continue;
        }
        let existed = policy.is_some();
        let fixed = fix
            && policy_mut(dr, &level)
                .map(|p| {
                    p.insert(
                        "outlierDetection".into(),
                        cx.config.topology.outlier_detection.clone(),
                    )
                })
                .is_some();
        // Only the top level is created when absent (by policy_mut); then the patch adds it whole.
        let wrote = fixed.then(|| {
            if existed {
                level.pointer(&["outlierDetection"])
            } else {
                level.pointer(&[])
            }
        });
        let path = level.path();
        out.push(
            Issue::fixable(
                path.clone(),
                format!("{path} has no outlierDetection"),
                wrote,
            )
            .because(
                "Istio orders locality failover only where outlierDetection is set, so \
                     traffic is spread over every cluster and never fails over",
            )
            .fix(format!(
                "add outlierDetection to {path} (failover-guard injects the configured default)"
            )),
        );
    }
}

/// Every `outlierDetection` object in the rule, with its level's path.
fn outlier_detections(dr: &Value, cx: &Context<'_>) -> Vec<(Level, FieldPath)> {
    levels(dr, cx)
        .iter()
        .copied()
        .filter(|l| {
            l.get(dr)
                .and_then(|p| p.field("outlierDetection"))
                .is_some_and(Value::is_object)
        })
        .map(|level| {
            (
                level,
                FieldPath {
                    level,
                    field: "outlierDetection",
                },
            )
        })
        .collect()
}

/// The `outlierDetection` object of a level, for fixing.
fn outlier_detection_mut<'a>(
    dr: &'a mut Value,
    level: &Level,
) -> Option<&'a mut Map<String, Value>> {
    level
        .get_mut(dr)?
        .field_mut("outlierDetection")?
        .as_object_mut()
}

// === FG102 max-ejection-too-low ===

/// FG102: Envoy's default `maxEjectionPercent` of 10 % means small clusters never eject.
pub static FG102: Rule = Rule {
    id: "FG102",
    name: "max-ejection-too-low",
    kinds: &[Kind::DestinationRule],
    default: Mode::Mutate,
    can_mutate: true,
    needs_world: false,
    guards_istiod: false,
    summary: "outlierDetection without maxEjectionPercent gets 100; an explicit value below 100 is a warning.",
    istio: "applyOutlierDetection (pilot/pkg/networking/core/cluster_traffic_policy.go) sets \
            max_ejection_percent only when maxEjectionPercent is above 0; unset, Envoy's default of \
            10 % of the whole cluster applies, and modern Envoy enforces it strictly (unless \
            always_eject_one_host): with fewer than 10 endpoints no host may ever be ejected, the \
            local priority never empties and traffic never fails over to the remote cluster.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 3}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 3, maxEjectionPercent: 100}\n",
    check: check_fg102,
};

fn check_fg102(dr: &mut Value, cx: &Context<'_>, fix: bool, out: &mut Issues) {
    // An egress rule's ejection budget is the user's call; see FG101.
    if !in_failover_scope(dr, cx) {
        return;
    }
    for (level, path) in outlier_detections(dr, cx) {
        let Some(od) = outlier_detection_mut(dr, &level) else {
            continue;
        };
        match od.field("maxEjectionPercent") {
            None | Some(Value::Null) => {
                if fix {
                    od.insert("maxEjectionPercent".into(), json!(100));
                }
                let wrote = fix.then(|| level.pointer(&["outlierDetection", "maxEjectionPercent"]));
                out.push(
                    Issue::fixable(&path, format!("{path} has no maxEjectionPercent"), wrote)
                        .because(
                            "Envoy then ejects at most 10% of endpoints, so with fewer than 10 \
                             endpoints none is ever ejected and traffic never fails over",
                        )
                        .fix(format!("set {path}.maxEjectionPercent: 100")),
                );
            }
            Some(value) => {
                // 0 is what protobuf cannot tell from unset: pilot sends no
                // max_ejection_percent, and Envoy's default of 10% applies
                // (cluster_traffic_policy.go applyOutlierDetection).
                if as_int(value) == Some(0) {
                    out.push(
                        Issue::warn(
                            &path,
                            format!("{path}.maxEjectionPercent is 0, which pilot treats as unset"),
                        )
                        .because(
                            "Envoy then ejects at most 10% of endpoints, so with fewer than 10 \
                                 endpoints none is ever ejected and traffic never fails over",
                        )
                        .fix("set maxEjectionPercent: 100"),
                    );
                } else if let Some(percent) = as_int(value).filter(|p| *p < 100) {
                    out.push(
                        Issue::warn(&path, format!("{path}.maxEjectionPercent is {percent}"))
                            .because(
                                "at most that share of endpoints is ejected, so local endpoints \
                                 can stay in rotation and block failover to remote clusters",
                            )
                            .fix("set maxEjectionPercent: 100 unless a partial outage is intended"),
                    );
                }
            }
        }
    }
}

// === FG103 outlier-detection-inert ===

/// FG103: an outlier detection that can never eject anything.
pub static FG103: Rule = Rule {
    id: "FG103",
    name: "outlier-detection-inert",
    kinds: &[Kind::DestinationRule],
    default: Mode::Deny,
    can_mutate: true,
    needs_world: false,
    guards_istiod: false,
    summary: "Outlier detection that can never eject is denied; the deprecated consecutiveErrors is \
              rewritten to consecutive5xxErrors.",
    istio: "pilot/pkg/networking/core/cluster_traffic_policy.go applyOutlierDetection: \
            consecutive5xxErrors: 0 sets enforcing_consecutive_5xx to 0, an unset \
            consecutiveGatewayErrors leaves Envoy's enforcing_consecutive_gateway_failure at 0, \
            and without splitExternalLocalOriginErrors no local-origin failure is counted: nothing \
            is ever ejected, so locality failover is configured but never triggers (with the split \
            on, Envoy ejects on local-origin failures by default). applyOutlierDetection never \
            reads the deprecated consecutiveErrors, so its value is silently ignored.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 0, maxEjectionPercent: 100}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n",
    check: check_fg103,
};

fn check_fg103(dr: &mut Value, cx: &Context<'_>, fix: bool, out: &mut Issues) {
    for (level, path) in outlier_detections(dr, cx) {
        let Some(od) = outlier_detection_mut(dr, &level) else {
            continue;
        };
        // A field is removed: the patch replaces the whole outlierDetection.
        let wrote = || fix.then(|| level.pointer(&["outlierDetection"]));
        if has_value(od, "consecutiveErrors") && !has_value(od, "consecutive5xxErrors") {
            if let Some(value) = fix.then(|| od.remove("consecutiveErrors")).flatten() {
                od.insert("consecutive5xxErrors".into(), value);
            }
            out.push(
                Issue::fixable(
                    &path,
                    format!("{path} uses the deprecated consecutiveErrors"),
                    wrote(),
                )
                .because("pilot never reads it, so Envoy's default of 5 consecutive 5xx applies")
                .fix("rename consecutiveErrors to consecutive5xxErrors"),
            );
        } else if has_value(od, "consecutiveErrors") {
            // Both: a GitOps re-apply sent the old form back beside the rewritten one (the
            // three-way merge re-adds what the manifest still says). Pilot reads only
            // consecutive5xxErrors, so dropping the other converges without changing behaviour.
            if fix {
                od.remove("consecutiveErrors");
            }
            out.push(
                Issue::fixable(
                    &path,
                    format!(
                        "{path} has the deprecated consecutiveErrors beside consecutive5xxErrors"
                    ),
                    wrote(),
                )
                .because("pilot reads only consecutive5xxErrors; the other is ignored")
                .fix("remove consecutiveErrors"),
            );
        }
        let count = |key: &str| od.field(key).and_then(as_int);
        // With the split on, pilot always emits split_external_local_origin_errors and
        // Envoy ejects on local-origin failures (consecutive_local_origin_failure defaults to
        // 5, enforcing to 100) even when consecutiveLocalOriginFailures is unset.
        let local_origin = od
            .field("splitExternalLocalOriginErrors")
            .and_then(Value::as_bool)
            == Some(true);
        if count("consecutive5xxErrors") == Some(0)
            && count("consecutiveGatewayErrors").unwrap_or(0) == 0
            && !local_origin
        {
            out.push(
                Issue::deny(
                    &path,
                    format!("{path} can never eject: consecutive5xxErrors is 0 and no gateway or local-origin errors are counted"),
                )
                .because("no endpoint is ever ejected, so locality failover never moves traffic")
                .fix("set consecutive5xxErrors or consecutiveGatewayErrors above 0 (e.g. 5)"),
            );
        }
    }
}

fn has_value(map: &Map<String, Value>, key: &str) -> bool {
    map.field(key).is_some_and(|v| !v.is_null())
}

/// Every `localityLbSetting` object in the rule, with its level.
fn locality_settings(dr: &Value, cx: &Context<'_>) -> Vec<(Level, FieldPath)> {
    levels(dr, cx)
        .iter()
        .copied()
        .filter(|l| setting(dr, l).is_some_and(Value::is_object))
        .map(|level| {
            (
                level,
                FieldPath {
                    level,
                    field: "loadBalancer.localityLbSetting",
                },
            )
        })
        .collect()
}

fn setting<'a>(dr: &'a Value, level: &Level) -> Option<&'a Value> {
    level
        .get(dr)?
        .field("loadBalancer")?
        .field("localityLbSetting")
}

fn non_empty(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::Null) | None => false,
        Some(_) => true,
    }
}

/// The fully qualified host of the rule, when it is a cluster-local service in failover scope.
fn failover_host<'c>(dr: &Value, cx: &'c Context<'_>) -> Option<&'c str> {
    let fqdn = rule_host(dr, cx)?;
    (cx.config.in_failover_scope(&cx.subject.namespace)
        && cluster_local_service(fqdn, &cx.config.cluster.cluster_domain).is_some())
    .then_some(fqdn)
}

// === FG104 locality-setting-dropped ===

/// FG104: a subset or port-level load balancer replaces the top-level one, settings included.
pub static FG104: Rule = Rule {
    id: "FG104",
    name: "locality-setting-dropped",
    kinds: &[Kind::DestinationRule],
    default: Mode::Mutate,
    can_mutate: true,
    needs_world: false,
    guards_istiod: false,
    summary: "A subset or port-level loadBalancer without localityLbSetting, while the top level \
              has one, gets a copy of it.",
    istio: "A subset's loadBalancer replaces the top-level one, localityLbSetting included \
            (pilot/pkg/model/destination_rule.go MergeTrafficPolicy), and a portLevelSettings entry \
            replaces the whole policy for its port (pilot/pkg/networking/util \
            GetPortLevelTrafficPolicy). loadbalancer.GetEffectiveLbSetting then falls back to the \
            mesh-wide setting there, silently dropping the DestinationRule's failover, \
            failoverPriority or distribute for that subset or port. Beside a zoneAwareLbSetting \
            nothing is copied: Istio's validation rejects both in one loadBalancer, and the \
            zone-aware setting wins.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n    loadBalancer:\n      localityLbSetting:\n        failover: [{from: europe-west1, to: europe-west4}]\n  subsets:\n  - name: v1\n    labels: {version: v1}\n    trafficPolicy:\n      loadBalancer: {simple: ROUND_ROBIN}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n    loadBalancer:\n      localityLbSetting:\n        failover: [{from: europe-west1, to: europe-west4}]\n  subsets:\n  - name: v1\n    labels: {version: v1}\n    trafficPolicy:\n      loadBalancer:\n        simple: ROUND_ROBIN\n        localityLbSetting:\n          failover: [{from: europe-west1, to: europe-west4}]\n",
    check: check_fg104,
};

fn check_fg104(dr: &mut Value, cx: &Context<'_>, fix: bool, out: &mut Issues) {
    const TOP: &[&str] = &["spec", "trafficPolicy", "loadBalancer", "localityLbSetting"];
    // A top level that only switches locality off has no failover setting to lose. A subset
    // whose own loadBalancer leaves it out runs the mesh default (enabled), and FG101 gives it
    // outlier detection so it fails over; copying `enabled: false` there would undo that in
    // the same pass (the subset would go from failover back to spread).
    if !dr.path(TOP).is_some_and(Value::is_object)
        || dr
            .path(TOP)
            .is_some_and(|s| s.field("enabled") == Some(&Value::Bool(false)))
    {
        return;
    }
    // A bare `enabled: true` under a mesh config that turns locality off is FG116's to write
    // at every level, so creating and re-applying a manifest are fixed by the same rules.
    if cx.config.mesh.locality_lb_disabled() && dr.path(TOP) == Some(&json!({"enabled": true})) {
        return;
    }
    for &level in levels(dr, cx) {
        let Some(policy) = level.get(dr).filter(|p| p.is_object()) else {
            continue;
        };
        let lb = policy.field("loadBalancer");
        let dropped = match level.kind {
            LevelKind::Top => false,
            // A subset without its own loadBalancer inherits the top-level one whole.
            LevelKind::Subset => {
                lb.is_some_and(|lb| lb.is_object() && !has(lb, "localityLbSetting"))
            }
            // Port-level entries inherit nothing: no loadBalancer means the mesh default.
            LevelKind::TopPort | LevelKind::SubsetPort => {
                lb.is_none_or(|lb| lb.is_object() && !has(lb, "localityLbSetting"))
            }
        };
        if !dropped {
            continue;
        }
        if lb.is_some_and(|lb| has(lb, "zoneAwareLbSetting")) {
            // Istio's validation rejects localityLbSetting beside zoneAwareLbSetting
            // (pkg/config/validation: validateLoadBalancer), so there is nothing to copy into.
            out.push(
                Issue::warn(
                    level.path(),
                    format!("{} uses zoneAwareLbSetting, so spec.trafficPolicy's localityLbSetting does not apply there", level.path()),
                )
                .because("GetEffectiveLbSetting takes the zone-aware setting: the top-level failover rules are dropped for it")
                .fix("configure failover for it in zoneAwareLbSetting, or drop zoneAwareLbSetting to inherit localityLbSetting"),
            );
            continue;
        }
        let had_lb = lb.is_some();
        // Copied only here, where a level lacks it (the top level is never changed).
        let reference = if level.kind == LevelKind::SubsetPort {
            // The subset's own setting, when it has one, is what this port should keep.
            level
                .subset_level()
                .get(dr)
                .and_then(|p| p.path(&["loadBalancer", "localityLbSetting"]))
                .or_else(|| dr.path(TOP))
        } else {
            dr.path(TOP)
        }
        .cloned()
        .unwrap_or_default();
        let fixed = fix
            && level
                .get_mut(dr)
                .and_then(|p| crate::object::child_object(p, "loadBalancer"))
                .map(|lb| lb.insert("localityLbSetting".into(), reference))
                .is_some();
        // A port level without a loadBalancer gets one created, added whole.
        let wrote = fixed.then(|| {
            if had_lb {
                level.pointer(&["loadBalancer", "localityLbSetting"])
            } else {
                level.pointer(&["loadBalancer"])
            }
        });
        out.push(
            Issue::fixable(
                level.path(),
                format!("{} has no localityLbSetting while spec.trafficPolicy has one", level.path()),
                wrote,
            )
            .because("it replaces the top-level load balancer, so Istio drops the failover settings there")
            .fix(format!("copy localityLbSetting into {}.loadBalancer", level.path())),
        );
    }
}

// === FG105 locality-disabled-with-settings ===

/// FG105: `enabled: false` discards every other locality setting.
pub static FG105: Rule = Rule {
    id: "FG105",
    name: "locality-disabled-with-settings",
    kinds: &[Kind::DestinationRule],
    default: Mode::Deny,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "localityLbSetting with enabled: false together with failover, failoverPriority or \
              distribute is denied.",
    istio: "pilot/pkg/networking/core/loadbalancer GetEffectiveLbSetting returns no setting at all \
            for enabled: false, so the failover, failoverPriority or distribute beside it are \
            discarded without a word and every endpoint keeps priority 0.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n        enabled: false\n        failover: [{from: europe-west1, to: europe-west4}]\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n    loadBalancer:\n      localityLbSetting:\n        enabled: true\n        failover: [{from: europe-west1, to: europe-west4}]\n",
    check: check_fg105,
};

fn check_fg105(dr: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    for (level, path) in locality_settings(dr, cx) {
        let Some(setting) = setting(dr, &level) else {
            continue;
        };
        if setting.field("enabled").and_then(Value::as_bool) != Some(false) {
            continue;
        }
        let ignored: Vec<&str> = ["failover", "failoverPriority", "distribute"]
            .into_iter()
            .filter(|k| non_empty(setting.field(k)))
            .collect();
        if !ignored.is_empty() {
            out.push(
                Issue::deny(
                    &path,
                    format!(
                        "{path} has enabled: false together with {}",
                        ignored.join(", ")
                    ),
                )
                .because("Istio turns locality load balancing off and ignores those settings")
                .fix(format!(
                    "remove enabled: false, or remove {}",
                    ignored.join(", ")
                )),
            );
        }
    }
}

// === FG106 distribute-drops-localities ===

/// FG106: `distribute` is weighting, not failover: unlisted localities get no traffic.
pub static FG106: Rule = Rule {
    id: "FG106",
    name: "distribute-drops-localities",
    kinds: &[Kind::DestinationRule],
    default: Mode::Deny,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "distribute that uses partial wildcards or overlapping keys, or is combined with \
              failoverPriority, is denied; one that leaves out a configured cluster's locality is \
              a warning (v3: Istio's own distribute task does so on purpose), and so is a \
              failover-scope rule that inherits such a distribute from the mesh config.",
    istio: "distribute is weighting, not failover: pilot/pkg/networking/core/loadbalancer \
            applyLocalityWeights uses the first rule whose from matches the client and empties every \
            locality group its to keys do not list, so that cluster never receives traffic, even \
            when every other endpoint is down; with distribute set, ApplyLocalityLoadBalancer \
            applies no failover priorities at all. Locality keys match whole segments \
            (pilot/pkg/networking/util LocalityMatch), so partial wildcards (us-east*) never match; \
            a rule without a localityLbSetting of its own inherits the mesh config's \
            (loadbalancer.GetEffectiveLbSetting: the rule's setting, else the Service's traffic \
            distribution, else the mesh's, each in place of the next; istio/istio#35410, \
            #59202); overlapping to keys are walked in Go's random map order, both by applyLocalityWeights \
            (an endpoint group takes the weight of whichever matching key comes first) and by \
            pkg/config/validation/agent validateLocalities (which rejects the overlap only when \
            the wider key comes first), so the weights change from push to push and the same \
            object is accepted on one apply and rejected on the next; distribute and \
            failoverPriority cannot be combined.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n    loadBalancer:\n      localityLbSetting:\n        distribute:\n        - from: europe-west1/*\n          to: {\"europe-west1/*\": 100}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n    loadBalancer:\n      localityLbSetting:\n        distribute:\n        - from: europe-west1/*\n          to: {\"europe-west1/*\": 90, \"europe-west4/*\": 10}\n",
    check: check_fg106,
};

fn check_fg106(dr: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    check_fg106_inherited(dr, cx, out);
    let topology = &cx.config.topology;
    for (level, path) in locality_settings(dr, cx) {
        let Some(setting) = setting(dr, &level) else {
            continue;
        };
        let Some(rules) = setting.field("distribute").and_then(Value::as_array) else {
            continue;
        };
        if rules.is_empty() {
            continue;
        }
        if non_empty(setting.field("failoverPriority")) {
            out.push(
                Issue::deny(
                    &path,
                    format!("{path} combines distribute with failoverPriority"),
                )
                .because("Istio cannot apply both and the failover priorities are lost")
                .fix("use either distribute or failoverPriority"),
            );
        }
        // applyLocalityWeights uses the first rule whose from matches the client; a client
        // that matches none gets no weighting, and with distribute set no failover either.
        let unmatched: Vec<String> = cx
            .config
            .cluster
            .localities
            .iter()
            .filter_map(|l| crate::locality::Locality::parse(l).ok())
            .filter(|l| {
                !rules.iter().any(|r| {
                    r.field("from")
                        .and_then(Value::as_str)
                        .is_some_and(|from| l.matches_rule(from))
                })
            })
            .map(|l| l.to_string())
            .collect();
        if !unmatched.is_empty() {
            out.push(
                Issue::warn(&path, format!("{path}.distribute has no from matching this cluster's localities {}", unmatched.join(", ")))
                    .because("clients there get no locality weighting and, with distribute set, no failover priorities: every endpoint has priority 0")
                    .fix(format!("add a distribute rule with from: {}/*", unmatched[0].split('/').next().unwrap_or("*"))),
            );
        }
        for (i, rule) in rules.iter().enumerate() {
            let at = format!("{path}.distribute[{i}]");
            let from = rule.field("from").and_then(Value::as_str).unwrap_or("");
            let to: Vec<&str> = rule
                .field("to")
                .and_then(Value::as_object)
                .map(|m| m.keys().map(String::as_str).collect())
                .unwrap_or_default();
            for key in std::iter::once(from).chain(to.iter().copied()) {
                if has_partial_wildcard(key) {
                    out.push(
                        Issue::deny(
                            at.clone(),
                            format!("{at} uses the partial wildcard {key:?}"),
                        )
                        .because(
                            "Istio matches locality segments whole, so it never matches anything",
                        )
                        .fix("use a whole segment wildcard such as \"region/*\""),
                    );
                }
            }
            if !to.contains(&"*") {
                let missing: Vec<String> = topology
                    .localities
                    .iter()
                    .filter(|l| !to.iter().any(|k| l.matches_rule(k)))
                    .map(|l| l.to_string())
                    .collect();
                if !missing.is_empty() {
                    out.push(
                        // A warning (v3): Istio's own distribute task leaves a locality out
                        // on purpose; it is weighting, chosen, and only unsafe for failover.
                        Issue::warn(at.clone(), format!("{at}.to leaves out configured localities {}", missing.join(", ")))
                            .because("endpoints there are removed, so those clusters never receive traffic, not even on failover")
                            // Not "*": beside the existing keys it would overlap them, which
                            // this rule denies too.
                            .fix(format!("add {} to to, with a small weight", missing.join(", "))),
                    );
                }
            }
            for (a, key_a) in to.iter().enumerate() {
                for key_b in &to[a + 1..] {
                    if keys_overlap(key_a, key_b) {
                        out.push(
                            Issue::deny(at.clone(), format!("{at}.to keys {key_a:?} and {key_b:?} overlap"))
                                .because("Istio walks the to keys in random order: the endpoints there take whichever key's weight comes first, and its validation rejects the overlap on some applies only")
                                .fix("make the to keys disjoint"),
                        );
                    }
                }
            }
        }
    }
}

/// FG106 for a mesh-wide distribute a failover-scope rule inherits: the rule's top level sets no
/// localityLbSetting, the Service no traffic distribution, and the mesh config's distribute,
/// for a rule whose from matches this cluster's localities, leaves out a configured locality.
fn check_fg106_inherited(dr: &Value, cx: &Context<'_>, out: &mut Issues) {
    let Some(mesh_rules) = cx
        .config
        .mesh
        .locality_lb_setting()
        .and_then(|s| s.field("distribute"))
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
    else {
        return;
    };
    if !dr.path(&["spec"]).is_some_and(Value::is_object)
        || dr
            .path(&["spec", "trafficPolicy", "loadBalancer", "localityLbSetting"])
            .is_some()
        || !in_failover_scope(dr, cx)
        || service_sets_traffic_distribution(dr, cx)
    {
        return;
    }
    let local: Vec<crate::locality::Locality> = cx
        .config
        .cluster
        .localities
        .iter()
        .filter_map(|l| crate::locality::Locality::parse(l).ok())
        .collect();
    let origin = cx.config.mesh.origin().unwrap_or("the mesh config");
    for rule in mesh_rules {
        let from = rule.field("from").and_then(Value::as_str).unwrap_or("");
        if !local.iter().any(|l| l.matches_rule(from)) {
            continue;
        }
        let to: Vec<&str> = rule
            .field("to")
            .and_then(Value::as_object)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        if to.contains(&"*") {
            continue;
        }
        let missing: Vec<String> = cx
            .config
            .topology
            .localities
            .iter()
            .filter(|l| !to.iter().any(|k| l.matches_rule(k)))
            .map(|l| l.to_string())
            .collect();
        if missing.is_empty() {
            continue;
        }
        out.push(
            Issue::warn(
                "spec.trafficPolicy",
                format!(
                    "this rule inherits the distribute of {origin} (from {from}), which leaves out {}",
                    missing.join(", ")
                ),
            )
            .because("pilot removes the endpoints there from every client it weights, failover endpoints included: those clusters never receive traffic, not even on failover")
            .fix("give the rule its own loadBalancer.localityLbSetting, which pilot uses in place of the mesh config's: {enabled: true} for failover, or a distribute that lists those localities"),
        );
        return;
    }
}

/// Whether the rule's host is a Service of the world whose traffic distribution pilot reads
/// before the mesh config's locality setting.
fn service_sets_traffic_distribution(dr: &Value, cx: &Context<'_>) -> bool {
    let (Some(world), Some(host)) = (cx.world, rule_host(dr, cx)) else {
        return false;
    };
    let Some((name, namespace)) = cluster_local_service(host, &cx.config.cluster.cluster_domain)
    else {
        return false;
    };
    world.service(namespace, name).is_some_and(|svc| {
        crate::istio::service_traffic_distribution(
            &svc,
            world.namespace(namespace).as_deref(),
            cx.config.istio.version,
        ) != crate::istio::TrafficDistribution::Any
    })
}

/// Whether two locality keys can select the same locality.
fn keys_overlap(a: &str, b: &str) -> bool {
    let (sa, sb): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
    (0..3).all(|i| {
        let x = sa.get(i).copied().unwrap_or("");
        let y = sb.get(i).copied().unwrap_or("");
        x.is_empty() || y.is_empty() || x == "*" || y == "*" || x == y
    })
}

// === FG107 failover-unknown-region ===

/// FG107: failover regions must be regions that endpoints actually have.
pub static FG107: Rule = Rule {
    id: "FG107",
    name: "failover-unknown-region",
    kinds: &[Kind::DestinationRule],
    default: Mode::Deny,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "failover.from or .to that is not a region of the configured topology, or a duplicate \
              from, is denied (with the closest known region).",
    istio: "pilot/pkg/networking/core/loadbalancer applyLocalityFailover compares failover.from with \
            the client's region and failover.to with the endpoint's region, and stops at the first \
            rule whose from matches: a region no endpoint has (a typo, a zone, another case) matches \
            nothing and the rule does nothing, and later rules for the same from are ignored.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n    loadBalancer:\n      localityLbSetting:\n        failover: [{from: europe-west1, to: europe-west4-a}]\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n    loadBalancer:\n      localityLbSetting:\n        failover: [{from: europe-west1, to: europe-west4}]\n",
    check: check_fg107,
};

fn check_fg107(dr: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    let topology = &cx.config.topology;
    if topology.regions.is_empty() {
        return;
    }
    for (level, path) in locality_settings(dr, cx) {
        let Some(setting) = setting(dr, &level) else {
            continue;
        };
        let mut seen = std::collections::BTreeSet::new();
        for (i, rule) in crate::object::array_at(setting, &["failover"])
            .iter()
            .enumerate()
        {
            // Named only for a finding: most rules are fine.
            let at = || format!("{path}.failover[{i}]");
            for field in ["from", "to"] {
                let Some(region) = rule.field(field).and_then(Value::as_str) else {
                    continue;
                };
                if topology.regions.contains(region) {
                    continue;
                }
                let at = at();
                out.push(
                    Issue::deny(
                        at.clone(),
                        format!("{at}.{field} {region:?} is not a region of the topology"),
                    )
                    .because("no endpoint has that region, so this failover rule does nothing")
                    .fix(region_hint(region, cx)),
                );
            }
            if let Some(from) = rule.field("from").and_then(Value::as_str)
                && !seen.insert(from)
            {
                let at = at();
                out.push(
                    Issue::deny(at.clone(), format!("{at} repeats from {from:?}"))
                        .because("Istio uses only the first failover rule per from")
                        .fix("merge the rules for that region into one"),
                );
            }
        }
    }
}

/// "did you mean" text for an unknown region.
pub(crate) fn region_hint(value: &str, cx: &Context<'_>) -> String {
    let topology = &cx.config.topology;
    let known = topology
        .regions
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(region) = topology.zones.get(value) {
        return format!("{value:?} is a zone of region {region}; use the region {region:?}");
    }
    if let Some((region, _)) = value.split_once('/')
        && topology.regions.contains(region)
    {
        return format!("use the region {region:?} only, not a locality");
    }
    match closest(value, topology.regions.iter().map(String::as_str)) {
        Some(close) if close != value && close.eq_ignore_ascii_case(value) => {
            format!("did you mean {close:?}? region names are case-sensitive")
        }
        Some(close) => format!("did you mean {close:?}? known regions: {known}"),
        None => format!("use one of the known regions: {known}"),
    }
}

// === FG108 failover-priority-labels ===

/// FG108: failoverPriority that cannot tell local endpoints from remote ones.
pub static FG108: Rule = Rule {
    id: "FG108",
    name: "failover-priority-labels",
    kinds: &[Kind::DestinationRule],
    default: Mode::Deny,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "failoverPriority that ranks failover entry endpoints beside the local ones (above all \
              through topology.istio.io/cluster) is denied, or a warning when only custom labels \
              tie; failover set beside it breaks the tie (v3); in a native model, one that ranks \
              remote networks of different localities alike is a warning.",
    istio: "failoverPriority ranks an endpoint by how many leading labels it shares with the client \
            (pilot/pkg/networking/core/loadbalancer applyFailoverPriorityPerLocality). ServiceEntry \
            endpoints get topology.kubernetes.io/region, topology.kubernetes.io/zone and \
            topology.istio.io/subzone from their locality, but their topology.istio.io/cluster is \
            always overwritten with the local istiod's cluster (serviceentry/conversion.go \
            convertWorkloadEntryToWorkloadInstance, labelutil.AugmentLabels). So [network, region, \
            zone] orders failover correctly, while a list that only topology.istio.io/cluster (or a \
            label no endpoint and no client carries) could tell apart gives the remote gateway \
            endpoints priority 0 beside the local pods: traffic crosses clusters all the time. \
            With `failover` set too, pilot ranks by locality on top of the labels \
            (ApplyLocalityLoadBalancer: applyFailoverPriorities, then applyLocalityFailover), so \
            a remote in another locality ranks below the local pods. In the native models another \
            network's endpoints reach the client as its east-west gateway, labelled with the \
            cluster and network only (pilot/pkg/xds/endpoints/ep_filters.go \
            EndpointsByNetworkFilter), so region and zone keys rank every remote network alike \
            where locality failover would order them (istio/istio#49500). A DNS-resolved host is \
            FG602's: pilot ranks its one locality group, and panics on endpoints in two.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n    loadBalancer:\n      localityLbSetting:\n        failoverPriority: [topology.istio.io/cluster]\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n    loadBalancer:\n      localityLbSetting:\n        failoverPriority: [topology.istio.io/network, topology.kubernetes.io/region, topology.kubernetes.io/zone]\n",
    check: check_fg108,
};

/// The failover endpoints of a host as pilot ranks them (remote, locality, labels): those of
/// the world's entries at configured remote gateways, else those FG208 generates for every
/// configured remote.
fn failover_endpoint_labels(
    entries: &[std::sync::Arc<Value>],
    cx: &Context<'_>,
) -> Vec<(String, String, std::collections::BTreeMap<String, String>)> {
    let local = &cx.config.cluster.name;
    // In a native model istiod merges each remote's workloads with their own labels.
    if cx.config.multicluster.native() {
        return cx
            .config
            .remotes
            .iter()
            .map(|r| {
                let endpoint = crate::istio::multicluster::native_remote_endpoint(
                    &r.name,
                    &r.locality,
                    &r.network,
                    &cx.config.cluster.network,
                );
                (r.name.clone(), endpoint.locality, endpoint.labels)
            })
            .collect();
    }
    let from_entries: Vec<_> = entries
        .iter()
        .flat_map(|se| crate::object::array_at(se, &["spec", "endpoints"]).iter())
        .filter_map(|e| {
            let remote = cx.config.remote_at(e.field("address")?.as_str()?)?;
            Some((
                remote.name.clone(),
                crate::istio::entry_endpoint_locality(e),
                crate::istio::entry_endpoint_labels(e, local),
            ))
        })
        .collect();
    if !from_entries.is_empty() {
        return from_entries;
    }
    cx.config
        .remotes
        .iter()
        .map(|r| {
            let endpoint = json!({"locality": r.locality, "network": r.network});
            (
                r.name.clone(),
                r.locality.clone(),
                crate::istio::entry_endpoint_labels(&endpoint, local),
            )
        })
        .collect()
}

fn check_fg108(dr: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    use crate::istio::{
        augment_labels, labels,
        traffic::{Ranked, endpoint_rank},
    };
    // Only a localityLbSetting with failoverPriority is judged: the rest is looked up then.
    let asks_priority =
        |level: &Level| setting(dr, level).is_some_and(|s| non_empty(s.field("failoverPriority")));
    if !levels(dr, cx).iter().any(asks_priority) {
        return;
    }
    let Some(host) = rule_host(dr, cx) else {
        return;
    };
    let entries = cx
        .world
        .map(|w| w.service_entries(host))
        .unwrap_or_default();
    // Before 1.30 pilot gave DNS clusters no failover priorities at all.
    let version = cx.config.istio.version;
    let dns_priorities = crate::istio::version::Behaviour::DnsFailoverPriority;
    if !version.has(dns_priorities) && entries.iter().any(|e| crate::istio::dns_resolved(e)) {
        for (level, path) in locality_settings(dr, cx) {
            if !asks_priority(&level) {
                continue;
            }
            out.push(
                Issue::warn(
                    format!("{path}.failoverPriority"),
                    format!("{path}.failoverPriority does nothing for the DNS-resolved host {host} on Istio {version}"),
                )
                .because(format!(
                    "pilot orders the endpoints of DNS clusters by failoverPriority only from Istio {} (release note dns-failover-priority.yaml); before, every endpoint keeps priority 0",
                    dns_priorities.since()
                ))
                .fix("order failover by region with localityLbSetting.failover, or resolve the entry STATIC with IP endpoints"),
            );
        }
        return;
    }
    // Fed by failover entries: the world shows one, or (no world) the host is a cluster-local
    // service in failover scope, the hosts failover entries are written for.
    let fed = if cx.config.multicluster.native() {
        // istiod merges remote endpoints into every cluster-local Service of the mesh.
        failover_host(dr, cx).is_some()
    } else if cx.world.is_some() {
        fed_by_remote_gateway(host, cx)
    } else {
        failover_host(dr, cx).is_some()
    };
    if !fed {
        return;
    }
    let client_locality = cx
        .config
        .cluster
        .localities
        .first()
        .map_or("", String::as_str);
    let client_labels = augment_labels(
        &Default::default(),
        &cx.config.cluster.name,
        client_locality,
        &cx.config.cluster.network,
    );
    let client = Ranked {
        locality: client_locality,
        labels: &client_labels,
    };
    let remotes = failover_endpoint_labels(&entries, cx);
    // In a native model, entries that list endpoints for the host are duplicates (FG208):
    // their endpoints carry this cluster's label.
    let duplicates: Vec<(String, std::collections::BTreeMap<String, String>, String)> =
        if cx.config.multicluster.native() {
            entries
                .iter()
                .flat_map(|se| {
                    let name = format!(
                        "{}/{}",
                        crate::object::str_at(se, &["metadata", "namespace"]).unwrap_or_default(),
                        crate::object::str_at(se, &["metadata", "name"]).unwrap_or_default()
                    );
                    crate::object::array_at(se, &["spec", "endpoints"])
                        .iter()
                        .map(move |e| {
                            (
                                crate::istio::entry_endpoint_locality(e),
                                crate::istio::entry_endpoint_labels(e, &cx.config.cluster.name),
                                name.clone(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        } else {
            Vec::new()
        };
    for (level, path) in locality_settings(dr, cx) {
        let Some(setting) = setting(dr, &level) else {
            continue;
        };
        // LocalityLBSettings.FailoverPriorityLabels: ignored beside distribute or enabled: false.
        if non_empty(setting.field("distribute"))
            || setting.field("enabled").and_then(Value::as_bool) == Some(false)
        {
            continue;
        }
        let priority: Vec<&str> = crate::object::array_at(setting, &["failoverPriority"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if priority.is_empty() {
            continue;
        }
        let failover = crate::object::array_at(setting, &["failover"]);
        // A remote ties when pilot ranks it where it ranks the client's own endpoints, with
        // `failover` (if set) ordering what the labels leave tied.
        let tied: Vec<String> = remotes
            .iter()
            .filter(|(_, locality, labels)| {
                let endpoint = Ranked { locality, labels };
                endpoint_rank(&client, &endpoint, &priority, failover) == 0
            })
            .map(|(remote, _, _)| remote.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let tied_duplicates: std::collections::BTreeSet<&str> = duplicates
            .iter()
            .filter(|(locality, labels, _)| {
                let endpoint = Ranked { locality, labels };
                endpoint_rank(&client, &endpoint, &priority, failover) == 0
            })
            .map(|(_, _, name)| name.as_str())
            .collect();
        if !tied_duplicates.is_empty() {
            let names: Vec<&str> = tied_duplicates.into_iter().collect();
            out.push(
                Issue::warn(
                    format!("{path}.failoverPriority"),
                    format!(
                        "ServiceEntry {} gives its endpoints the local endpoints' priority under {path}.failoverPriority",
                        names.join(", ")
                    ),
                )
                .because(format!(
                    "in the {} model istiod already merges the remote endpoints (ranked apart by their own cluster label); the entry's copies carry this cluster's label and tie with the local pods",
                    cx.config.multicluster.model
                ))
                .fix(format!("delete ServiceEntry {} (FG208); this DestinationRule is right as it is", names.join(", "))),
            );
        }
        // Remotes the labels tie with each other, where their localities alone would order
        // them: in a native model another network's endpoints reach the client as its east-west
        // gateway, which carries the cluster and network labels only (ep_filters.go
        // EndpointsByNetworkFilter), so region and zone keys cannot rank them.
        if cx.config.multicluster.native() && failover.is_empty() {
            let rank = |locality: &str, labels, keys: &[&str]| {
                endpoint_rank(&client, &Ranked { locality, labels }, keys, &[])
            };
            let mut merged: Vec<String> = Vec::new();
            for (i, (a, la, ka)) in remotes.iter().enumerate() {
                for (b, lb, kb) in &remotes[i + 1..] {
                    if rank(la, ka, &priority) == rank(lb, kb, &priority)
                        && rank(la, ka, &[]) != rank(lb, kb, &[])
                    {
                        merged.push(format!("{a} ({la}) and {b} ({lb})"));
                    }
                }
            }
            if !merged.is_empty() {
                out.push(
                    Issue::warn(
                        format!("{path}.failoverPriority"),
                        format!(
                            "{path}.failoverPriority ranks the remote clusters {} alike, although their localities differ",
                            merged.join(", ")
                        ),
                    )
                    .because("another network's endpoints reach this cluster as its east-west gateway, which pilot labels with its cluster and network only: region and zone keys match none of them, so the nearer cluster gets no precedence (istio/istio#49500)")
                    .fix("drop failoverPriority and let locality failover order the clusters: pilot keeps the gateway endpoints in their localities"),
                );
            }
        }
        if tied.is_empty() {
            continue;
        }
        let uses_cluster = priority
            .iter()
            .any(|l| l.split_once('=').map_or(*l, |(k, _)| k) == labels::CLUSTER);
        let problem = format!(
            "{path}.failoverPriority gives the failover endpoints of {} the local endpoints' priority",
            tied.join(", ")
        );
        // Istio's validation forbids region, zone and subzone in failoverPriority beside
        // failover (pkg/config/validation/agent ValidateLocalityLbSetting).
        let remedy = if failover.is_empty() {
            "use [topology.istio.io/network, topology.kubernetes.io/region, topology.kubernetes.io/zone]"
        } else {
            "give the remote gateway endpoints their cluster's locality (failover then ranks them below this one), or drop failoverPriority and let failover order the regions"
        };
        out.push(if uses_cluster {
            Issue::deny(&path, problem)
                .because("pilot labels ServiceEntry endpoints with this cluster's topology.istio.io/cluster, so local and remote tie and traffic crosses clusters all the time")
                .fix(remedy)
        } else {
            Issue::warn(&path, problem)
                .because("no label in the list tells them apart, so every endpoint gets the same priority and traffic crosses clusters all the time")
                .fix(remedy)
        });
    }
}

// === FG109 min-health-percent ===

/// FG109: panic mode fights failover.
pub static FG109: Rule = Rule {
    id: "FG109",
    name: "min-health-percent",
    kinds: &[Kind::DestinationRule],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "outlierDetection.minHealthPercent above 0 with locality load balancing is a warning.",
    istio: "applyOutlierDetection (pilot/pkg/networking/core/cluster_traffic_policy.go) turns \
            minHealthPercent into Envoy's healthy_panic_threshold. Envoy sets panic thresholds \
            aside while the priorities together can take the traffic (normalized total \
            availability 100%: a healthy remote priority takes over as failover should). Once \
            they cannot (a partial outage on both sides, or a remote that is small against the \
            local pods), a priority whose healthy share is below the threshold sends traffic to \
            all its endpoints, the ejected ones included.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100, minHealthPercent: 50}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n",
    check: check_fg109,
};

fn check_fg109(dr: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    for &level in levels(dr, cx) {
        let Some(policy) = level.get(dr) else {
            continue;
        };
        if locality_disabled(policy) {
            continue;
        }
        let Some(percent) = policy
            .path(&["outlierDetection", "minHealthPercent"])
            .and_then(as_int)
            .filter(|p| *p > 0)
        else {
            continue;
        };
        let path = format!("{}.outlierDetection", level.path());
        out.push(
            Issue::warn(path.clone(), format!("{path}.minHealthPercent is {percent}"))
                .because("when the priorities together cannot take the traffic (local and remote both degraded), a priority whose healthy share is below it gets traffic to its ejected endpoints too; while a healthy remote priority can take the traffic, failover is unaffected")
                .fix("remove minHealthPercent (0 disables panic mode)"),
        );
    }
}

// === FG110 tls-not-istio-mutual ===

/// FG110: remote gateway endpoints need Istio mTLS.
pub static FG110: Rule = Rule {
    id: "FG110",
    name: "tls-not-istio-mutual",
    kinds: &[Kind::DestinationRule],
    default: Mode::Deny,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "tls.mode other than ISTIO_MUTUAL for a host with remote gateway endpoints is denied \
              (a warning for a failover host without such evidence).",
    istio: "The east-west gateway routes AUTO_PASSTHROUGH traffic by the SNI of Istio mTLS. \
            pilot/pkg/networking/core/cluster_tls.go buildUpstreamTLSSettings gives DISABLE no TLS \
            at all and SIMPLE or MUTUAL the user's certificates, for every endpoint of the cluster, \
            remote gateways included: those requests are dropped at the gateway and failover fails \
            exactly when it is needed. Denied with evidence of remote gateway endpoints (a failover \
            entry in the world), a warning otherwise.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews.bookinfo.svc.cluster.local\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n    tls: {mode: DISABLE}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews.bookinfo.svc.cluster.local\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n    tls: {mode: ISTIO_MUTUAL}\n",
    check: check_fg110,
};

fn check_fg110(dr: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    let Some(host) = failover_host(dr, cx) else {
        return;
    };
    // Deny only with evidence of remote gateway endpoints for the host (a failover entry in
    // the world); without a world, or without such an entry, the host may be local-only.
    let evidence = fed_by_remote_gateway(host, cx);
    for &level in levels(dr, cx) {
        let Some(mode) = level
            .get(dr)
            .and_then(|p| p.path(&["tls", "mode"]))
            .and_then(Value::as_str)
        else {
            continue;
        };
        let path = format!("{}.tls", level.path());
        if mode == "ISTIO_MUTUAL" {
            let tls = level.get(dr).and_then(|p| p.field("tls"));
            // cluster_tls.go buildIstioMutualTLS keeps a hand-set sni and subjectAltNames.
            if tls.is_some_and(|t| {
                t.field("sni")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
            }) {
                let problem = format!("{path}.sni is set for {host} under ISTIO_MUTUAL");
                out.push(
                    if evidence { Issue::deny(path.clone(), problem) } else { Issue::warn(path.clone(), problem) }
                        .because("the remote east-west gateway routes failover traffic by the SNI pilot writes (outbound_.<port>_.<subset>_.<host>, AUTO_PASSTHROUGH); with another SNI it has no route and resets the connection")
                        .fix("remove tls.sni (ISTIO_MUTUAL sets the right one)"),
                );
            }
            if tls.is_some_and(|t| non_empty(t.field("subjectAltNames"))) {
                out.push(
                    Issue::warn(path.clone(), format!("{path}.subjectAltNames is set for {host} under ISTIO_MUTUAL"))
                        .because("the remote clusters' workloads must then present one of these names; one with another service account or trust domain fails the handshake, and failover with it")
                        .fix("remove tls.subjectAltNames, or list the remote workloads' identities too"),
                );
            }
            continue;
        }
        let issue = if evidence {
            Issue::deny(
                path.clone(),
                format!("{path}.mode is {mode} for {host}, which has remote gateway endpoints"),
            )
        } else {
            Issue::warn(
                path.clone(),
                format!("{path}.mode is {mode} for {host}, a failover host"),
            )
        };
        out.push(
            issue
                .because("traffic to the remote east-west gateways is sent without Istio mTLS and dropped")
                .fix(if cx.config.mesh.auto_mtls() {
                    "use tls.mode: ISTIO_MUTUAL, or remove tls to use auto mTLS"
                } else {
                    // buildUpstreamTLSSettings: without enableAutoMtls an unset mode is plaintext.
                    "use tls.mode: ISTIO_MUTUAL (the mesh config turns auto mTLS off, so removing tls leaves it plaintext)"
                }),
        );
    }
}

// === FG111 shadowed-destination-rule ===

/// FG111: two DestinationRules pilot merges, both with a top-level traffic policy.
pub static FG111: Rule = Rule {
    id: "FG111",
    name: "shadowed-destination-rule",
    kinds: &[Kind::DestinationRule],
    default: Mode::Deny,
    can_mutate: false,
    needs_world: true,
    guards_istiod: false,
    summary: "Another DestinationRule for the same host in the same namespace (same exportTo and \
              workload selector) that also sets a top-level trafficPolicy is denied.",
    istio: "pilot/pkg/model/destination_rule.go PushContext.mergeDestinationRule merges the rules \
            of one host in one namespace that share exportTo and workload selector: subsets are \
            concatenated, but only the oldest top-level trafficPolicy is kept. A second rule's \
            traffic policy (outlier detection and locality settings included) is silently \
            ignored; a second rule with subsets only merges fine.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  host: reviews   # bookinfo/reviews already sets a trafficPolicy for this host\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews   # one trafficPolicy per host, holding every setting\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n",
    check: check_fg111,
};

fn check_fg111(dr: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    if dr
        .path(&["spec", "trafficPolicy"])
        .is_none_or(Value::is_null)
    {
        return;
    }
    let others = policy_partners(dr, cx);
    if others.is_empty() {
        return;
    }
    let host = rule_host(dr, cx).unwrap_or_default();
    out.push(
        Issue::deny(
            "spec.trafficPolicy",
            format!("host {host} already has a trafficPolicy in DestinationRule {} of this namespace", others.join(", ")),
        )
        .because("Istio merges the rules and keeps only the oldest trafficPolicy, so one of them (outlier detection and locality settings included) is ignored")
        .fix("keep one top-level trafficPolicy per host; other rules may add subsets only"),
    );
}

// === FG112 subset-export-hides-from-gateway ===

/// FG112: subsets the east-west gateway cannot see.
pub static FG112: Rule = Rule {
    id: "FG112",
    name: "subset-export-hides-from-gateway",
    kinds: &[Kind::DestinationRule],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "A DestinationRule with subsets whose exportTo excludes the east-west gateway \
              namespaces is a warning, and so is a failover rule whose exportTo leaves callers in \
              other namespaces without it (v3).",
    istio: "A client failing over to a subset sends SNI outbound_.<port>_.<subset>_.<host> to the \
            remote east-west gateway, which routes it in AUTO_PASSTHROUGH mode to its own Envoy \
            cluster of that name. The gateway builds subset clusters only from DestinationRules \
            visible in its namespace (pilot/pkg/model/push_context.go destinationRule honours \
            exportTo), so with istio-system excluded it has no such cluster and the failover \
            connection is dropped.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  exportTo: [\".\"]\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n  subsets:\n  - {name: v1, labels: {version: v1}}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  exportTo: [\".\", istio-system]\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n  subsets:\n  - {name: v1, labels: {version: v1}}\n",
    check: check_fg112,
};

fn check_fg112(dr: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    if failover_host(dr, cx).is_none() {
        return;
    }
    let Some(export) = dr.path(&["spec", "exportTo"]).and_then(Value::as_array) else {
        return;
    };
    let export: Vec<&str> = export.iter().filter_map(Value::as_str).collect();
    if export.is_empty() || export.contains(&"*") {
        return;
    }
    let own = cx.subject.namespace.as_str();
    // Callers elsewhere: a client outside exportTo does not see this rule
    // (PushContext.destinationRule checks exportTo for rules of other namespaces), so it gets
    // the root namespace's rule, if any, else none: no outlier detection, no failover order.
    let carries_failover = levels(dr, cx).iter().any(|level| {
        level.get(dr).is_some_and(|p| {
            has(p, "outlierDetection") || p.path(&["loadBalancer", "localityLbSetting"]).is_some()
        })
    });
    if carries_failover {
        let seen_by: Vec<String> = export
            .iter()
            .map(|e| {
                if *e == "." {
                    own.to_owned()
                } else {
                    (*e).to_owned()
                }
            })
            .collect();
        out.push(
            Issue::warn("spec.exportTo", format!("exportTo limits this failover rule to namespace {}", seen_by.join(", ")))
                .because(format!("callers in every other namespace get the root namespace's rule for the host, if any, else none: no outlier detection and no failover order for them (the root namespace {} is searched, not this one)", cx.config.scope.root_namespace))
                .fix("export it to \"*\", or keep a rule exported to the callers' namespaces"),
        );
    }
    if crate::object::array_at(dr, &["spec", "subsets"]).is_empty() {
        return;
    }
    let hidden = super::gateway_namespaces_outside(&export, own, cx);
    if !hidden.is_empty() {
        out.push(
            Issue::warn("spec.exportTo", format!("subsets are not exported to the east-west gateway namespace {}", hidden.join(", ")))
                .because("the remote gateway has no cluster for subset traffic, so failover to a subset is dropped there")
                .fix(format!("add {} to exportTo", hidden.join(", "))),
        );
    }
}

// === FG113 destination-rule-outside-service-namespace ===

/// FG113: a rule only the clients of its own namespace see.
pub static FG113: Rule = Rule {
    id: "FG113",
    name: "destination-rule-outside-service-namespace",
    kinds: &[Kind::DestinationRule],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "A DestinationRule for a cluster-local service host kept outside that service's \
              namespace and the root namespace is a warning.",
    istio: "pilot/pkg/model/push_context.go PushContext.destinationRule looks a rule up in the \
            client's namespace, then the service's namespace, then the root namespace. A rule for \
            reviews.bookinfo.svc.cluster.local kept in default is seen by clients in default only: \
            every other client gets the service's own rule, or none, and so no outlier detection \
            and no failover.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: default}\nspec:\n  host: reviews.bookinfo.svc.cluster.local\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews.bookinfo.svc.cluster.local\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n",
    check: check_fg113,
};

fn check_fg113(dr: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    let Some(host) = rule_host(dr, cx) else {
        return;
    };
    let Some((service, namespace)) = cluster_local_service(host, &cx.config.cluster.cluster_domain)
    else {
        return;
    };
    let own = cx.subject.namespace.as_str();
    if own == namespace
        || own == cx.config.scope.root_namespace
        || dr.path(&["spec", "workloadSelector"]).is_some()
    {
        return;
    }
    // Clients elsewhere get the service namespace's rule when one exists (and is exported to
    // them), else the root namespace's (the model's lookup): say which, when the world shows it.
    let elsewhere = match super::world_destination_rules(cx, host) {
        Some(index) => {
            match index.for_other_namespaces(host, namespace) {
                Some(rule) if rule.namespace == namespace => {
                    format!("clients elsewhere use the rule in {namespace}, not this one")
                }
                Some(rule) => format!(
                    "clients elsewhere use the rule in the root namespace {}, not this one",
                    rule.namespace
                ),
                None => "clients elsewhere get no DestinationRule for it at all: no outlier detection, no failover".to_owned(),
            }
        }
        None => format!(
            "clients elsewhere use {namespace}'s or the root namespace's rule for it if one exists, else none (no outlier detection, no failover)"
        ),
    };
    out.push(
        Issue::warn(
            "metadata.namespace",
            format!("DestinationRule for {namespace}/{service} lives in namespace {own}"),
        )
        .because(format!("only clients in {own} see it; {elsewhere}"))
        .fix(format!(
            "move it to namespace {namespace} (or the root namespace {})",
            cx.config.scope.root_namespace
        )),
    );
}

// === FG114 host-names-nothing ===

/// FG114: a short host with a dot is taken as a full name and matches no Service.
pub static FG114: Rule = Rule {
    id: "FG114",
    name: "host-names-nothing",
    kinds: &[Kind::DestinationRule],
    default: Mode::Deny,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "A host written <service>.<namespace> (or <service>.<namespace>.svc) names no Service \
              (pilot takes a host with a dot as complete) and is denied, unless a ServiceEntry \
              declares exactly that host.",
    istio: "pilot/pkg/model/service.go ResolveShortnameToFQDN completes a host only when it has no \
            dot: reviews becomes reviews.<rule's namespace>.svc.cluster.local, but reviews.bookinfo \
            stays reviews.bookinfo, which no Kubernetes Service is called. The rule applies to \
            nothing: no outlier detection, no failover, and Istio's validation accepts it.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews.bookinfo\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews.bookinfo.svc.cluster.local\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n",
    check: check_fg114,
};

fn check_fg114(dr: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    let Some(host) = dr.path(&["spec", "host"]).and_then(Value::as_str) else {
        return;
    };
    let labels: Vec<&str> = host.split('.').collect();
    let (service, namespace) = match labels.as_slice() {
        [service, namespace] | [service, namespace, "svc"] => (*service, *namespace),
        _ => return,
    };
    if service.is_empty() || service.contains('*') || namespace.is_empty() {
        return;
    }
    // Only where the second label is a namespace: example.com is a real domain.
    let known_namespace = namespace == cx.subject.namespace
        || cx
            .world
            .is_some_and(|w| w.namespaces().iter().any(|n| n == namespace));
    if !known_namespace {
        return;
    }
    if cx
        .world
        .is_some_and(|w| !w.service_entries(host).is_empty())
    {
        return;
    }
    let full = crate::istio::service_host(service, namespace, &cx.config.cluster.cluster_domain);
    out.push(
        Issue::deny("spec.host", format!("host {host} names no Service"))
            .because("pilot completes only a host without a dot, so this rule applies to nothing: no outlier detection and no failover for the Service")
            .fix(format!("write host: {full} (or {service}, from namespace {namespace})")),
    );
}

// === FG116 locality-disabled-mesh-wide ===

/// FG116: the mesh config turns locality load balancing off where the rule does not set it.
pub static FG116: Rule = Rule {
    id: "FG116",
    name: "locality-disabled-mesh-wide",
    kinds: &[Kind::DestinationRule],
    default: Mode::Mutate,
    can_mutate: true,
    needs_world: false,
    guards_istiod: false,
    summary: "Where the mesh config sets localityLbSetting {enabled: false}, every policy level \
              of a failover-scope DestinationRule that resolves without a localityLbSetting of \
              its own gets loadBalancer.localityLbSetting {enabled: true}.",
    istio: "pilot/pkg/networking/core/loadbalancer/loadbalancer.go GetEffectiveLbSetting takes \
            the DestinationRule's localityLbSetting, else the Service's traffic distribution, \
            else the mesh config's localityLbSetting; with that set to {enabled: false} it \
            returns nil and ApplyLocalityLoadBalancer never runs: every endpoint, local and \
            remote, keeps priority 0 and nothing fails over, outlier detection or not. A \
            portLevelSettings entry (util.GetPortLevelTrafficPolicy) and a subset's port-level \
            entry (util.MergeSubsetTrafficPolicy) resolve without the top level's loadBalancer, \
            and a subset's own loadBalancer replaces the top level's, so each needs its own.",
    example_bad: "# mesh config: localityLbSetting: {enabled: false}\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n    loadBalancer:\n      localityLbSetting: {enabled: true}\n",
    check: check_fg116,
};

fn check_fg116(dr: &mut Value, cx: &Context<'_>, fix: bool, out: &mut Issues) {
    if !cx.config.mesh.locality_lb_disabled()
        || dr.field("spec").is_some_and(|s| !s.is_object())
        || dr
            .path(&["spec", "host"])
            .and_then(Value::as_str)
            .is_some_and(|h| h.contains('*'))
        || !in_failover_scope(dr, cx)
    {
        return;
    }
    let origin = cx.config.mesh.origin().unwrap_or("the mesh config");
    for &level in levels(dr, cx) {
        let policy = level.get(dr);
        // A subset without a loadBalancer of its own inherits the top level's.
        if level.kind == LevelKind::Subset && !policy.is_some_and(|p| has(p, "loadBalancer")) {
            continue;
        }
        if policy.is_some_and(|p| {
            !p.is_object() || p.path(&["loadBalancer", "localityLbSetting"]).is_some()
        }) {
            continue;
        }
        if policy
            .and_then(|p| p.field("loadBalancer"))
            .is_some_and(|lb| !lb.is_object())
        {
            continue;
        }
        let existed = policy.is_some();
        let had_lb = policy.is_some_and(|p| has(p, "loadBalancer"));
        let fixed = fix
            && policy_mut(dr, &level)
                .and_then(|p| {
                    p.entry("loadBalancer")
                        .or_insert_with(|| json!({}))
                        .as_object_mut()
                        .map(|lb| lb.insert("localityLbSetting".into(), json!({"enabled": true})))
                })
                .is_some();
        let wrote = fixed.then(|| match (existed, had_lb) {
            (false, _) => level.pointer(&[]),
            (true, false) => level.pointer(&["loadBalancer"]),
            (true, true) => level.pointer(&["loadBalancer", "localityLbSetting"]),
        });
        let path = level.path();
        out.push(
            Issue::fixable(
                path.clone(),
                format!("{path} leaves locality load balancing to the mesh config, which turns it off"),
                wrote,
            )
            .because(format!(
                "{origin} sets localityLbSetting.enabled: false, so pilot applies no locality priorities here and nothing fails over"
            ))
            .fix(format!(
                "set {path}.loadBalancer.localityLbSetting.enabled: true (failover-guard writes it)"
            )),
        );
    }
}

// === FG117 traffic-distribution-discarded ===

/// FG117: a DestinationRule's localityLbSetting replaces the Service's traffic distribution.
pub static FG117: Rule = Rule {
    id: "FG117",
    name: "traffic-distribution-discarded",
    kinds: &[Kind::DestinationRule],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: true,
    guards_istiod: false,
    summary: "A localityLbSetting without outlier detection beside it (or with enabled: false) in \
              a DestinationRule for a Service with a traffic distribution (spec.trafficDistribution, \
              or the traffic-distribution annotation on the Service or its Namespace) is a warning: \
              pilot uses the rule's setting and drops the Service's.",
    istio: "pilot/pkg/networking/core/loadbalancer/loadbalancer.go GetEffectiveLbSetting takes \
            the DestinationRule's localityLbSetting before the Service's traffic distribution \
            (model.GetTrafficDistribution). The distribution's forced failoverPriority \
            [network, region, zone], which fails over on endpoint health alone, is then gone: \
            the rule's setting applies instead, and orders failover only with outlier detection \
            (enabled: false turns locality off altogether).",
    example_bad: "# Service bookinfo/reviews has spec.trafficDistribution: PreferClose\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    loadBalancer:\n      localityLbSetting: {enabled: true}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    connectionPool: {tcp: {maxConnections: 100}}\n",
    check: check_fg117,
};

fn check_fg117(dr: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    use crate::istio::{TrafficDistribution, service_traffic_distribution};
    let (Some(world), Some(host)) = (cx.world, rule_host(dr, cx)) else {
        return;
    };
    let Some((name, namespace)) = cluster_local_service(host, &cx.config.cluster.cluster_domain)
    else {
        return;
    };
    let Some(service) = world.service(namespace, name) else {
        return;
    };
    let ns = world.namespace(namespace);
    let distribution =
        service_traffic_distribution(&service, ns.as_deref(), cx.config.istio.version);
    // Before sidecars honoured traffic distribution, there was nothing to discard.
    let sidecars_honour = cx
        .config
        .istio
        .version
        .has(crate::istio::version::Behaviour::SidecarTrafficDistribution);
    if distribution == TrafficDistribution::Any || !sidecars_honour {
        return;
    }
    let top_detects = Level::TOP
        .get(dr)
        .is_some_and(|p| has(p, "outlierDetection"));
    for &level in levels(dr, cx) {
        let Some(policy) = level.get(dr) else {
            continue;
        };
        if policy
            .path(&["loadBalancer", "localityLbSetting"])
            .is_none_or(Value::is_null)
        {
            continue;
        }
        // With outlier detection (a subset inherits the top level's) the rule's own setting
        // orders failover: a choice, not a loss.
        let detects =
            has(policy, "outlierDetection") || (level.kind == LevelKind::Subset && top_detects);
        if detects && !locality_disabled(policy) {
            continue;
        }
        let path = format!("{}.loadBalancer.localityLbSetting", level.path());
        out.push(
            Issue::warn(
                path.clone(),
                format!("{path} replaces the traffic distribution of Service {namespace}/{name}"),
            )
            .because("pilot uses the DestinationRule's locality setting first, so the Service's traffic distribution (failover on endpoint health) no longer applies; failover then needs outlier detection")
            .fix(format!("remove {path} to keep the Service's traffic distribution, or keep it with outlierDetection beside it")),
        );
    }
}

// === FG115 outlier-detection-enables-locality ===

/// FG115: outlier detection added for circuit breaking switches locality load balancing on.
pub static FG115: Rule = Rule {
    id: "FG115",
    name: "outlier-detection-enables-locality",
    kinds: &[Kind::DestinationRule],
    default: Mode::Off,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "Off unless configured (warn or deny): outside failover scope, outlierDetection \
              where no localityLbSetting applies switches the mesh default's locality load \
              balancing on, pinning traffic to the client's zone; it says so, with the setting \
              that keeps an even spread.",
    istio: "The mesh default localityLbSetting is {enabled: true} (pkg/config/mesh \
            DefaultMeshConfig), and pilot applies locality priorities wherever the cluster has \
            outlier detection (pilot/pkg/networking/core/loadbalancer/loadbalancer.go \
            LocalityLBSettings.ApplyToCluster: enableFailover is c.OutlierDetection != nil). Outlier detection added for circuit breaking therefore \
            also sends all traffic to the client's own zone while it has healthy endpoints \
            (istio/istio#23914, #28570, #39477; istio/api#3693). In failover scope that is the \
            point (FG101 adds it); elsewhere it is a surprise. It is off by default because \
            zone-local traffic is what many meshes want: turn it on where an even spread is \
            expected.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: payments, namespace: shop}\nspec:\n  host: payments\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: payments, namespace: shop}\nspec:\n  host: payments\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5}\n    loadBalancer:\n      localityLbSetting: {enabled: false}\n",
    check: check_fg115,
};

fn check_fg115(dr: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    // A mesh config that turns locality load balancing off mesh-wide leaves nothing for
    // outlier detection to switch on (GetEffectiveLbSetting returns nil).
    if cx.config.mesh.locality_lb_disabled() {
        return;
    }
    // With remote clusters, a host in failover scope wants locality load balancing.
    if !cx.config.remotes.is_empty() && in_failover_scope(dr, cx) {
        return;
    }
    let top_setting = Level::TOP
        .get(dr)
        .and_then(|p| p.path(&["loadBalancer", "localityLbSetting"]))
        .is_some();
    for &level in levels(dr, cx) {
        let Some(policy) = level.get(dr) else {
            continue;
        };
        if !has(policy, "outlierDetection") {
            continue;
        }
        // The setting that applies at this level: its own; a subset without its own
        // loadBalancer inherits the top level's (MergeTrafficPolicy); a port-level entry
        // inherits nothing.
        let own = policy
            .path(&["loadBalancer", "localityLbSetting"])
            .is_some();
        let inherited = level.kind == LevelKind::Subset
            && policy.field("loadBalancer").is_none()
            && top_setting;
        if own || inherited {
            continue;
        }
        let path = format!("{}.outlierDetection", level.path());
        out.push(
            Issue::warn(path.clone(), format!("{path} switches locality load balancing on"))
                .because("the mesh default enables it wherever outlier detection is set, so each client's traffic stays in its own zone while that zone has healthy endpoints")
                .fix(format!("set {}.loadBalancer.localityLbSetting: {{enabled: false}} to keep an even spread", level.path())),
        );
    }
}

// === FG405 headless-or-passthrough ===

/// FG405: locality settings where Envoy does no load balancing.
pub static FG405: Rule = Rule {
    id: "FG405",
    name: "headless-or-passthrough",
    kinds: &[Kind::DestinationRule],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: true,
    guards_istiod: false,
    summary: "Locality settings for a headless Service, a resolution NONE or DYNAMIC_DNS entry, or \
              a simple: PASSTHROUGH load balancer are a warning: they do nothing.",
    istio: "For a headless Service, an entry with resolution NONE and a PASSTHROUGH load balancer \
            pilot builds an ORIGINAL_DST cluster (pilot/pkg/networking/core/cluster_builder.go \
            buildCluster, convertResolution): the connection goes to the address the client asked \
            for, with no endpoints, no priorities and no failover; DYNAMIC_DNS resolves per \
            request. Outlier detection and localityLbSetting there configure nothing.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: db, namespace: data}\nspec:\n  host: db\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n    loadBalancer: {simple: PASSTHROUGH}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: db, namespace: data}\nspec:\n  host: db\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n    loadBalancer: {simple: ROUND_ROBIN}\n",
    check: check_fg405,
};

fn check_fg405(dr: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    let asks = levels(dr, cx).iter().any(|l| {
        l.get(dr).is_some_and(|p| {
            has(p, "outlierDetection") || p.path(&["loadBalancer", "localityLbSetting"]).is_some()
        })
    });
    if !asks {
        return;
    }
    for &level in levels(dr, cx) {
        if level
            .get(dr)
            .and_then(|p| p.path(&["loadBalancer", "simple"]))
            .and_then(Value::as_str)
            == Some("PASSTHROUGH")
        {
            out.push(
                Issue::warn(format!("{}.loadBalancer", level.path()), format!("{} uses simple: PASSTHROUGH", level.path()))
                    .because("Envoy connects to the address the client asked for: no endpoints, no priorities, no failover")
                    .fix("use ROUND_ROBIN or LEAST_REQUEST where failover is wanted"),
            );
        }
    }
    let (Some(world), Some(host)) = (cx.world, rule_host(dr, cx)) else {
        return;
    };
    let headless = cluster_local_service(host, &cx.config.cluster.cluster_domain)
        .and_then(|(svc, ns)| world.service(ns, svc))
        .is_some_and(|svc| {
            svc.path(&["spec", "clusterIP"]).and_then(Value::as_str) == Some("None")
        });
    let resolution = world.service_entries(host).iter().find_map(|se| {
        let r = se
            .path(&["spec", "resolution"])
            .and_then(Value::as_str)
            .unwrap_or("NONE");
        matches!(r, "NONE" | "DYNAMIC_DNS").then(|| r.to_owned())
    });
    let what = if headless {
        Some(format!("{host} is a headless Service"))
    } else {
        resolution.map(|r| format!("{host} is a ServiceEntry with resolution {r}"))
    };
    if let Some(what) = what {
        out.push(
            Issue::warn("spec.host", what)
                .because("pilot builds no load-balanced cluster for it, so outlier detection and locality settings do nothing")
                .fix("fail over a ClusterIP Service (or a STATIC entry) instead"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::Config,
        rules::testing::{run_rule, yaml},
    };

    fn dr(spec: &str) -> Value {
        yaml(&format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: r, namespace: ns}}\nspec:\n{}",
            spec.lines().map(|l| format!("  {l}\n")).collect::<String>()
        ))
    }

    fn paths(issues: &[Issue]) -> Vec<&str> {
        issues.iter().map(|i| i.path.as_ref()).collect()
    }

    /// FG110's remedy follows the mesh config: "remove tls" means auto mTLS only where the
    /// mesh has it on (buildUpstreamTLSSettings leaves an unset mode plaintext otherwise).
    #[test]
    fn fg110_remedy_follows_auto_mtls() {
        let rule = dr("host: reviews\ntrafficPolicy: {tls: {mode: DISABLE}}");
        let (_, on) = run_rule(&FG110, &Config::example(), None, &rule, false);
        assert!(
            on[0].remedy.contains("remove tls to use auto mTLS"),
            "{on:?}"
        );
        let off = Config::example().with_mesh(
            crate::istio::mesh::MeshConfig::parse("enableAutoMtls: false", "m").unwrap(),
        );
        let (_, off) = run_rule(&FG110, &off, None, &rule, false);
        assert!(off[0].remedy.contains("turns auto mTLS off"), "{off:?}");
        assert!(!off[0].remedy.contains("remove tls to use"), "{off:?}");
    }

    /// FG113 says what clients elsewhere really get: the service namespace's rule where one
    /// exists, the root namespace's after it, else nothing.
    #[test]
    fn fg113_names_the_rule_clients_elsewhere_use() {
        let elsewhere = yaml(
            "{apiVersion: networking.istio.io/v1, kind: DestinationRule, metadata: {name: reviews, namespace: default}, spec: {host: reviews.bookinfo.svc.cluster.local, trafficPolicy: {outlierDetection: {}}}}",
        );
        let in_namespace = |ns: &str| {
            yaml(&format!(
                "{{apiVersion: networking.istio.io/v1, kind: DestinationRule, metadata: {{name: reviews, namespace: {ns}}}, spec: {{host: reviews.bookinfo.svc.cluster.local}}}}"
            ))
        };
        let config = Config::example();
        let consequence = |world: &[Value]| {
            let world = crate::world::ManifestWorld::new(world, "default", "svc.cluster.local");
            let (_, issues) = run_rule(&FG113, &config, Some(&world), &elsewhere, false);
            assert_eq!(issues.len(), 1);
            issues[0].consequence.to_string()
        };
        assert!(consequence(&[in_namespace("bookinfo")]).contains("use the rule in bookinfo"));
        assert!(
            consequence(&[in_namespace("istio-system")])
                .contains("use the rule in the root namespace istio-system")
        );
        assert!(
            consequence(&[yaml(
                "{apiVersion: v1, kind: Namespace, metadata: {name: x}}"
            )])
            .contains("no DestinationRule for it at all")
        );
        let (_, issues) = run_rule(&FG113, &config, None, &elsewhere, false);
        assert!(issues[0].consequence.contains("if one exists"));
    }

    /// FG109's consequence is about degraded priorities together, not any ejection.
    #[test]
    fn fg109_says_failover_to_a_healthy_remote_is_unaffected() {
        let (_, issues) = run_rule(
            &FG109,
            &Config::example(),
            None,
            &dr(
                "host: reviews\ntrafficPolicy: {outlierDetection: {consecutive5xxErrors: 5, minHealthPercent: 50}}",
            ),
            false,
        );
        assert_eq!(issues.len(), 1);
        assert!(issues[0].consequence.contains(
            "while a healthy remote priority can take the traffic, failover is unaffected"
        ));
    }

    #[test]
    fn fg101_injects_at_every_level_that_resolves_alone() {
        let config = Config::example();
        let object = dr("host: reviews
trafficPolicy:
  portLevelSettings:
  - port: {number: 80}
  - port: {number: 81}
    outlierDetection: {}
subsets:
- name: v1
  labels: {version: v1}
  trafficPolicy:
    portLevelSettings:
    - port: {number: 80}
- name: v2
  labels: {version: v2}
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 1}}}
");
        let (fixed, issues) = run_rule(&FG101, &config, None, &object, true);
        assert_eq!(
            paths(&issues),
            [
                "spec.trafficPolicy",
                "spec.trafficPolicy.portLevelSettings[0]",
                "spec.subsets[0].trafficPolicy.portLevelSettings[0]"
            ]
        );
        let injected = config.outlier_detection.to_json();
        assert_eq!(fixed["spec"]["trafficPolicy"]["outlierDetection"], injected);
        assert_eq!(
            fixed["spec"]["trafficPolicy"]["portLevelSettings"][0]["outlierDetection"],
            injected
        );
        assert_eq!(
            fixed["spec"]["trafficPolicy"]["portLevelSettings"][1]["outlierDetection"],
            json!({})
        );
        assert_eq!(
            fixed["spec"]["subsets"][0]["trafficPolicy"]["portLevelSettings"][0]["outlierDetection"],
            injected
        );
        assert!(
            fixed["spec"]["subsets"][1]["trafficPolicy"]
                .field("outlierDetection")
                .is_none()
        );
        let (_, again) = run_rule(&FG101, &config, None, &fixed, true);
        assert!(again.is_empty(), "second run found {again:?}");
    }

    #[test]
    fn fg101_creates_traffic_policy_when_absent() {
        let (fixed, issues) =
            run_rule(&FG101, &Config::example(), None, &dr("host: reviews"), true);
        assert_eq!(issues.len(), 1);
        assert!(issues[0].fixed());
        assert_eq!(
            fixed["spec"]["trafficPolicy"]["outlierDetection"]["maxEjectionPercent"],
            100
        );
    }

    #[test]
    fn fg101_respects_disabled_locality_and_existing_outlier_detection() {
        let config = Config::example();
        for spec in [
            "host: a\ntrafficPolicy:\n  outlierDetection: {}",
            "host: a\ntrafficPolicy:\n  loadBalancer: {localityLbSetting: {enabled: false}}",
        ] {
            let (_, issues) = run_rule(&FG101, &config, None, &dr(spec), true);
            assert!(issues.is_empty(), "{spec}: {issues:?}");
        }
        // A port-level entry replaces the whole policy: the top level's `enabled: false`
        // does not reach it.
        let (_, issues) = run_rule(
            &FG101,
            &config,
            None,
            &dr(
                "host: a\ntrafficPolicy:\n  loadBalancer: {localityLbSetting: {enabled: false}}\n  portLevelSettings:\n  - port: {number: 80}",
            ),
            false,
        );
        assert_eq!(paths(&issues), ["spec.trafficPolicy.portLevelSettings[0]"]);
        assert!(!issues[0].fixed());
    }

    #[test]
    fn fg101_ignores_wrong_shapes() {
        let object = yaml(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec: nonsense",
        );
        let (_, issues) = run_rule(&FG101, &Config::example(), None, &object, true);
        assert!(issues.is_empty());
    }

    #[test]
    fn fg102_sets_100_and_warns_on_low_values() {
        let config = Config::example();
        let object = dr("host: a
trafficPolicy:
  outlierDetection: {consecutive5xxErrors: 3}
subsets:
- name: v1
  trafficPolicy:
    outlierDetection: {maxEjectionPercent: 50}
");
        let (fixed, issues) = run_rule(&FG102, &config, None, &object, true);
        assert_eq!(issues.len(), 2);
        assert!(issues[0].fixed());
        assert_eq!(
            fixed["spec"]["trafficPolicy"]["outlierDetection"]["maxEjectionPercent"],
            100
        );
        assert_eq!(issues[1].severity, crate::rules::Severity::Warn);
        assert!(issues[1].problem.contains("is 50"));
        let (_, none) = run_rule(
            &FG102,
            &config,
            None,
            &dr("host: a\ntrafficPolicy:\n  outlierDetection: {maxEjectionPercent: 100}"),
            true,
        );
        assert!(none.is_empty());
    }

    #[test]
    fn fg103_denies_inert_and_rewrites_deprecated() {
        let config = Config::example();
        let inert = dr("host: a\ntrafficPolicy:\n  outlierDetection: {consecutive5xxErrors: 0}");
        let (_, issues) = run_rule(&FG103, &config, None, &inert, true);
        assert_eq!(issues.len(), 1);
        assert!(!issues[0].fixable);
        assert!(issues[0].problem.contains("can never eject"));

        for alive in [
            "host: a\ntrafficPolicy:\n  outlierDetection: {consecutive5xxErrors: 0, consecutiveGatewayErrors: 3}",
            "host: a\ntrafficPolicy:\n  outlierDetection: {consecutive5xxErrors: 0, splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 2}",
            "host: a\ntrafficPolicy:\n  outlierDetection: {consecutive5xxErrors: 0, splitExternalLocalOriginErrors: true}",
            "host: a\ntrafficPolicy:\n  outlierDetection: {}",
        ] {
            let (_, issues) = run_rule(&FG103, &config, None, &dr(alive), true);
            assert!(issues.is_empty(), "{alive}: {issues:?}");
        }

        let deprecated = dr("host: a\ntrafficPolicy:\n  outlierDetection: {consecutiveErrors: 7}");
        let (fixed, issues) = run_rule(&FG103, &config, None, &deprecated, true);
        assert_eq!(issues.len(), 1);
        assert!(issues[0].fixed());
        assert_eq!(
            fixed["spec"]["trafficPolicy"]["outlierDetection"],
            json!({"consecutive5xxErrors": 7})
        );

        // consecutiveErrors: 0 rewritten is inert, and says so.
        let zero = dr("host: a\ntrafficPolicy:\n  outlierDetection: {consecutiveErrors: 0}");
        let (_, issues) = run_rule(&FG103, &config, None, &zero, true);
        assert_eq!(issues.len(), 2);
    }

    #[test]
    fn fg106_remedy_is_accepted_by_fg106() {
        // Follow the advice literally: add each named locality to `to` with weight 1.
        let config = Config::example();
        let object = dr("host: r
trafficPolicy:
  loadBalancer:
    localityLbSetting:
      distribute:
      - from: europe-west1/*
        to: {\"europe-west1/*\": 100}
");
        let (_, issues) = run_rule(&FG106, &config, None, &object, false);
        assert_eq!(issues.len(), 1, "{issues:?}");
        let remedy = &issues[0].remedy;
        assert!(
            !remedy.contains('"'),
            "suggests a key with quotes: {remedy}"
        );
        let missing = remedy
            .trim_start_matches("add ")
            .split(" to to")
            .next()
            .unwrap_or("");
        let mut fixed = object.clone();
        for key in missing.split(", ") {
            fixed["spec"]["trafficPolicy"]["loadBalancer"]["localityLbSetting"]["distribute"][0]
                ["to"][key] = json!(1);
        }
        let (_, again) = run_rule(&FG106, &config, None, &fixed, false);
        assert!(
            again.is_empty(),
            "following the remedy {remedy:?} still fails: {again:?}"
        );
    }
}
