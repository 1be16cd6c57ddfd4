//! The configuration file (SPEC section 4): this cluster, the remote clusters to fail over to,
//! the scope, the outlier detection that FG101 injects and the per-rule modes.
//!
//! Parsing is strict: an unknown key is an error that names the key and its line, because a
//! misspelt key silently falling back to a default is exactly the class of bug this tool exists
//! to prevent in Istio configs.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::IpAddr,
    path::PathBuf,
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::locality::Locality;

/// The example configuration shipped in deploy/, also used by `serve --dev`.
pub const EXAMPLE: &str = include_str!("../deploy/base/config.yaml");

/// Default location of the configuration file inside the webhook's pod.
pub const DEFAULT_PATH: &str = "/etc/failover-guard/config.yaml";

/// What went wrong reading or checking a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("config {origin} is invalid:\n  - {}", problems.join("\n  - "))]
    Invalid {
        origin: String,
        problems: Vec<String>,
    },
}

/// How a rule acts. `mutate` rules fix what they can and fall back to their own severity for
/// what cannot be fixed; `deny` and `warn` force every finding of the rule to that action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Mutate,
    Deny,
    Warn,
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Mutate => "mutate",
            Mode::Deny => "deny",
            Mode::Warn => "warn",
            Mode::Off => "off",
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    pub cluster: Cluster,
    #[serde(default)]
    pub remotes: Vec<Remote>,
    #[serde(default)]
    pub scope: Scope,
    #[serde(default)]
    pub outlier_detection: OutlierDetection,
    #[serde(default)]
    pub authorization: Authorization,
    #[serde(default)]
    pub rules: BTreeMap<String, Mode>,
    /// The Istio the mesh runs: which of pilot's version-dependent behaviours apply.
    #[serde(default)]
    pub istio: Istio,
    /// How the mesh spans clusters: where remote endpoints come from.
    #[serde(default)]
    pub multicluster: Multicluster,
    /// Reading the remote clusters instead of typing them (`serve` only; opt-in).
    #[serde(default, skip_serializing_if = "Discovery::is_off")]
    pub discovery: Discovery,
    /// The mesh config pilot runs with (`--mesh-config`, or the `istio` ConfigMap the server
    /// watches); Istio's defaults when none was given. Not part of this file.
    #[serde(skip)]
    pub mesh: std::sync::Arc<crate::istio::mesh::MeshConfig>,
    /// Derived once at load time so rules do not recompute it per request.
    #[serde(skip)]
    pub topology: Topology,
}

/// The Istio installation the rules judge for.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Istio {
    /// The minor release pilot runs (default: the version the Istio harness pins). Quote it:
    /// YAML reads 1.30 as the number 1.3.
    #[serde(default)]
    pub version: crate::istio::version::IstioVersion,
}

/// How the mesh spans clusters (README, "Multicluster models").
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Multicluster {
    /// `serviceEntries` (default), `multiPrimary` or `primaryRemote`.
    #[serde(default)]
    pub model: crate::istio::multicluster::Model,
    /// This cluster's role in `primaryRemote`: `primary` or `remote` (required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<crate::istio::multicluster::Role>,
}

impl Multicluster {
    /// Whether istiod merges the remote clusters' endpoints itself (no failover entries).
    pub fn native(&self) -> bool {
        self.model.istiod_merges_remote_endpoints()
    }

    /// Whether the istiod serving this cluster reads objects of `kind` from it.
    pub fn istiod_reads_here(&self, kind: crate::object::Kind) -> bool {
        self.model.istiod_reads_here(self.role, kind)
    }

    /// The model in a few words, for `check`, `simulate` and `/readyz`.
    pub fn describe(&self) -> String {
        match self.role {
            Some(role) => format!(
                "{} ({})",
                self.model,
                match role {
                    crate::istio::multicluster::Role::Primary => "primary",
                    crate::istio::multicluster::Role::Remote => "remote",
                }
            ),
            None => self.model.to_string(),
        }
    }
}

/// This cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Cluster {
    pub name: String,
    pub network: String,
    #[serde(default = "default_trust_domain")]
    pub trust_domain: String,
    #[serde(default)]
    pub trust_domain_aliases: Vec<String>,
    #[serde(default)]
    pub localities: Vec<String>,
    #[serde(default = "default_cluster_domain")]
    pub cluster_domain: String,
}

/// A cluster to fail over to, reached through its east-west gateway.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Remote {
    pub name: String,
    pub network: String,
    #[serde(default = "default_trust_domain")]
    pub trust_domain: String,
    pub locality: String,
    /// Required in the serviceEntries model; in the native models, the east-west gateway of a
    /// remote on another network (optional: istiod finds it itself).
    #[serde(default, skip_serializing_if = "Gateway::is_unset")]
    pub gateway: Gateway,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Ready endpoints per Service (`namespace/name`) in this remote, when discovery reads it;
    /// `None` for a remote known only from the file. Never read from the file.
    #[serde(skip)]
    pub services: Option<std::sync::Arc<BTreeMap<String, u32>>>,
    /// The IP addresses a discovered gateway hostname (an AWS NLB's, say) resolved to, as
    /// istiod resolves hostname gateways itself (RESOLVE_HOSTNAME_GATEWAYS): pilot merges only
    /// IP endpoints into a Service. Never read from the file.
    #[serde(skip)]
    pub resolved: Vec<String>,
    /// In the native models, the remote's Services, EndpointSlices, Pods and Nodes as istiod
    /// reads them through its remote secret (from discovery, or `--remote NAME=PATH`);
    /// `None`: assumed as the harness runs them. Never read from the file.
    #[serde(skip)]
    pub workloads: Option<Workloads>,
}

impl Remote {
    /// Whether the gateway is a hostname (discovered from a LoadBalancer that has no IP).
    pub fn gateway_is_hostname(&self) -> bool {
        !self.gateway.is_unset() && self.gateway.address.parse::<IpAddr>().is_err()
    }

    /// The addresses failover endpoints go to: the resolved ones of a hostname gateway, else
    /// the gateway address itself.
    pub fn gateway_addresses(&self) -> Vec<&str> {
        if self.resolved.is_empty() {
            vec![self.gateway.address.as_str()]
        } else {
            self.resolved.iter().map(String::as_str).collect()
        }
    }

    /// Ready endpoints of the Service `namespace/name` in this remote: `None` when unknown
    /// (no discovery), `Some(0)` when the Service does not exist there or has none ready.
    pub fn ready_endpoints(&self, namespace: &str, name: &str) -> Option<u32> {
        let services = self.services.as_ref()?;
        Some(
            services
                .get(&format!("{namespace}/{name}"))
                .copied()
                .unwrap_or(0),
        )
    }
}

/// Where remote clusters are read from (`discovery.source`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiscoverySource {
    /// Only the typed `remotes`.
    #[default]
    None,
    /// The Secrets labelled `istio/multiCluster: "true"` that `istioctl create-remote-secret`
    /// makes: one kubeconfig per key, the key being the cluster name.
    IstioSecrets,
    /// The kubeconfig files named in `discovery.kubeconfigs`.
    Kubeconfigs,
}

/// Remote discovery settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Discovery {
    #[serde(default)]
    pub source: DiscoverySource,
    /// Namespace of the remote secrets (`istio-secrets`).
    #[serde(default = "default_root_namespace")]
    pub secret_namespace: String,
    /// Cluster name to kubeconfig file (`kubeconfigs`).
    #[serde(default)]
    pub kubeconfigs: BTreeMap<String, PathBuf>,
    /// Namespace of the east-west gateway Service in each remote.
    #[serde(default = "default_root_namespace")]
    pub gateway_namespace: String,
    /// Labels of the east-west gateway Service (default: `scope.gatewaySelector`).
    #[serde(default)]
    pub gateway_selector: BTreeMap<String, String>,
    /// The gateway's mTLS port when its Service has no port named `tls`.
    #[serde(default = "default_gateway_port")]
    pub gateway_port: u16,
}

impl Default for Discovery {
    fn default() -> Self {
        Self {
            source: DiscoverySource::None,
            secret_namespace: default_root_namespace(),
            kubeconfigs: BTreeMap::new(),
            gateway_namespace: default_root_namespace(),
            gateway_selector: BTreeMap::new(),
            gateway_port: default_gateway_port(),
        }
    }
}

impl Discovery {
    fn is_off(&self) -> bool {
        self == &Discovery::default()
    }
}

/// A remote's objects as istiod's remote registry reads them (native models): its Services,
/// EndpointSlices, Nodes, Pods and Namespaces, shared with discovery's store rather than copied,
/// and indexed as the registry looks them up.
pub type Workloads = std::sync::Arc<crate::istio::kube::RemoteObjects>;

/// What discovery saw in one remote cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DiscoveredRemote {
    pub name: String,
    /// The east-west gateway's LoadBalancer address and mTLS port.
    pub gateway: Option<Gateway>,
    /// The gateway Service's `topology.istio.io/network` label.
    pub network: Option<String>,
    /// `region/zone` of the gateway's nodes.
    pub locality: Option<String>,
    /// Ready endpoints per Service (`namespace/name`), 0 for a Service without any.
    pub services: BTreeMap<String, u32>,
    /// The IP addresses the gateway hostname resolved to (empty for an IP gateway).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resolved: Vec<String>,
    /// In the native models: the remote's Services, EndpointSlices, Pods and Nodes.
    #[serde(skip)]
    pub workloads: Option<Workloads>,
    /// Why the gateway hostname did not resolve.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unresolved: Option<String>,
}

/// A remote east-west gateway.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Gateway {
    #[serde(default)]
    pub address: String,
    #[serde(default = "default_gateway_port")]
    pub port: u16,
}

impl Default for Gateway {
    fn default() -> Self {
        Gateway {
            address: String::new(),
            port: default_gateway_port(),
        }
    }
}

impl Gateway {
    /// No address given (a native-model remote on this network).
    pub fn is_unset(&self) -> bool {
        self.address.is_empty()
    }
}

/// Which namespaces and gateways the rules look at.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scope {
    #[serde(default = "default_excluded")]
    pub exclude_namespaces: Vec<String>,
    #[serde(default = "default_gateway_namespaces")]
    pub gateway_namespaces: Vec<String>,
    #[serde(default = "default_gateway_selector")]
    pub gateway_selector: BTreeMap<String, String>,
    /// Istio's root namespace (meshConfig.rootNamespace): its DestinationRules apply to every
    /// client, its selector-less AuthorizationPolicies to every workload.
    #[serde(default = "default_root_namespace")]
    pub root_namespace: String,
}

impl Default for Scope {
    fn default() -> Self {
        Self {
            exclude_namespaces: default_excluded(),
            gateway_namespaces: default_gateway_namespaces(),
            gateway_selector: default_gateway_selector(),
            root_namespace: default_root_namespace(),
        }
    }
}

/// AuthorizationPolicy defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Authorization {
    /// Sources (Istio `Source` objects, e.g. `{namespaces: [istio-system]}`) that FG301 adds,
    /// when configured to mutate, besides the policy namespace's own principals in every
    /// trust domain. Empty: the gateway namespaces.
    #[serde(default)]
    pub default_sources: Vec<Value>,
}

/// The outlier detection FG101 injects; field names and formats are Istio's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutlierDetection {
    #[serde(
        rename = "consecutive5xxErrors",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub consecutive_5xx_errors: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_errors: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_local_origin_failures: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_external_local_origin_errors: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_health_percent: Option<u32>,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        Self {
            consecutive_5xx_errors: Some(5),
            consecutive_gateway_errors: Some(5),
            consecutive_local_origin_failures: None,
            split_external_local_origin_errors: None,
            interval: Some("10s".into()),
            base_ejection_time: Some("30s".into()),
            max_ejection_percent: Some(100),
            min_health_percent: None,
        }
    }
}

impl OutlierDetection {
    /// The block as Istio JSON, ready to be inserted into a DestinationRule.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| Value::Object(Default::default()))
    }
}

/// Facts derived from the configuration that rules look up on every request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Topology {
    /// Every region of this cluster and the remotes.
    pub regions: BTreeSet<String>,
    /// Zone name to its region, to say "that is a zone of region X".
    pub zones: BTreeMap<String, String>,
    /// Every configured locality (this cluster's and the remotes').
    pub localities: Vec<Locality>,
    /// Remote index by gateway address.
    pub remote_by_address: HashMap<String, usize>,
    /// Ports on which an endpoint is a gateway endpoint (15443 and every configured port).
    pub gateway_ports: BTreeSet<u16>,
    /// Trust domains of this cluster, its aliases and the remotes.
    pub trust_domains: BTreeSet<String>,
    /// What applying the mesh config changed in this file's values (said as warnings).
    pub mesh_notes: Vec<String>,
    /// `outlierDetection` as FG101 injects it, built once rather than on every fix.
    pub outlier_detection: Value,
    /// Unique to this derivation: what was computed under one configuration (FG601's
    /// remembered simulations) is never reused under another. A configuration is not changed
    /// after it is loaded; a changed one (`with_discovered`, a reload) is derived again.
    pub generation: u64,
}

fn default_trust_domain() -> String {
    "cluster.local".into()
}
fn default_cluster_domain() -> String {
    "svc.cluster.local".into()
}
fn default_gateway_port() -> u16 {
    15443
}
fn default_excluded() -> Vec<String> {
    ["kube-system", "kube-public", "kube-node-lease"]
        .map(String::from)
        .to_vec()
}
fn default_gateway_namespaces() -> Vec<String> {
    vec!["istio-system".into()]
}
fn default_root_namespace() -> String {
    "istio-system".into()
}
fn default_gateway_selector() -> BTreeMap<String, String> {
    BTreeMap::from([("istio".into(), "eastwestgateway".into())])
}

impl Config {
    /// Parses and validates configuration text; `origin` names it in errors. The rule IDs and
    /// modes under `rules` are checked against the catalog by `engine::parse_config`, the
    /// entry point every loader uses (the catalog sits above this module).
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let mut config: Config = serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                origin: origin.to_owned(),
                problems,
            });
        }
        config.topology = config.derive_topology();
        Ok(config)
    }

    /// The example configuration; it is tested to be valid.
    pub fn example() -> Self {
        match Self::from_yaml(EXAMPLE, "example") {
            Ok(config) => config,
            // The example is compiled in and covered by a unit test.
            Err(e) => panic!("the built-in example config is invalid: {e}"),
        }
    }

    /// The mode configured for a rule; `None` runs the rule's natural behaviour (its
    /// default): fix what it can fix, and give everything else the severity the rule assigns
    /// (FG103 rewrites consecutiveErrors but denies inert detection); a rule whose default is
    /// `warn` fixes nothing unless configured to `mutate` (FG301).
    pub fn mode(&self, rule_id: &str) -> Option<Mode> {
        self.rules.get(rule_id).copied()
    }

    /// Whether objects in this namespace are looked at at all.
    pub fn in_scope(&self, namespace: &str) -> bool {
        !self.scope.exclude_namespaces.iter().any(|n| n == namespace)
    }

    /// Whether objects in this namespace can receive failover traffic from remote clusters.
    pub fn in_failover_scope(&self, namespace: &str) -> bool {
        !self.remotes.is_empty() && self.in_scope(namespace)
    }

    /// This configuration with what discovery saw: a typed remote keeps every field it sets
    /// and gains the discovered Services (presence and ready endpoints); a discovered remote
    /// without a typed entry is added when its gateway address and locality are known.
    pub fn with_discovered(&self, discovered: &[DiscoveredRemote]) -> Config {
        let mut config = self.clone();
        for found in discovered {
            let services = Some(std::sync::Arc::new(found.services.clone()));
            if let Some(typed) = config.remotes.iter_mut().find(|r| r.name == found.name) {
                typed.services = services;
                typed.workloads.clone_from(&found.workloads);
                if found.gateway.as_ref() == Some(&typed.gateway) {
                    typed.resolved = found.resolved.clone();
                }
                continue;
            }
            let (Some(gateway), Some(locality)) = (&found.gateway, &found.locality) else {
                continue;
            };
            config.remotes.push(Remote {
                name: found.name.clone(),
                network: found.network.clone().unwrap_or_default(),
                trust_domain: config.cluster.trust_domain.clone(),
                locality: locality.clone(),
                gateway: gateway.clone(),
                weight: None,
                services,
                resolved: found.resolved.clone(),
                workloads: found.workloads.clone(),
            });
        }
        config.topology = config.derive_topology();
        config
    }

    /// What the rules judge by, in one line: the Istio version and the multicluster model.
    pub fn judged_by(&self) -> String {
        format!(
            "judged as Istio {}, multicluster model {}",
            self.istio.version.min(crate::istio::version::PINNED),
            self.multicluster.describe()
        )
    }

    /// Which mesh config is in force, in one line.
    pub fn mesh_source(&self) -> String {
        match self.mesh.origin() {
            Some(origin) => format!("mesh config: {origin}"),
            None => "mesh config: none given, Istio's defaults (locality load balancing on, rootNamespace istio-system, exportTo *)".to_owned(),
        }
    }

    /// This configuration under a mesh config: what the mesh config sets (root namespace,
    /// trust domain and its aliases) is in force over this file's values, since pilot reads
    /// the mesh config; where the two disagree, [`Config::warnings`] says so.
    pub fn with_mesh(&self, mesh: crate::istio::mesh::MeshConfig) -> Config {
        let mut config = self.clone();
        let mut notes = Vec::new();
        if let Some(root) = mesh.root_namespace()
            && root != config.scope.root_namespace
        {
            notes.push(format!(
                "scope.rootNamespace is {} but the mesh config's rootNamespace is {root}: using {root}",
                config.scope.root_namespace
            ));
            config.scope.root_namespace = root.to_owned();
        }
        if let Some(domain) = mesh.trust_domain()
            && domain != config.cluster.trust_domain
        {
            notes.push(format!(
                "cluster.trustDomain is {} but the mesh config's trustDomain is {domain}: using {domain}",
                config.cluster.trust_domain
            ));
            config.cluster.trust_domain = domain.to_owned();
        }
        for alias in mesh.trust_domain_aliases() {
            if !config.cluster.trust_domain_aliases.contains(&alias) {
                config.cluster.trust_domain_aliases.push(alias);
            }
        }
        config.mesh = std::sync::Arc::new(mesh);
        config.topology = config.derive_topology();
        config.topology.mesh_notes = notes;
        config
    }

    /// The configured remote whose gateway has this address.
    pub fn remote_at(&self, address: &str) -> Option<&Remote> {
        self.topology
            .remote_by_address
            .get(address)
            .and_then(|&i| self.remotes.get(i))
    }

    /// Whether this cluster's clients accept certificates of a trust domain: its own, or one
    /// of `cluster.trustDomainAliases` (pilot verifies a peer's SPIFFE identity against the
    /// mesh's trust domain expanded with meshConfig.trustDomainAliases:
    /// pkg/spiffe ExpandWithTrustDomains).
    pub fn trusts(&self, trust_domain: &str) -> bool {
        trust_domain == self.cluster.trust_domain
            || self
                .cluster
                .trust_domain_aliases
                .iter()
                .any(|a| a == trust_domain)
    }

    /// What is valid but will not work: said once when the configuration loads.
    pub fn warnings(&self) -> Vec<String> {
        let mesh = self.topology.mesh_notes.iter().cloned();
        let zone_aware = self.mesh.zone_aware().then(|| {
            "the mesh config sets zoneAwareLbSetting, which pilot prefers to localityLbSetting mesh-wide; failover-guard does not model zone-aware routing, so its simulations of hosts without a DestinationRule locality setting do not reflect it".to_owned()
        });
        let version = self.istio.version.newer_than_pinned().then(|| {
            format!(
                "istio.version {} is newer than the model knows; judged as Istio {}",
                self.istio.version,
                crate::istio::version::PINNED
            )
        });
        mesh.chain(zone_aware).chain(version).chain(self.remotes
            .iter()
            .enumerate()
            .filter(|(_, r)| !self.trusts(&r.trust_domain))
            .map(|(i, r)| {
                format!(
                    "remotes[{i}] ({}) has trust domain {:?}, which is neither this cluster's ({:?}) nor in cluster.trustDomainAliases: clients here reject its workloads' certificates, so failover to it fails; add it to cluster.trustDomainAliases and to meshConfig.trustDomainAliases",
                    r.name, r.trust_domain, self.cluster.trust_domain
                )
            }))
            .collect()
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.cluster.name.trim().is_empty() {
            problems.push("cluster.name is empty".into());
        }
        if self.cluster.network.trim().is_empty() {
            problems.push("cluster.network is empty".into());
        }
        if self.cluster.trust_domain.trim().is_empty() {
            problems.push("cluster.trustDomain is empty".into());
        }
        if !self.cluster.cluster_domain.starts_with("svc.") {
            problems.push(format!(
                "cluster.clusterDomain {:?} must look like svc.<domain> (e.g. svc.cluster.local)",
                self.cluster.cluster_domain
            ));
        }
        for (i, locality) in self.cluster.localities.iter().enumerate() {
            if let Err(e) = Locality::parse(locality) {
                problems.push(format!("cluster.localities[{i}] {locality:?} {e}"));
            }
        }
        {
            use crate::istio::multicluster::Model;
            match (self.multicluster.model, self.multicluster.role) {
                (Model::PrimaryRemote, None) => problems.push(
                    "multicluster.model is primaryRemote but multicluster.role is not set (primary or remote)".into(),
                ),
                (Model::ServiceEntries | Model::MultiPrimary, Some(_)) => problems.push(format!(
                    "multicluster.role is set but multicluster.model is {}; a role belongs to primaryRemote only",
                    self.multicluster.model
                )),
                _ => {}
            }
        }
        match self.discovery.source {
            DiscoverySource::Kubeconfigs if self.discovery.kubeconfigs.is_empty() => problems
                .push("discovery.source is kubeconfigs but discovery.kubeconfigs is empty".into()),
            DiscoverySource::None | DiscoverySource::IstioSecrets
                if !self.discovery.kubeconfigs.is_empty() =>
            {
                problems.push(
                    "discovery.kubeconfigs is set but discovery.source is not kubeconfigs".into(),
                )
            }
            _ => {}
        }
        let mut names = BTreeSet::from([self.cluster.name.as_str()]);
        let mut addresses = BTreeSet::new();
        for (i, remote) in self.remotes.iter().enumerate() {
            let at = format!("remotes[{i}]");
            if remote.name.trim().is_empty() {
                problems.push(format!("{at}.name is empty"));
            } else if !names.insert(remote.name.as_str()) {
                problems.push(format!(
                    "{at}.name {:?} is used twice (cluster names must be unique)",
                    remote.name
                ));
            }
            if remote.network.trim().is_empty() {
                problems.push(format!("{at}.network is empty"));
            }
            if let Err(e) = Locality::parse(&remote.locality) {
                problems.push(format!("{at}.locality {:?} {e}", remote.locality));
            }
            if remote.gateway.is_unset() && self.multicluster.native() {
                // istiod reaches a remote of a native model on its own.
            } else if remote.gateway.is_unset() {
                problems.push(format!(
                    "{at}.gateway.address is required with multicluster.model serviceEntries (failover entries list it as their endpoint)"
                ));
            } else if remote.gateway.address.parse::<IpAddr>().is_err()
                && !self.multicluster.native()
            {
                // In the native models istiod reads the gateway itself and resolves a hostname
                // (RESOLVE_HOSTNAME_GATEWAYS, an AWS NLB's); only a failover entry needs an IP.
                problems.push(format!(
                    "{at}.gateway.address {:?} is not an IP address (Istio drops non-IP endpoints of a STATIC ServiceEntry)",
                    remote.gateway.address
                ));
            } else if !addresses.insert(remote.gateway.address.as_str()) {
                problems.push(format!(
                    "{at}.gateway.address {} is used by two remotes",
                    remote.gateway.address
                ));
            }
            if remote.gateway.port == 0 {
                problems.push(format!("{at}.gateway.port must be 1-65535"));
            }
            if remote.weight == Some(0) {
                problems.push(format!("{at}.weight must be at least 1"));
            }
        }
        let od = &self.outlier_detection;
        for (field, value) in [
            ("interval", &od.interval),
            ("baseEjectionTime", &od.base_ejection_time),
        ] {
            if let Some(v) = value.as_ref().filter(|v| !is_duration(v)) {
                problems.push(format!(
                    "outlierDetection.{field} {v:?} is not a duration like 10s, 500ms or 1m"
                ));
            }
        }
        for (field, value) in [
            ("maxEjectionPercent", od.max_ejection_percent),
            ("minHealthPercent", od.min_health_percent),
        ] {
            if value.is_some_and(|v| v > 100) {
                problems.push(format!("outlierDetection.{field} must be 0-100"));
            }
        }
        // What Istio's validation refuses (pkg/config/validation validateOutlierDetection)
        // and what applyOutlierDetection turns into a detector that never ejects.
        if od.consecutive_local_origin_failures.unwrap_or(0) > 0
            && od.split_external_local_origin_errors != Some(true)
        {
            problems.push(
                "outlierDetection.consecutiveLocalOriginFailures needs splitExternalLocalOriginErrors: true (Istio rejects it otherwise)".into(),
            );
        }
        if od.consecutive_5xx_errors == Some(0)
            && od.consecutive_gateway_errors.unwrap_or(0) == 0
            && od.split_external_local_origin_errors != Some(true)
        {
            problems.push(
                "outlierDetection can never eject: consecutive5xxErrors is 0 and no gateway or local-origin errors are counted".into(),
            );
        }
        problems
    }

    fn derive_topology(&self) -> Topology {
        static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let mut topology = Topology {
            generation: GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            mesh_notes: self.topology.mesh_notes.clone(),
            ..Topology::default()
        };
        let all = self
            .cluster
            .localities
            .iter()
            .chain(self.remotes.iter().map(|r| &r.locality));
        for text in all {
            if let Ok(locality) = Locality::parse(text) {
                topology.regions.insert(locality.region.clone());
                if let Some(zone) = &locality.zone {
                    topology.zones.insert(zone.clone(), locality.region.clone());
                }
                topology.localities.push(locality);
            }
        }
        topology.gateway_ports.insert(15443);
        topology.outlier_detection = self.outlier_detection.to_json();
        for (i, remote) in self.remotes.iter().enumerate() {
            if !remote.gateway.is_unset() {
                topology
                    .remote_by_address
                    .insert(remote.gateway.address.clone(), i);
            }
            for address in &remote.resolved {
                topology.remote_by_address.insert(address.clone(), i);
            }
            topology.gateway_ports.insert(remote.gateway.port);
            topology.trust_domains.insert(remote.trust_domain.clone());
        }
        topology
            .trust_domains
            .insert(self.cluster.trust_domain.clone());
        topology
            .trust_domains
            .extend(self.cluster.trust_domain_aliases.iter().cloned());
        topology
    }
}

/// Istio's protobuf duration format as accepted in YAML: a number and a unit (h, m, s, ms).
pub fn is_duration(text: &str) -> bool {
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    !number.is_empty()
        && number.parse::<f64>().is_ok()
        && matches!(unit, "h" | "m" | "s" | "ms" | "us" | "ns")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A remote in a trust domain this cluster does not trust is said when the config loads,
    /// until it is an alias.
    #[test]
    fn an_untrusted_remote_trust_domain_is_a_load_warning() {
        let mut config = Config::example();
        assert!(config.warnings().is_empty());
        config.remotes[0].trust_domain = "cluster-b.example".into();
        let warnings = config.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("remotes[0] (cluster-b) has trust domain \"cluster-b.example\"")
        );
        config
            .cluster
            .trust_domain_aliases
            .push("cluster-b.example".into());
        assert!(config.warnings().is_empty());
    }

    #[test]
    fn example_config_is_valid() {
        let config = Config::example();
        assert!(!config.remotes.is_empty());
        assert!(config.topology.regions.contains("europe-west4"));
        assert!(config.topology.gateway_ports.contains(&15443));
    }

    #[test]
    fn discovery_settings_are_checked() {
        let base = "cluster: {name: a, network: n}\n";
        let err = |extra: &str| {
            Config::from_yaml(&format!("{base}{extra}"), "t")
                .map(|_| String::new())
                .unwrap_or_else(|e| e.to_string())
        };
        assert!(
            err("discovery: {source: kubeconfigs}\n").contains("discovery.kubeconfigs is empty")
        );
        assert!(
            err("discovery: {kubeconfigs: {b: /x}}\n")
                .contains("discovery.source is not kubeconfigs")
        );
        assert!(err("discovery: {source: everywhere}\n").contains("unknown variant"));
        assert!(err("discovery: {sourc: istio-secrets}\n").contains("sourc"));
        let config = Config::from_yaml(
            &format!("{base}discovery: {{source: istio-secrets}}\n"),
            "t",
        )
        .unwrap();
        assert_eq!(config.discovery.source, DiscoverySource::IstioSecrets);
        assert_eq!(config.discovery.secret_namespace, "istio-system");
        // Without remotes, nothing is in failover scope until discovery adds one.
        assert!(!config.in_failover_scope("bookinfo"));
        let merged = config.with_discovered(&[DiscoveredRemote {
            name: "b".into(),
            gateway: Some(Gateway {
                address: "198.51.100.20".into(),
                port: 15443,
            }),
            network: Some("nb".into()),
            locality: Some("r/z".into()),
            services: BTreeMap::new(),
            ..DiscoveredRemote::default()
        }]);
        assert!(merged.in_failover_scope("bookinfo"));
        assert_eq!(
            merged.remote_at("198.51.100.20").map(|r| r.name.as_str()),
            Some("b")
        );
        // The example's typed remote keeps its own fields and gains the discovered Services.
        let typed = Config::example().with_discovered(&[DiscoveredRemote {
            name: "cluster-b".into(),
            gateway: Some(Gateway {
                address: "198.51.100.99".into(),
                port: 443,
            }),
            services: BTreeMap::from([("ns/svc".to_owned(), 2)]),
            ..DiscoveredRemote::default()
        }]);
        assert_eq!(typed.remotes.len(), 1);
        assert_eq!(typed.remotes[0].gateway.address, "203.0.113.10");
        assert_eq!(typed.remotes[0].ready_endpoints("ns", "svc"), Some(2));
        assert_eq!(typed.remotes[0].ready_endpoints("ns", "other"), Some(0));
        assert_eq!(
            Config::example().remotes[0].ready_endpoints("ns", "svc"),
            None
        );
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let text = "cluster:\n  name: a\n  network: n\n  netwrok: x\n";
        let err = Config::from_yaml(text, "test.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("netwrok"), "{err}");
        assert!(err.contains("line 4"), "{err}");
    }

    #[test]
    fn a_hostname_gateway_is_istiods_to_resolve_in_the_native_models() {
        let text = |model: &str| {
            format!(
                "cluster: {{name: a, network: n1, localities: [eu/w]}}\nremotes: [{{name: b, network: n2, locality: us/e, gateway: {{address: gw.elb.example.com, port: 15443}}}}]\nmulticluster: {{model: {model}}}\n"
            )
        };
        assert!(Config::from_yaml(&text("multiPrimary"), "t").is_ok());
        let err = Config::from_yaml(&text("serviceEntries"), "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not an IP address"), "{err}");
    }

    #[test]
    fn topology_problems_are_all_reported() {
        let text = r#"
cluster: {name: a, network: n, localities: ["eu/*"]}
remotes:
  - {name: a, network: m, locality: "eu.west", gateway: {address: "gw.example.com"}}
  - {name: b, network: "", locality: "eu/w/x/y", gateway: {address: "10.0.0.1", port: 0}, weight: 0}
outlierDetection: {interval: soon, maxEjectionPercent: 101, consecutive5xxErrors: 0, consecutiveLocalOriginFailures: 3}
"#;
        let ConfigError::Invalid { problems, .. } = Config::from_yaml(text, "t").unwrap_err()
        else {
            panic!("expected Invalid");
        };
        let all = problems.join("\n");
        for needle in [
            "cluster.localities[0]",
            "used twice",
            "remotes[0].locality",
            "not an IP address",
            "remotes[1].network is empty",
            "segments",
            "gateway.port",
            "weight",
            "interval",
            "maxEjectionPercent",
            "needs splitExternalLocalOriginErrors",
            "can never eject",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
    }

    #[test]
    fn durations() {
        assert!(is_duration("10s"));
        assert!(is_duration("1.5m"));
        assert!(is_duration("100ms"));
        assert!(!is_duration("10"));
        assert!(!is_duration("s"));
        assert!(!is_duration("10 s"));
    }
}
