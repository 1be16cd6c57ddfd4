//! DestinationRule rules (FG1xx).
//!
//! Istio resolves a traffic policy per subset and port: a `portLevelSettings` entry replaces
//! the whole policy for its port (nothing is inherited), a subset's fields override the top
//! level's, and a subset's matching port-level entry wipes what the subset inherited. Locality
//! failover is ordered only where the resolved policy has `outlierDetection`. So the rules
//! below walk every *policy level*, not just `spec.trafficPolicy`.

use serde_json::{Map, Value, json};

use super::{Context, Issue, Rule};
use crate::{
    config::Mode,
    object::{Kind, as_int},
};

/// Where a traffic policy resolves on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LevelKind {
    /// `spec.trafficPolicy`
    Top,
    /// `spec.trafficPolicy.portLevelSettings[i]`
    TopPort,
    /// `spec.subsets[j].trafficPolicy`
    Subset,
    /// `spec.subsets[j].trafficPolicy.portLevelSettings[i]`
    SubsetPort,
}

/// One policy level: its JSON pointer (for access) and its dotted path (for messages).
#[derive(Debug, Clone)]
struct Level {
    kind: LevelKind,
    pointer: String,
    path: String,
}

/// Every policy level present in the object; the top level is listed even when absent.
fn levels(dr: &Value) -> Vec<Level> {
    let mut out = vec![Level {
        kind: LevelKind::Top,
        pointer: "/spec/trafficPolicy".into(),
        path: "spec.trafficPolicy".into(),
    }];
    let port_levels = |out: &mut Vec<Level>, policy: &Value, kind, pointer: &str, path: &str| {
        if let Some(ports) = policy.get("portLevelSettings").and_then(Value::as_array) {
            for i in 0..ports.len() {
                out.push(Level {
                    kind,
                    pointer: format!("{pointer}/portLevelSettings/{i}"),
                    path: format!("{path}.portLevelSettings[{i}]"),
                });
            }
        }
    };
    if let Some(top) = dr.pointer("/spec/trafficPolicy") {
        port_levels(
            &mut out,
            top,
            LevelKind::TopPort,
            "/spec/trafficPolicy",
            "spec.trafficPolicy",
        );
    }
    if let Some(subsets) = dr.pointer("/spec/subsets").and_then(Value::as_array) {
        for (j, subset) in subsets.iter().enumerate() {
            if let Some(policy) = subset.get("trafficPolicy").filter(|p| p.is_object()) {
                let pointer = format!("/spec/subsets/{j}/trafficPolicy");
                let path = format!("spec.subsets[{j}].trafficPolicy");
                out.push(Level {
                    kind: LevelKind::Subset,
                    pointer: pointer.clone(),
                    path: path.clone(),
                });
                port_levels(&mut out, policy, LevelKind::SubsetPort, &pointer, &path);
            }
        }
    }
    out
}

/// Whether a policy turns locality load balancing off (`enabled: false`).
fn locality_disabled(policy: &Value) -> bool {
    policy
        .pointer("/loadBalancer/localityLbSetting/enabled")
        .and_then(Value::as_bool)
        == Some(false)
}

/// A present, non-null field.
fn has(value: &Value, key: &str) -> bool {
    value.get(key).is_some_and(|v| !v.is_null())
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
    dr.pointer_mut(&level.pointer)?.as_object_mut()
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
    summary: "A policy level without outlierDetection gets the configured default outlier detection.",
    istio: "Pilot orders endpoints by locality only when the policy that resolves for that subset \
            and port has a non-nil outlierDetection ({} counts). Without it every endpoint gets \
            priority 0: no locality preference at all, traffic is sprayed across clusters, and \
            nothing fails over. portLevelSettings entries replace the whole policy for their \
            port, so each needs its own.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews.bookinfo.svc.cluster.local\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 9080}\n      connectionPool: {http: {http1MaxPendingRequests: 100}}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews.bookinfo.svc.cluster.local\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, consecutiveGatewayErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 100}\n    portLevelSettings:\n    - port: {number: 9080}\n      connectionPool: {http: {http1MaxPendingRequests: 100}}\n      outlierDetection: {consecutive5xxErrors: 5, consecutiveGatewayErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 100}\n",
    check: check_fg101,
};

fn check_fg101(dr: &mut Value, cx: &Context<'_>, fix: bool, out: &mut Vec<Issue>) {
    if dr.get("spec").is_some_and(|s| !s.is_object()) {
        return;
    }
    for level in levels(dr) {
        if level.kind == LevelKind::Subset {
            // A subset policy without outlierDetection inherits the top level's.
            continue;
        }
        let policy = dr.pointer(&level.pointer);
        if policy
            .is_some_and(|p| !p.is_object() || has(p, "outlierDetection") || locality_disabled(p))
        {
            continue;
        }
        let fixed = fix
            && policy_mut(dr, &level)
                .map(|p| {
                    p.insert(
                        "outlierDetection".into(),
                        cx.config.outlier_detection.to_json(),
                    )
                })
                .is_some();
        out.push(
            Issue::fixable(
                &level.path,
                format!("{} has no outlierDetection", level.path),
                fixed,
            )
            .because(
                "Istio orders locality failover only where outlierDetection is set, so traffic \
                     is spread over every cluster and never fails over",
            )
            .fix(format!(
                "add outlierDetection to {} (failover-guard injects the configured default)",
                level.path
            )),
        );
    }
}

/// Every `outlierDetection` object in the rule, with its level's path.
fn outlier_detections(dr: &Value) -> Vec<(String, String)> {
    levels(dr)
        .into_iter()
        .filter(|l| {
            dr.pointer(&l.pointer)
                .and_then(|p| p.get("outlierDetection"))
                .is_some_and(Value::is_object)
        })
        .map(|l| {
            (
                format!("{}/outlierDetection", l.pointer),
                format!("{}.outlierDetection", l.path),
            )
        })
        .collect()
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
    summary: "outlierDetection without maxEjectionPercent gets 100; an explicit value below 100 is a warning.",
    istio: "maxEjectionPercent defaults to 10 % of the whole cluster and modern Envoy enforces it \
            strictly: with fewer than 10 endpoints no host may ever be ejected, so the local \
            endpoints are never emptied and traffic never fails over to the remote cluster.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 3}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 3, maxEjectionPercent: 100}\n",
    check: check_fg102,
};

fn check_fg102(dr: &mut Value, _cx: &Context<'_>, fix: bool, out: &mut Vec<Issue>) {
    for (pointer, path) in outlier_detections(dr) {
        let Some(od) = dr.pointer_mut(&pointer).and_then(Value::as_object_mut) else {
            continue;
        };
        match od.get("maxEjectionPercent") {
            None | Some(Value::Null) => {
                if fix {
                    od.insert("maxEjectionPercent".into(), json!(100));
                }
                out.push(
                    Issue::fixable(&path, format!("{path} has no maxEjectionPercent"), fix)
                        .because(
                            "Envoy then ejects at most 10% of endpoints, so with fewer than 10 \
                             endpoints none is ever ejected and traffic never fails over",
                        )
                        .fix(format!("set {path}.maxEjectionPercent: 100")),
                );
            }
            Some(value) => {
                if let Some(percent) = as_int(value).filter(|p| *p < 100) {
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
    summary: "Outlier detection that can never eject is denied; the deprecated consecutiveErrors is \
              rewritten to consecutive5xxErrors.",
    istio: "consecutive5xxErrors: 0 with no consecutiveGatewayErrors and no local-origin errors \
            disables every ejection: locality failover is configured but never triggers. Pilot \
            never reads the deprecated consecutiveErrors at all, so its value is silently ignored.",
    example_bad: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 0, maxEjectionPercent: 100}\n",
    example_fixed: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n",
    check: check_fg103,
};

fn check_fg103(dr: &mut Value, _cx: &Context<'_>, fix: bool, out: &mut Vec<Issue>) {
    for (pointer, path) in outlier_detections(dr) {
        let Some(od) = dr.pointer_mut(&pointer).and_then(Value::as_object_mut) else {
            continue;
        };
        if has_value(od, "consecutiveErrors") && !has_value(od, "consecutive5xxErrors") {
            if let Some(value) = fix.then(|| od.remove("consecutiveErrors")).flatten() {
                od.insert("consecutive5xxErrors".into(), value);
            }
            out.push(
                Issue::fixable(
                    &path,
                    format!("{path} uses the deprecated consecutiveErrors"),
                    fix,
                )
                .because("pilot never reads it, so Envoy's default of 5 consecutive 5xx applies")
                .fix("rename consecutiveErrors to consecutive5xxErrors"),
            );
        }
        let count = |key: &str| od.get(key).and_then(as_int);
        let local_origin = od
            .get("splitExternalLocalOriginErrors")
            .and_then(Value::as_bool)
            == Some(true)
            && count("consecutiveLocalOriginFailures").unwrap_or(0) > 0;
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
    map.get(key).is_some_and(|v| !v.is_null())
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
        issues.iter().map(|i| i.path.as_str()).collect()
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
                .get("outlierDetection")
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
        assert!(issues[0].fixed);
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
        assert!(!issues[0].fixed);
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
        assert!(issues[0].fixed);
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
            "host: a\ntrafficPolicy:\n  outlierDetection: {}",
        ] {
            let (_, issues) = run_rule(&FG103, &config, None, &dr(alive), true);
            assert!(issues.is_empty(), "{alive}: {issues:?}");
        }

        let deprecated = dr("host: a\ntrafficPolicy:\n  outlierDetection: {consecutiveErrors: 7}");
        let (fixed, issues) = run_rule(&FG103, &config, None, &deprecated, true);
        assert_eq!(issues.len(), 1);
        assert!(issues[0].fixed);
        assert_eq!(
            fixed["spec"]["trafficPolicy"]["outlierDetection"],
            json!({"consecutive5xxErrors": 7})
        );

        // consecutiveErrors: 0 rewritten is inert, and says so.
        let zero = dr("host: a\ntrafficPolicy:\n  outlierDetection: {consecutiveErrors: 0}");
        let (_, issues) = run_rule(&FG103, &config, None, &zero, true);
        assert_eq!(issues.len(), 2);
    }
}
