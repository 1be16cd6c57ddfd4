//! AuthorizationPolicy rules (FG3xx).
//!
//! The `*.svc.cluster.local` east-west gateway lets every workload of every cluster that shares
//! the root CA reach every service. Failover needs that reachability, but only for the callers
//! that would have called the service locally.

use serde_json::{Value, json};

use super::{Context, Issue, Issues, Rule, pointer};
use crate::{
    config::Mode,
    object::{Field as _, Kind, array_at},
};

fn action(ap: &Value) -> &str {
    ap.path(&["spec", "action"])
        .and_then(Value::as_str)
        .unwrap_or("ALLOW")
}

fn has_target_ref(ap: &Value) -> bool {
    ap.path(&["spec", "targetRef"]).is_some() || ap.path(&["spec", "targetRefs"]).is_some()
}

/// The sources FG301 injects: the policy's own namespace in every configured trust domain,
/// and `authorization.defaultSources` (the gateway namespaces when that is empty).
pub fn default_sources(cx: &Context<'_>) -> Value {
    let principals: Vec<String> = cx
        .config
        .topology
        .trust_domains
        .iter()
        .map(|td| format!("{td}/ns/{}/sa/*", cx.subject.namespace))
        .collect();
    let mut sources = vec![json!({"source": {"principals": principals}})];
    let configured = &cx.config.authorization.default_sources;
    if !configured.is_empty() {
        sources.extend(configured.iter().map(|s| json!({"source": s})));
    } else if !cx.config.scope.gateway_namespaces.is_empty() {
        sources.push(json!({"source": {"namespaces": cx.config.scope.gateway_namespaces}}));
    }
    Value::Array(sources)
}

// === FG301 cross-cluster-default-source ===

/// FG301: an ALLOW rule without `from` admits every workload of every cluster.
pub static FG301: Rule = Rule {
    id: "FG301",
    name: "cross-cluster-default-source",
    kinds: &[Kind::AuthorizationPolicy],
    default: Mode::Warn,
    can_mutate: true,
    needs_world: false,
    guards_istiod: false,
    summary: "In failover scope, an ALLOW rule with no from is a warning naming the remote callers \
              it admits; configured to mutate, it gets the default sources.",
    istio: "An ALLOW rule without from matches every authenticated caller (pilot/pkg/security/\
            authz/builder: a rule with no from adds no principal matcher). Behind a \
            *.svc.cluster.local east-west gateway that is every workload of every cluster sharing \
            the root CA. That is not a failover breaker (the same namespace in another cluster is \
            the same caller, by trust domain and service account), and narrowing the rule changes \
            who may call: so failover-guard warns, and adds sources only when FG301 is configured \
            to mutate (the policy's namespace in every configured trust domain, plus \
            authorization.defaultSources or the gateway namespaces).",
    example_bad: "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: reviews-get, namespace: bookinfo}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  action: ALLOW\n  rules:\n  - to: [{operation: {methods: [GET]}}]\n",
    example_fixed: "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: reviews-get, namespace: bookinfo}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  action: ALLOW\n  rules:\n  - to: [{operation: {methods: [GET]}}]\n    from:\n    - source: {principals: [cluster.local/ns/bookinfo/sa/*]}\n    - source: {namespaces: [istio-system]}\n",
    check: check_fg301,
};

fn check_fg301(ap: &mut Value, cx: &Context<'_>, fix: bool, out: &mut Issues) {
    let ns = &cx.subject.namespace;
    if !cx.config.in_failover_scope(ns)
        || cx.config.scope.gateway_namespaces.contains(ns)
        || action(ap) != "ALLOW"
        || has_target_ref(ap)
    {
        return;
    }
    let open: Vec<usize> = array_at(ap, &["spec", "rules"])
        .iter()
        .enumerate()
        .filter(|(_, rule)| rule.is_object() && array_at(rule, &["from"]).is_empty())
        .map(|(i, _)| i)
        .collect();
    let remotes: Vec<&str> = cx.config.remotes.iter().map(|r| r.name.as_str()).collect();
    let domains: Vec<&str> = cx
        .config
        .topology
        .trust_domains
        .iter()
        .map(String::as_str)
        .collect();
    for i in open {
        let sources = default_sources(cx);
        let fixed = fix
            && ap
                .field_mut("spec")
                .and_then(|spec| spec.field_mut("rules"))
                .and_then(|rules| rules.get_mut(i))
                .and_then(Value::as_object_mut)
                .map(|rule| rule.insert("from".into(), sources))
                .is_some();
        let wrote = fixed.then(|| pointer(&["spec", "rules", &i.to_string(), "from"]));
        let mut issue = Issue::fixable(
            format!("spec.rules[{i}]"),
            format!(
                "ALLOW rule {i} has no from: it admits every workload of {} (trust domains {})",
                remotes.join(", "),
                domains.join(", ")
            ),
            wrote,
        )
        .because(
            "through the east-west gateway every cluster sharing the root CA reaches this workload",
        )
        .fix(format!(
            "add from sources, e.g. principals */ns/{ns}/sa/* of the configured trust domains"
        ));
        issue.severity = super::Severity::Warn;
        out.push(issue);
    }
}

// === FG302 principal-trust-domain ===

/// FG302: principals of unknown trust domains never match remote callers.
pub static FG302: Rule = Rule {
    id: "FG302",
    name: "principal-trust-domain",
    kinds: &[Kind::AuthorizationPolicy],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "A principal whose trust domain is neither local, an alias, nor a configured remote \
              trust domain, or one that only the local trust domain and its aliases match while a \
              remote cluster has another one, is a warning.",
    istio: "pilot/pkg/security/trustdomain/bundle.go Bundle.ReplaceTrustDomainAliases expands a \
            principal of cluster.local, the local trust domain or an alias to the local trust \
            domain and its aliases only; any other trust domain is kept as written. So a principal \
            of an unknown trust domain matches nobody, and a principal of the local one never \
            matches the callers of a remote cluster whose trust domain is not an alias: when \
            traffic fails over to this cluster, those callers are denied.",
    example_bad: "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  rules:\n  - from: [{source: {principals: [cluster-b.example/ns/bookinfo/sa/productpage]}}]\n",
    example_fixed: "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  rules:\n  - from: [{source: {principals: [cluster.local/ns/bookinfo/sa/productpage]}}]\n",
    check: check_fg302,
};

/// The trust domain of a principal (`td/ns/x/sa/y`).
fn trust_domain(principal: &str) -> Option<&str> {
    principal
        .split_once("/ns/")
        .or_else(|| principal.split_once('/'))
        .map(|(domain, _)| domain)
}

fn check_fg302(ap: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    let known = &cx.config.topology.trust_domains;
    let cluster = &cx.config.cluster;
    // What ReplaceTrustDomainAliases expands local principals to.
    let bundle: Vec<&str> = std::iter::once(cluster.trust_domain.as_str())
        .chain(cluster.trust_domain_aliases.iter().map(String::as_str))
        .collect();
    let uncovered: Vec<(&str, &str)> = cx
        .config
        .remotes
        .iter()
        .filter(|r| !bundle.contains(&r.trust_domain.as_str()))
        .map(|r| (r.name.as_str(), r.trust_domain.as_str()))
        .collect();
    for (i, rule) in array_at(ap, &["spec", "rules"]).iter().enumerate() {
        for (j, from) in array_at(rule, &["from"]).iter().enumerate() {
            // Only principals deny remote callers; notPrincipals with a foreign trust domain is
            // the opposite problem (an exclusion that never excludes).
            let principals: Vec<&str> = array_at(from, &["source", "principals"])
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let at = format!("spec.rules[{i}].from[{j}].source.principals");
            for principal in &principals {
                let Some(domain) = trust_domain(principal) else {
                    continue;
                };
                if domain.contains('*') || domain.is_empty() {
                    continue;
                }
                if !known.contains(domain) && domain != "cluster.local" {
                    out.push(
                        Issue::warn(at.clone(), format!("principal {principal:?} is of trust domain {domain:?}, which is not configured"))
                            .because("it never matches, so callers from the remote clusters are denied")
                            .fix("use a configured trust domain (or add it to trustDomainAliases / remotes)"),
                    );
                    continue;
                }
                if !(bundle.contains(&domain) || domain == "cluster.local") {
                    continue;
                }
                let rest = &principal[domain.len()..];
                let missing: Vec<String> = uncovered
                    .iter()
                    .filter(|(_, td)| !principals.iter().any(|p| *p == format!("{td}{rest}")))
                    .map(|(name, td)| format!("{name} ({td})"))
                    .collect();
                if !missing.is_empty() {
                    out.push(
                        Issue::warn(at.clone(), format!("principal {principal:?} matches only trust domains {}, not {}", bundle.join(", "), missing.join(", ")))
                            .because("Istio expands it to the local trust domain and its aliases, so the callers of those clusters are denied after failover")
                            .fix("add the remote trust domains to the mesh's trustDomainAliases, or list their principals too"),
                    );
                }
            }
        }
    }
}

// === FG303 allow-nothing-in-failover-scope ===

/// FG303: allow-nothing also blocks failover traffic.
pub static FG303: Rule = Rule {
    id: "FG303",
    name: "allow-nothing-in-failover-scope",
    kinds: &[Kind::AuthorizationPolicy],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "An ALLOW policy with no rules (allow-nothing) in failover scope is a warning.",
    istio: "An ALLOW policy without rules selects workloads but allows nothing \
            (pilot/pkg/security/authz/builder: an ALLOW RBAC filter with no policies denies every \
            request). Failover traffic from remote clusters arrives at the same workloads and is \
            denied as well.",
    example_bad: "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow-nothing, namespace: bookinfo}\nspec: {}\n",
    example_fixed: "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow-nothing, namespace: bookinfo}\nspec: {}\n# plus ALLOW policies for the callers that need the services, local and remote\n",
    check: check_fg303,
};

fn check_fg303(ap: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    if cx.config.in_failover_scope(&cx.subject.namespace)
        && action(ap) == "ALLOW"
        && !has_target_ref(ap)
        && array_at(ap, &["spec", "rules"]).is_empty()
    {
        out.push(
            Issue::warn("spec", "ALLOW policy with no rules denies every request")
                .because("failover traffic from remote clusters is denied too")
                .fix(
                    "pair it with ALLOW policies that admit the callers, remote clusters' included",
                ),
        );
    }
}

// === FG304 target-ref-on-sidecar ===

/// FG304: sidecars ignore targetRef policies.
pub static FG304: Rule = Rule {
    id: "FG304",
    name: "target-ref-on-sidecar",
    kinds: &[Kind::AuthorizationPolicy],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "A targetRef/targetRefs policy is a warning: sidecars ignore it.",
    istio: "Policies with targetRef or targetRefs attach to Gateways, waypoints and Services seen by \
            waypoints (pilot/pkg/model/policyattachment.go GetTargetRefs); a sidecar selects \
            policies by workload selector only, so it ignores them: the policy does nothing for \
            sidecar-served failover traffic.",
    example_bad: "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  targetRefs: [{kind: Service, group: \"\", name: reviews}]\n  rules:\n  - from: [{source: {principals: [cluster.local/ns/bookinfo/sa/productpage]}}]\n",
    example_fixed: "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  rules:\n  - from: [{source: {principals: [cluster.local/ns/bookinfo/sa/productpage]}}]\n",
    check: check_fg304,
};

fn check_fg304(ap: &mut Value, _cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    if has_target_ref(ap) {
        out.push(
            Issue::warn("spec.targetRefs", "policy uses targetRef/targetRefs")
                .because("sidecars ignore it; it applies only to waypoints and gateways")
                .fix("use selector for sidecar workloads"),
        );
    }
}
