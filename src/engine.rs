//! The rule engine: object + config + world in, findings and the fixed object out. No I/O.
//!
//! The mutating pass applies every rule's fix in rule-ID order; the validating pass re-runs
//! every rule on the final object without fixing, and a fixable finding that is still there
//! (the mutating webhook was off, or another mutator undid the fix) becomes a denial.

use std::{collections::BTreeSet, sync::Arc};

use json_patch::{AddOperation, Patch, PatchOperation, ReplaceOperation, jsonptr::PointerBuf};
use serde::Serialize;
use serde_json::Value;

pub use crate::object::truncate;
use crate::{
    config::{Config, ConfigError, Mode},
    object::{self, Kind, Subject},
    rules::{Context, Issue, Issues, RULES, Severity, Text},
    world::World,
};

/// Admission warnings are limited to this many characters (Kubernetes truncates longer ones).
pub const WARNING_LIMIT: usize = 120;

/// Parses and validates a configuration, including the rule IDs and modes under `rules`
/// against the catalog; every loader (server, CLI, offline) goes through here.
pub fn parse_config(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let config = Config::from_yaml(text, origin)?;
    let problems = crate::rules::mode_problems(&config);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid {
            origin: origin.to_owned(),
            problems,
        })
    }
}

/// Which pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Fix what can be fixed.
    Mutate,
    /// Judge the object as it is.
    Validate,
}

/// What a finding does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Mutate,
    Deny,
    Warn,
}

impl Action {
    /// Every action, in declaration order (`action as usize` is its index).
    pub const ALL: [Action; 3] = [Action::Mutate, Action::Deny, Action::Warn];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Mutate => "mutate",
            Action::Deny => "deny",
            Action::Warn => "warn",
        }
    }
}

/// One finding of one rule on one object. Its message is put together only when asked for:
/// the mutating webhook answers with a patch and never shows the messages of its fixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static str,
    pub action: Action,
    /// Where in the object, as `spec.trafficPolicy.outlierDetection`.
    pub path: Text,
    /// The object, as `DestinationRule ns/name` (shared by the findings of one pass).
    subject: Arc<str>,
    problem: Text,
    consequence: Text,
    remedy: Text,
}

impl Finding {
    fn new(rule: &'static str, action: Action, subject: Arc<str>, issue: Issue) -> Self {
        Finding {
            rule,
            action,
            path: issue.path,
            subject,
            problem: issue.problem,
            consequence: issue.consequence,
            remedy: issue.remedy,
        }
    }

    /// `FG101 DestinationRule ns/name: what is wrong`: how both message and warning begin.
    fn head(&self) -> String {
        self.joined(&[])
    }

    /// `FG101 DestinationRule ns/name: what is wrong; what Istio will do; how to fix`.
    pub fn message(&self) -> String {
        self.joined(&[&self.consequence, &self.remedy])
    }

    /// The head and the non-empty `parts` after it, each after "; ", in one allocation.
    fn joined(&self, parts: &[&str]) -> String {
        let head = [self.rule, " ", &self.subject, ": ", &self.problem];
        let parts = parts.iter().filter(|p| !p.is_empty());
        let length = head.iter().chain(parts.clone()).map(|p| p.len() + 2).sum();
        let mut message = String::with_capacity(length);
        head.iter().for_each(|p| message.push_str(p));
        for part in parts {
            message.push_str("; ");
            message.push_str(part);
        }
        message
    }

    /// The one-line admission warning: rule, object and problem, at most 120 characters.
    pub fn warning(&self) -> String {
        truncate(&self.head(), WARNING_LIMIT)
    }
}

/// The outcome of one pass over one object.
#[derive(Debug, Default, Clone)]
pub struct Evaluation {
    /// The kind, when the engine handles the object at all.
    pub kind: Option<Kind>,
    pub findings: Vec<Finding>,
    /// Rules whose fixes were applied in this pass.
    pub applied: Vec<&'static str>,
    /// Rules switched off for this object by the skip annotation.
    pub skipped: Vec<&'static str>,
    /// Where the applied fixes wrote (and the mutated annotation): what [`patch`] sends.
    pub changes: Vec<PointerBuf>,
}

impl Evaluation {
    pub fn denials(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.action == Action::Deny)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.action == Action::Warn)
    }
}

/// Runs one pass over `object`. In [`Pass::Validate`] the object is left unchanged.
///
/// `default_namespace` names the namespace of objects whose metadata has none (the admission
/// request's namespace in the webhook).
pub fn evaluate(
    object: &mut Value,
    config: &Config,
    world: Option<&dyn World>,
    default_namespace: &str,
    pass: Pass,
) -> Evaluation {
    let Some(kind) = Kind::of(object) else {
        return Evaluation::default();
    };
    let mut evaluation = Evaluation {
        kind: Some(kind),
        ..Evaluation::default()
    };
    let subject = Subject::of(object, kind, default_namespace);
    if !config.in_scope(&subject.namespace) {
        return evaluation;
    }
    let skip = skip_list(object);
    let cx = Context::new(config, world, &subject);
    let mut issues = Issues::new();
    let mut shown: Option<Arc<str>> = None;
    // Where istiod does not read this kind (a primary-remote remote), only FG603 judges it:
    // every other verdict would be about an object no proxy ever gets.
    let rules: &[&crate::rules::Rule] = if config.multicluster.istiod_reads_here(kind) {
        RULES
    } else {
        &[&crate::rules::multicluster::FG603]
    };
    for rule in rules.iter().filter(|r| r.kinds.contains(&kind)) {
        let mode = config.mode(rule.id);
        // A rule that is off unless configured (FG115) runs only when asked for.
        if mode == Some(Mode::Off) || (mode.is_none() && rule.default == Mode::Off) {
            continue;
        }
        if skip.skips(rule.id) && !rule.guards_istiod {
            evaluation.skipped.push(rule.id);
            continue;
        }
        // Unconfigured, a rule runs its natural behaviour: it fixes what it can unless its
        // default is to warn (FG301 only narrows a policy when configured to).
        let fixes = rule.can_mutate
            && match mode {
                Some(Mode::Mutate) => true,
                None => rule.default != Mode::Warn,
                Some(_) => false,
            };
        // The mutating pass only fixes. A rule that fixes nothing would only find what the
        // validating pass reports anyway (the mutating webhook returns no warnings or
        // denials), so it is not run here: FG601's simulation and every judge-only rule cost
        // nothing on /mutate.
        if pass == Pass::Mutate && !fixes {
            continue;
        }
        issues.clear();
        (rule.check)(object, &cx, pass == Pass::Mutate, &mut issues);
        let mut applied = false;
        for mut issue in issues.drain(..) {
            let action = match (issue.fixed(), mode) {
                (true, _) => Action::Mutate,
                (false, Some(Mode::Warn)) => Action::Warn,
                (false, Some(Mode::Deny)) => Action::Deny,
                (false, _) if issue.fixable && fixes => Action::Deny,
                (false, _) => match issue.severity {
                    Severity::Deny => Action::Deny,
                    Severity::Warn => Action::Warn,
                },
            };
            applied |= issue.fixed();
            evaluation.changes.extend(issue.wrote.drain(..));
            let shown = shown.get_or_insert_with(|| subject.shown());
            evaluation
                .findings
                .push(Finding::new(rule.id, action, shown.clone(), issue));
        }
        if applied {
            evaluation.applied.push(rule.id);
        }
    }
    if !evaluation.applied.is_empty() {
        evaluation
            .changes
            .extend(mark_mutated(object, &evaluation.applied));
    }
    evaluation
}

/// The JSONPatch that turns the object as admitted into `object` after the mutating pass that
/// gave `changes`: an `add` of the final value of each member the fixes wrote, outermost first
/// (a member inside one already sent is left out), or a `replace` for an array element. It is
/// built from the fixes' own record, so a fix costs no copy of the object and no diff.
pub fn patch(object: &Value, changes: &[PointerBuf]) -> Patch {
    Patch(
        operations(object, changes)
            .filter_map(|op| {
                let path = PointerBuf::parse(op.path).ok()?;
                let value = op.value.clone();
                Some(if op.op == Op::Replace {
                    PatchOperation::Replace(ReplaceOperation { path, value })
                } else {
                    PatchOperation::Add(AddOperation { path, value })
                })
            })
            .collect(),
    )
}

/// [`patch`] as the JSON the webhook sends, written from the object's own members: no copy
/// of the values it adds (the webhook's response is all that needs them).
pub fn patch_json(object: &Value, changes: &[PointerBuf]) -> serde_json::Result<Vec<u8>> {
    // A typical patch is a few hundred bytes: one allocation, not one per doubling.
    let mut out = Vec::with_capacity(512);
    out.push(b'[');
    for (i, operation) in operations(object, changes).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // The operation's frame is constant text: only the path and the value go through
        // serde_json, which scans every string it writes for characters to escape.
        out.extend_from_slice(match operation.op {
            Op::Add => br#"{"op":"add","path":"#,
            Op::Replace => br#"{"op":"replace","path":"#,
        });
        serde_json::to_writer(&mut out, operation.path)?;
        out.extend_from_slice(br#","value":"#);
        serde_json::to_writer(&mut out, operation.value)?;
        out.push(b'}');
    }
    out.push(b']');
    Ok(out)
}

/// One operation of the patch, borrowing its value from the mutated object.
struct Operation<'a> {
    op: Op,
    path: &'a str,
    value: &'a Value,
}

#[derive(PartialEq)]
enum Op {
    Add,
    Replace,
}

/// A list on a fix's path that rarely holds more than four (the members fixes wrote, the rules
/// that fixed): kept on the stack.
type Few<T> = smallvec::SmallVec<[T; 4]>;

fn operations<'a>(
    object: &'a Value,
    changes: &'a [PointerBuf],
) -> impl Iterator<Item = Operation<'a>> {
    // A member a later fix removed again is sent as its nearest ancestor still there.
    let mut found: Few<(&str, &Value, bool)> = changes
        .iter()
        .map(|at| object::deepest(object, at.as_str()))
        .collect();
    found.sort_unstable_by(|a, b| a.0.cmp(b.0));
    found.dedup_by(|a, b| a.0 == b.0);
    let mut sent: Few<&str> = Few::new();
    found.into_iter().filter_map(move |(at, value, in_array)| {
        let inside = |outer: &&str| at.strip_prefix(*outer).is_some_and(|r| r.starts_with('/'));
        if sent.iter().any(inside) {
            return None;
        }
        sent.push(at);
        Some(Operation {
            op: if in_array { Op::Replace } else { Op::Add },
            path: at,
            value,
        })
    })
}

/// The rules an object opts out of.
enum SkipList {
    None,
    All,
    Some(BTreeSet<String>),
}

impl SkipList {
    fn skips(&self, id: &str) -> bool {
        match self {
            SkipList::None => false,
            SkipList::All => true,
            SkipList::Some(ids) => ids.contains(id),
        }
    }
}

fn skip_list(object: &Value) -> SkipList {
    match object::annotation(object, object::SKIP_ANNOTATION) {
        None => SkipList::None,
        Some(text) if text.trim() == "*" => SkipList::All,
        Some(text) => SkipList::Some(
            object::split_list(text)
                .map(str::to_ascii_uppercase)
                .collect(),
        ),
    }
}

/// Records applied rules in the mutated annotation, merged with what earlier passes recorded.
fn mark_mutated(object: &mut Value, applied: &[&str]) -> Option<PointerBuf> {
    let earlier = object::annotation(object, object::MUTATED_ANNOTATION);
    let mut ids: Few<&str> = applied.iter().copied().collect();
    ids.extend(earlier.into_iter().flat_map(object::split_list));
    ids.sort_unstable();
    ids.dedup();
    let mut value = String::with_capacity(ids.iter().map(|id| id.len() + 1).sum());
    for id in ids {
        if !value.is_empty() {
            value.push(',');
        }
        value.push_str(id);
    }
    object::set_annotation(object, object::MUTATED_ANNOTATION, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::yaml;

    fn dr(extra_meta: &str, spec: &str) -> Value {
        yaml(&format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: reviews\n  namespace: bookinfo\n{extra_meta}spec:\n{spec}"
        ))
    }

    #[test]
    fn mutate_then_validate_is_clean_and_annotated() {
        let config = Config::example();
        let mut object = dr("", "  host: reviews\n");
        let m = evaluate(&mut object, &config, None, "default", Pass::Mutate);
        assert_eq!(m.applied, ["FG101"]);
        assert_eq!(
            object::annotation(&object, object::MUTATED_ANNOTATION),
            Some("FG101")
        );
        let before = object.clone();
        let v = evaluate(&mut object, &config, None, "default", Pass::Validate);
        assert!(v.findings.is_empty(), "{:?}", v.findings);
        assert_eq!(before, object);
        let again = evaluate(&mut object, &config, None, "default", Pass::Mutate);
        assert!(again.applied.is_empty());
        assert_eq!(before, object);
    }

    #[test]
    fn the_mutated_annotation_keeps_earlier_rules_once_and_in_order() {
        let mut object = dr(
            "  annotations:\n    failover-guard.io/mutated: \"FG204, FG101\"\n",
            "  host: reviews\n",
        );
        let wrote = mark_mutated(&mut object, &["FG102", "FG101"]);
        assert_eq!(
            object::annotation(&object, object::MUTATED_ANNOTATION),
            Some("FG101,FG102,FG204")
        );
        assert_eq!(
            wrote.map(|p| p.to_string()).as_deref(),
            Some("/metadata/annotations/failover-guard.io~1mutated")
        );
    }

    #[test]
    fn unfixed_mutate_finding_is_denied_in_validation() {
        let config = Config::example();
        let mut object = dr("", "  host: reviews\n");
        let v = evaluate(&mut object, &config, None, "default", Pass::Validate);
        let denial = v.denials().next().expect("a denial");
        assert_eq!(denial.rule, "FG101");
        assert!(
            denial
                .message()
                .starts_with("FG101 DestinationRule bookinfo/reviews: ")
        );
        assert!(denial.warning().chars().count() <= WARNING_LIMIT);
    }

    #[test]
    fn skip_annotation_and_modes() {
        let mut config = Config::example();
        let mut object = dr(
            "  annotations: {failover-guard.io/skip: \"fg101, FG103\"}\n",
            "  host: reviews\n",
        );
        let m = evaluate(&mut object, &config, None, "default", Pass::Mutate);
        assert!(m.applied.is_empty());
        assert_eq!(m.skipped, ["FG101", "FG103"]);

        let mut object = dr(
            "  annotations: {failover-guard.io/skip: \"*\"}\n",
            "  host: a\n",
        );
        let m = evaluate(&mut object, &config, None, "default", Pass::Mutate);
        let skippable = RULES
            .iter()
            .filter(|r| {
                r.kinds.contains(&Kind::DestinationRule)
                    && !r.guards_istiod
                    && r.default != Mode::Off
            })
            .count();
        assert_eq!(m.skipped.len(), skippable, "every DestinationRule rule");
        assert!(skippable >= 15);
        assert!(!m.skipped.contains(&"FG602"), "FG602 guards istiod");

        config.rules.insert("FG101".into(), Mode::Warn);
        let mut object = dr("", "  host: reviews\n");
        let m = evaluate(&mut object, &config, None, "default", Pass::Mutate);
        assert!(m.applied.is_empty());
        assert!(
            m.findings.is_empty(),
            "a rule set to warn is judged by validation only"
        );
        let v = evaluate(&mut object, &config, None, "default", Pass::Validate);
        assert_eq!(v.warnings().count(), 1);

        config.rules.insert("FG101".into(), Mode::Off);
        let m = evaluate(&mut object, &config, None, "default", Pass::Validate);
        assert!(m.findings.is_empty());
    }

    #[test]
    fn fg301_warns_unless_configured_to_mutate() {
        let mut config = Config::example();
        let ap = || {
            yaml(
                "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ap, namespace: bookinfo}\nspec:\n  rules: [{to: [{operation: {methods: [GET]}}]}]\n",
            )
        };
        let mut object = ap();
        let m = evaluate(&mut object, &config, None, "default", Pass::Mutate);
        assert!(
            m.applied.is_empty(),
            "narrowed a policy nobody asked to narrow"
        );
        assert_eq!(object, ap());
        let v = evaluate(&mut object, &config, None, "default", Pass::Validate);
        let warning = v.warnings().next().expect("a warning");
        assert!(
            warning
                .message()
                .contains("admits every workload of cluster-b")
        );
        assert_eq!(v.denials().count(), 0);

        config.rules.insert("FG301".into(), Mode::Mutate);
        config.authorization.default_sources = vec![serde_json::json!({"namespaces": ["ops"]})];
        let m = evaluate(&mut object, &config, None, "default", Pass::Mutate);
        assert_eq!(m.applied, ["FG301"]);
        assert_eq!(
            object["spec"]["rules"][0]["from"],
            serde_json::json!([
                {"source": {"principals": ["cluster.local/ns/bookinfo/sa/*"]}},
                {"source": {"namespaces": ["ops"]}}
            ])
        );
    }

    #[test]
    fn excluded_namespaces_and_unknown_kinds_are_untouched() {
        let config = Config::example();
        let mut object = yaml(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a, namespace: kube-system}\nspec: {host: a}",
        );
        let before = object.clone();
        let m = evaluate(&mut object, &config, None, "default", Pass::Mutate);
        assert!(m.findings.is_empty());
        assert_eq!(before, object);
        let mut pod = yaml("apiVersion: v1\nkind: Pod\nmetadata: {name: p}");
        assert!(
            evaluate(&mut pod, &config, None, "default", Pass::Mutate)
                .kind
                .is_none()
        );
    }

    #[test]
    fn config_rule_ids_and_modes_are_checked_against_the_catalog() {
        let text = format!(
            "{}\nrules: {{FG999: warn, FG105: mutate, FG101: warn}}\n",
            crate::config::EXAMPLE.replace("rules: {}", "")
        );
        let Err(ConfigError::Invalid { problems, .. }) = parse_config(&text, "t") else {
            panic!("expected Invalid");
        };
        let all = problems.join("\n");
        assert!(all.contains("FG999: no such rule"), "{all}");
        assert!(all.contains("FG105 cannot mutate"), "{all}");
        assert!(!all.contains("FG101"), "{all}");
    }

    #[test]
    fn patch_sends_the_outermost_members_written() {
        let admitted = serde_json::json!({
            "metadata": {"name": "a"},
            "spec": {"ports": [{"name": "web"}], "od": {"old": 1}, "keep": true}
        });
        let mut object = admitted.clone();
        object["metadata"]["annotations"] = serde_json::json!({"x/y": "1"});
        object["spec"]["ports"][0]["name"] = serde_json::json!("http");
        object["spec"]["od"] = serde_json::json!({"new": 1});
        let at = |p: &str| PointerBuf::parse(p).unwrap();
        let changes = [
            at("/spec/od/new"),
            at("/metadata/annotations"),
            // Written, then removed by a later fix: its parent is sent.
            at("/spec/od/old"),
            at("/spec/ports/0"),
            at("/spec/od/new"),
        ];
        let patch = patch(&object, &changes);
        let paths: Vec<String> = patch.0.iter().map(|op| op.path().to_string()).collect();
        assert_eq!(
            paths,
            ["/metadata/annotations", "/spec/od", "/spec/ports/0"]
        );
        assert!(
            matches!(patch.0[2], PatchOperation::Replace(_)),
            "an array element is replaced, not inserted"
        );
        // What the webhook sends is the same patch, written from the object's members.
        let sent: Value = serde_json::from_slice(&patch_json(&object, &changes).unwrap()).unwrap();
        assert_eq!(sent, serde_json::to_value(&patch).unwrap());
        let mut patched = admitted;
        json_patch::patch(&mut patched, &patch).unwrap();
        assert_eq!(patched, object);
    }

    #[test]
    fn truncation_is_char_safe() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("ééééé", 3), "éé…");
    }
}
