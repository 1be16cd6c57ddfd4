//! The rule catalog (SPEC section 3). Each rule is a `pub static FGnnn: Rule` next to the code
//! that checks it and the tests that pin it down, in the file of the kind it reads:
//! `grep -rn FG204 src/rules` lands on its definition.

use std::cell::OnceCell;

use json_patch::jsonptr::PointerBuf;
use serde_json::Value;

use crate::{
    config::{Config, Mode},
    object::{Kind, Subject},
    world::World,
};

pub mod ambient;
pub mod authorization_policy;
pub mod destination_rule;
pub mod failover;
pub mod multicluster;
pub mod peer_authentication;
pub mod service;
pub mod service_entry;

/// One rule of the catalog.
pub struct Rule {
    /// `FG` + 3 digits; rules run in ID order.
    pub id: &'static str,
    /// kebab-case name.
    pub name: &'static str,
    /// The kinds it reads.
    pub kinds: &'static [Kind],
    /// The action it takes unless configured otherwise.
    pub default: Mode,
    /// Whether it can fix what it finds (and so supports `mutate`).
    pub can_mutate: bool,
    /// Whether it reads other objects through the world (silent without one).
    pub needs_world: bool,
    /// What it denies makes istiod panic: it only denies, and neither the config file nor the
    /// skip annotation turns it off.
    pub guards_istiod: bool,
    /// One line: what it checks.
    pub summary: &'static str,
    /// The Istio behaviour it guards against.
    pub istio: &'static str,
    /// A configuration it acts on.
    pub example_bad: &'static str,
    /// The same configuration as it should be.
    pub example_fixed: &'static str,
    /// Inspects the object; when `fix` is set it also repairs in place what it can and marks
    /// those issues fixed. With `fix` unset it must not change the object.
    pub check: fn(&mut Value, &Context<'_>, bool, &mut Issues),
}

impl Rule {
    pub fn supports(&self, mode: Mode) -> bool {
        if self.guards_istiod {
            return mode == Mode::Deny;
        }
        mode != Mode::Mutate || self.can_mutate
    }

    pub fn supported_modes(&self) -> Vec<Mode> {
        [Mode::Mutate, Mode::Deny, Mode::Warn, Mode::Off]
            .into_iter()
            .filter(|m| self.supports(*m))
            .collect()
    }
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.id, self.name)
    }
}

/// What a rule sees besides the object.
pub struct Context<'a> {
    pub config: &'a Config,
    pub world: Option<&'a dyn World>,
    pub subject: &'a Subject,
    /// Facts about the object that no fix changes, worked out by the first rule that asks.
    pub facts: Facts,
}

impl<'a> Context<'a> {
    pub fn new(config: &'a Config, world: Option<&'a dyn World>, subject: &'a Subject) -> Self {
        Self {
            config,
            world,
            subject,
            facts: Facts::default(),
        }
    }
}

/// Facts about one object that several rules need and no fix changes (a DestinationRule's
/// host, whether it is in failover scope; whether a ServiceEntry is a failover entry): each
/// rule of a pass asks, the first one works it out.
#[derive(Debug, Default)]
pub struct Facts {
    pub(crate) host: OnceCell<Option<String>>,
    pub(crate) in_failover_scope: OnceCell<bool>,
    pub(crate) failover_entry: OnceCell<bool>,
    pub(crate) levels: OnceCell<Vec<crate::istio::destination_rule::Level>>,
}

/// The severity of an issue the rule does not (or cannot) fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Deny,
    Warn,
}

/// A message text: a literal borrowed, or one formatted for this object.
pub type Text = std::borrow::Cow<'static, str>;

/// One problem a rule found, in the words of the message: what is wrong, what Istio will do,
/// how to fix it.
#[derive(Debug, Clone)]
pub struct Issue {
    /// Where in the object, as `spec.subsets[1].trafficPolicy`.
    pub path: Text,
    /// The texts are mostly literals: borrowed, they cost a fix nothing to build.
    pub problem: Text,
    pub consequence: Text,
    pub remedy: Text,
    pub severity: Severity,
    /// The rule knows how to fix this.
    pub fixable: bool,
    /// Set when the rule fixed it in this pass: the JSON pointers (RFC 6901) of the object
    /// members the fix added or replaced, whole. The member must have been in the object before
    /// the fix, or be the outermost one the fix created; a fix that changes an array's length
    /// names the array. The webhook sends each such member's final value as a JSONPatch `add`
    /// (`engine::patch`), so a fix costs no copy of the object and no diff.
    pub wrote: Wrote,
}

/// What one rule found on one object: rarely more than two issues, kept on the stack (a fix
/// on the request path then allocates no list of them).
pub type Issues = smallvec::SmallVec<[Issue; 2]>;

/// Where a fix wrote: one member, or two (FG208's endpoints and resolution).
pub type Wrote = smallvec::SmallVec<[PointerBuf; 2]>;

impl Issue {
    fn new(path: impl Into<Text>, problem: impl Into<Text>, severity: Severity) -> Self {
        Self {
            path: path.into(),
            problem: problem.into(),
            consequence: Text::Borrowed(""),
            remedy: Text::Borrowed(""),
            severity,
            fixable: false,
            wrote: Wrote::new(),
        }
    }

    /// An issue that denies unless the rule is configured to warn.
    pub fn deny(path: impl Into<Text>, problem: impl Into<Text>) -> Self {
        Self::new(path, problem, Severity::Deny)
    }

    /// An issue that warns unless the rule is configured to deny.
    pub fn warn(path: impl Into<Text>, problem: impl Into<Text>) -> Self {
        Self::new(path, problem, Severity::Warn)
    }

    /// An issue the rule can fix; `wrote` is where it did (`None`: not fixed in this pass).
    pub fn fixable(
        path: impl Into<Text>,
        problem: impl Into<Text>,
        wrote: Option<PointerBuf>,
    ) -> Self {
        Self {
            fixable: true,
            wrote: wrote.into_iter().collect(),
            ..Self::new(path, problem, Severity::Deny)
        }
    }

    /// A second member the same fix wrote, when it did.
    pub fn and_wrote(mut self, wrote: Option<PointerBuf>) -> Self {
        self.wrote.extend(wrote);
        self
    }

    /// Whether the rule fixed it in this pass.
    pub fn fixed(&self) -> bool {
        !self.wrote.is_empty()
    }

    /// What Istio will do.
    pub fn because(mut self, consequence: impl Into<Text>) -> Self {
        self.consequence = consequence.into();
        self
    }

    /// How to fix it.
    pub fn fix(mut self, remedy: impl Into<Text>) -> Self {
        self.remedy = remedy.into();
        self
    }
}

/// The admitted object as the world holds objects: with its namespace written (an admitted
/// object may leave it to the request).
pub(crate) fn as_stored(object: &Value, cx: &Context<'_>) -> Value {
    let mut stored = object.clone();
    if let Some(meta) = stored.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "namespace".into(),
            Value::from(cx.subject.namespace.as_str()),
        );
    }
    stored
}

/// The stored objects with the admitted one in place of its stored version (which keeps its
/// creation time), or last (the newest) when it is new: the set pilot will read.
pub(crate) fn with_admitted<'a>(
    stored: &'a [std::sync::Arc<Value>],
    admitted: &'a Value,
    cx: &Context<'_>,
) -> Vec<&'a Value> {
    let mut out: Vec<&Value> = Vec::with_capacity(stored.len() + 1);
    let mut placed = false;
    for other in stored {
        if cx.subject.is(other) {
            out.push(admitted);
            placed = true;
        } else {
            out.push(other);
        }
    }
    if !placed {
        out.push(admitted);
    }
    out
}

/// Pilot's DestinationRule index over the world's rules for one host, under the mesh config
/// in force (the model's `Index`: what FG113 and FG3xx ask of it). `None` without a world.
pub(crate) fn world_destination_rules(
    cx: &Context<'_>,
    host: &str,
) -> Option<crate::istio::destination_rule::Index> {
    let rules = cx.world?.destination_rules(host);
    let rules: Vec<&Value> = rules.iter().map(|r| r.as_ref()).collect();
    Some(crate::istio::destination_rule::Index::new(
        &rules,
        &cx.config.mesh,
        &cx.config.scope.root_namespace,
        &cx.config.cluster.cluster_domain,
    ))
}

/// The east-west gateway namespaces an `exportTo` list of an object in `own` does not reach
/// (FG112's and FG406's question).
pub(crate) fn gateway_namespaces_outside<'c, S: AsRef<str>>(
    export: &[S],
    own: &str,
    cx: &'c Context<'_>,
) -> Vec<&'c str> {
    cx.config
        .scope
        .gateway_namespaces
        .iter()
        .map(String::as_str)
        .filter(|gw| !crate::istio::destination_rule::exported_to(export, own, gw))
        .collect()
}

/// A JSON pointer from object keys and array indices, escaped as RFC 6901 says.
pub fn pointer(tokens: &[&str]) -> PointerBuf {
    crate::object::pointer_of(tokens.iter().copied())
}

/// Every rule, in ID order.
pub static RULES: &[&Rule] = &[
    &destination_rule::FG101,
    &destination_rule::FG102,
    &destination_rule::FG103,
    &destination_rule::FG104,
    &destination_rule::FG105,
    &destination_rule::FG106,
    &destination_rule::FG107,
    &destination_rule::FG108,
    &destination_rule::FG109,
    &destination_rule::FG110,
    &destination_rule::FG111,
    &destination_rule::FG112,
    &destination_rule::FG113,
    &destination_rule::FG114,
    &destination_rule::FG115,
    &destination_rule::FG116,
    &destination_rule::FG117,
    &ambient::FG118,
    &service_entry::FG201,
    &service_entry::FG202,
    &service_entry::FG203,
    &service_entry::FG204,
    &service_entry::FG205,
    &service_entry::FG206,
    &service_entry::FG207,
    &service_entry::FG208,
    &service_entry::FG209,
    &service_entry::FG210,
    &service_entry::FG211,
    &service_entry::FG213,
    &service_entry::FG214,
    &ambient::FG215,
    &authorization_policy::FG301,
    &authorization_policy::FG302,
    &authorization_policy::FG303,
    &authorization_policy::FG304,
    &peer_authentication::FG305,
    &service::FG401,
    &service::FG402,
    &service::FG403,
    &service::FG404,
    &destination_rule::FG405,
    &service::FG406,
    &service::FG407,
    &ambient::FG409,
    &ambient::FG410,
    &ambient::FG411,
    &ambient::FG412,
    &service::FG413,
    &service::FG501,
    &service::FG502,
    &failover::FG601,
    &failover::FG602,
    &multicluster::FG603,
];

/// What is wrong with the `rules` section of a configuration: unknown IDs, unsupported modes.
pub fn mode_problems(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    for (id, mode) in &config.rules {
        match by_id(id) {
            None => problems.push(format!(
                "rules.{id}: no such rule (see `failover-guard explain`)"
            )),
            Some(rule) if !rule.supports(*mode) => problems.push(format!(
                "rules.{id}: {id} cannot {}; it supports {}",
                mode.as_str(),
                rule.supported_modes()
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(_) => {}
        }
    }
    problems
}

/// The rule with this ID (case-insensitive).
pub fn by_id(id: &str) -> Option<&'static Rule> {
    RULES
        .iter()
        .copied()
        .find(|r| r.id.eq_ignore_ascii_case(id))
}

#[cfg(test)]
pub(crate) mod testing {
    //! Table-driven rule tests: run one rule over a YAML object with a config.
    use super::*;
    use crate::{config::Config, object::Subject};

    pub fn yaml(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("bad test YAML: {e}\n{text}"))
    }

    /// Runs `rule` once with `fix`, returning the (possibly fixed) object and the issues.
    pub fn run_rule(
        rule: &Rule,
        config: &Config,
        world: Option<&dyn World>,
        object: &Value,
        fix: bool,
    ) -> (Value, Issues) {
        let mut object = object.clone();
        let kind = crate::object::Kind::of(&object).unwrap_or_else(|| panic!("unknown kind"));
        let subject = Subject::of(&object, kind, "default");
        let cx = Context::new(config, world, &subject);
        let mut issues = Issues::new();
        let before = object.clone();
        (rule.check)(&mut object, &cx, fix, &mut issues);
        if !fix {
            assert_eq!(before, object, "{} changed the object without fix", rule.id);
        }
        (object, issues)
    }

    /// One table-driven case of `src/rules/fixtures/FGnnn.yaml`.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Case {
        name: String,
        object: Value,
        #[serde(default)]
        world: Vec<Value>,
        /// Run with a configuration that has no remote clusters.
        #[serde(default)]
        no_remotes: bool,
        /// A JSON merge patch over the example configuration.
        #[serde(default)]
        config: Option<Value>,
        /// What remote discovery saw, merged into the configuration.
        #[serde(default)]
        discovered: Vec<crate::config::DiscoveredRemote>,
        /// The mesh config pilot runs with (YAML of a MeshConfig); Istio's defaults if absent.
        #[serde(default)]
        mesh: Option<String>,
        /// A remote's workloads as istiod reads them (native models): remote name -> objects.
        #[serde(default)]
        remote_workloads: std::collections::BTreeMap<String, Vec<Value>>,
        expect: Expect,
    }

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Expect {
        /// Substrings of the problems found, one per issue, by severity.
        #[serde(default)]
        deny: Vec<String>,
        #[serde(default)]
        warn: Vec<String>,
        #[serde(default)]
        fixable: Vec<String>,
        /// The exact object after the rule fixed it.
        #[serde(default)]
        fixed: Option<Value>,
        /// Where each issue points (its field path), in the order found, when given.
        #[serde(default)]
        paths: Option<Vec<String>>,
    }

    #[test]
    fn fixtures() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/rules/fixtures");
        let mut covered = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(&dir).expect("fixtures folder") {
            let path = entry.expect("entry").path();
            let id = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("")
                .to_owned();
            let rule = by_id(&id).unwrap_or_else(|| panic!("{} names no rule", path.display()));
            let text = std::fs::read_to_string(&path).expect("read fixture");
            let cases: Vec<Case> = serde_yaml_ng::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let (mut triggering, mut quiet) = (0, 0);
            for case in cases {
                let mut config = Config::example();
                if let Some(patch) = &case.config {
                    let mut base = serde_json::to_value(&config).expect("config as JSON");
                    json_patch::merge(&mut base, patch);
                    let text = serde_yaml_ng::to_string(&base).expect("config as YAML");
                    config = crate::engine::parse_config(&text, &id)
                        .unwrap_or_else(|e| panic!("{id} {:?}: {e}", case.name));
                }
                if case.no_remotes {
                    config.remotes.clear();
                }
                if !case.discovered.is_empty() {
                    config = config.with_discovered(&case.discovered);
                }
                for (name, objects) in &case.remote_workloads {
                    let remote = config
                        .remotes
                        .iter_mut()
                        .find(|r| &r.name == name)
                        .unwrap_or_else(|| panic!("{id} {:?}: no remote {name}", case.name));
                    remote.workloads =
                        Some(std::sync::Arc::new(crate::istio::kube::RemoteObjects::new(
                            objects.iter().cloned().map(std::sync::Arc::new).collect(),
                        )));
                }
                if let Some(mesh) = &case.mesh {
                    config = config.with_mesh(
                        crate::istio::mesh::MeshConfig::parse(mesh, &id)
                            .unwrap_or_else(|e| panic!("{id} {:?}: {e}", case.name)),
                    );
                }
                let world = crate::world::ManifestWorld::new(
                    &case.world,
                    "default",
                    &config.cluster.cluster_domain,
                );
                let world: Option<&dyn World> = if case.world.is_empty() {
                    None
                } else {
                    Some(&world)
                };
                let label = format!("{id} {:?}", case.name);
                let (fixed, issues) = run_rule(rule, &config, world, &case.object, true);
                let found = |want: &[String], pick: &dyn Fn(&Issue) -> bool| {
                    let got: Vec<&Issue> = issues.iter().filter(|i| pick(i)).collect();
                    assert_eq!(got.len(), want.len(), "{label}: {got:#?}");
                    for (issue, needle) in got.iter().zip(want) {
                        assert!(
                            issue.problem.contains(needle.as_str()),
                            "{label}: {:?} lacks {needle:?}",
                            issue.problem
                        );
                    }
                };
                found(&case.expect.deny, &|i| {
                    !i.fixable && i.severity == Severity::Deny
                });
                found(&case.expect.warn, &|i| {
                    !i.fixable && i.severity == Severity::Warn
                });
                found(&case.expect.fixable, &|i| i.fixable);
                if issues.is_empty() {
                    quiet += 1
                } else {
                    triggering += 1
                }
                if let Some(expected) = &case.expect.paths {
                    let got: Vec<&str> = issues.iter().map(|i| i.path.as_ref()).collect();
                    assert_eq!(got, *expected, "{label}: paths");
                }
                if let Some(expected) = &case.expect.fixed {
                    assert_eq!(&fixed, expected, "{label}: fixed object");
                }
                // Where the fixes say they wrote is the whole change: the webhook's patch
                // built from it turns the object as admitted into the fixed one.
                let wrote: Vec<_> = issues.iter().flat_map(|i| i.wrote.clone()).collect();
                let mut patched = case.object.clone();
                json_patch::patch(&mut patched, &crate::engine::patch(&fixed, &wrote))
                    .unwrap_or_else(|e| panic!("{label}: patch does not apply: {e}"));
                assert_eq!(patched, fixed, "{label}: patch from the fixes' writes");
                if issues.iter().any(|i| i.fixable) {
                    assert!(
                        issues.iter().filter(|i| i.fixable).all(Issue::fixed),
                        "{label}: unfixed"
                    );
                    let (again, rest) = run_rule(rule, &config, world, &fixed, true);
                    assert_eq!(again, fixed, "{label}: second fix changed the object");
                    assert!(
                        rest.iter().all(|i| !i.fixable),
                        "{label}: second run found {rest:?}"
                    );
                }
            }
            assert!(
                triggering > 0 && quiet > 0,
                "{id}: needs a triggering and a quiet case"
            );
            covered.insert(id);
        }
        for rule in RULES {
            assert!(covered.contains(rule.id), "{} has no fixture file", rule.id);
        }
    }

    #[test]
    fn catalog_is_sorted_unique_and_documented() {
        for pair in RULES.windows(2) {
            assert!(
                pair[0].id < pair[1].id,
                "{} before {}",
                pair[0].id,
                pair[1].id
            );
        }
        for rule in RULES {
            assert!(
                rule.id.len() == 5 && rule.id.starts_with("FG"),
                "{}",
                rule.id
            );
            assert!(
                !rule.summary.is_empty() && !rule.istio.is_empty(),
                "{}",
                rule.id
            );
            assert!(!rule.example_bad.is_empty() && !rule.example_fixed.is_empty());
            assert!(rule.supports(rule.default), "{}", rule.id);
            // Istio is the judge: each rationale names the Istio code it relies on.
            assert!(
                ["pilot/", "pkg/"].iter().any(|p| rule.istio.contains(p)),
                "{}'s istio text cites no Istio file",
                rule.id
            );
            yaml(rule.example_bad);
            yaml(rule.example_fixed);
        }
    }
}
