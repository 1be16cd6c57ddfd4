//! The command line (clap): `serve`, `certs`, `explain`, `check`, `mutate`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Makes Istio multi-cluster locality failover correct by construction: a Kubernetes
/// admission webhook and an offline checker for DestinationRules, ServiceEntries,
/// AuthorizationPolicies, Services and Gateways.
#[derive(Debug, Parser)]
#[command(name = "failover-guard", version, propagate_version = true)]
pub struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "FAILOVER_GUARD_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the admission webhook (TLS) and the probe/metrics listener (plain HTTP).
    Serve(ServeArgs),
    /// Generate a CA and a serving certificate for the webhook Service; print the caBundle.
    Certs(CertsArgs),
    /// Explain a rule: what it checks, the Istio behaviour behind it, an example.
    Explain(ExplainArgs),
    /// Check manifests offline; exit 1 on deny findings, 2 on unreadable input.
    Check(CheckArgs),
    /// Print manifests as the webhook would store them.
    Mutate(MutateArgs),
    /// Read the live cluster once and report every existing object that violates a rule
    /// (webhooks only see new writes); exit codes as `check`.
    Audit(AuditArgs),
    /// Print the failover ServiceEntry, a DestinationRule with outlier detection and, when the
    /// namespace has none, a default AuthorizationPolicy for one Service (YAML for GitOps).
    Render(RenderArgs),
    /// Show where traffic goes: the priority table Envoy gets per client, and what happens
    /// when a locality or cluster fails.
    Simulate(SimulateArgs),
}

/// Where cross-object (W) rules look up other objects in `serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorldMode {
    /// Watch the cluster when credentials are found (in-cluster, KUBECONFIG, ~/.kube/config);
    /// otherwise run without a world.
    Auto,
    /// Watch the cluster; fail to start without credentials.
    Cluster,
    /// No world: W rules stay silent.
    None,
    /// A fixed world read once from `--world-manifests`.
    Manifests,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Configuration file; the built-in example when absent.
    #[arg(long, env = "FAILOVER_GUARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Mesh config pilot runs with: the istio ConfigMap as `kubectl get cm istio -n
    /// istio-system -o yaml` prints it, or a bare MeshConfig; Istio's defaults when absent.
    #[arg(long, env = "FAILOVER_GUARD_MESH_CONFIG")]
    pub mesh_config: Option<PathBuf>,
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long)]
    pub context: Option<String>,
    /// Only this namespace (Namespaces are always read, for FG501).
    #[arg(long, short)]
    pub namespace: Option<String>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (reloaded when it changes).
    #[arg(long, env = "FAILOVER_GUARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Mesh config file (the istio ConfigMap as YAML, or a bare MeshConfig), read once,
    /// instead of watching the mesh ConfigMap.
    #[arg(long, env = "FAILOVER_GUARD_MESH_CONFIG")]
    pub mesh_config: Option<PathBuf>,
    /// The mesh ConfigMap to watch, NAMESPACE/NAME (a revisioned control plane reads
    /// istio-<revision>); `none` keeps Istio's defaults. Needs cluster credentials.
    #[arg(
        long,
        env = "FAILOVER_GUARD_MESH_CONFIGMAP",
        default_value = "istio-system/istio"
    )]
    pub mesh_configmap: String,
    /// Serving certificate (PEM, leaf first; a chain is accepted). Reloaded when it changes.
    #[arg(long, env = "FAILOVER_GUARD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Serving key (PEM).
    #[arg(long, env = "FAILOVER_GUARD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Admission listener (TLS).
    #[arg(long, env = "FAILOVER_GUARD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Probe and metrics listener (plain HTTP).
    #[arg(long, env = "FAILOVER_GUARD_PROBE_LISTEN")]
    pub probe_listen: Option<SocketAddr>,
    /// Development mode: self-signed certificates under certs/dev/ (created if missing), the
    /// example configuration unless --config is given, loopback addresses only.
    #[arg(long, env = "FAILOVER_GUARD_DEV")]
    pub dev: bool,
    /// Namespace the webhook runs in; always excluded from the rules.
    #[arg(long, env = "FAILOVER_GUARD_NAMESPACE")]
    pub namespace: Option<String>,
    /// How often certificate and configuration files are checked for changes.
    #[arg(long, env = "FAILOVER_GUARD_RELOAD_INTERVAL", value_parser = parse_duration, default_value = "2s")]
    pub reload_interval: Duration,
    /// After SIGTERM, keep serving (not ready) this long so the endpoint can be removed.
    #[arg(long, env = "FAILOVER_GUARD_SHUTDOWN_DELAY", value_parser = parse_duration, default_value = "0s")]
    pub shutdown_delay: Duration,
    /// Time in-flight requests get to finish on shutdown.
    #[arg(long, env = "FAILOVER_GUARD_GRACE_PERIOD", value_parser = parse_duration, default_value = "20s")]
    pub grace_period: Duration,
    /// Time a client gets for the TLS handshake and for sending request headers.
    #[arg(long, env = "FAILOVER_GUARD_HEADER_TIMEOUT", value_parser = parse_duration, default_value = "5s")]
    pub header_timeout: Duration,
    /// Admission reviews answered at once; more are shed with 503.
    #[arg(long, env = "FAILOVER_GUARD_MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,
    /// Keep a PolicyReport per namespace up to date in the cluster from the watch cache, every
    /// interval (opt-in; needs the PolicyReport CRDs and RBAC for policyreports).
    #[arg(long, env = "FAILOVER_GUARD_REPORT_INTERVAL", value_parser = parse_duration)]
    pub report_interval: Option<Duration>,
    /// Debug: write every admission request body into this folder.
    #[arg(long, env = "FAILOVER_GUARD_RECORD")]
    pub record: Option<PathBuf>,
    /// Where cross-object rules look up other objects [default: auto; none with --dev].
    #[arg(long, value_enum, env = "FAILOVER_GUARD_WORLD")]
    pub world: Option<WorldMode>,
    /// Kubeconfig for the world's watches (default: in-cluster, KUBECONFIG, ~/.kube/config).
    #[arg(long, env = "FAILOVER_GUARD_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Keep the failover entries failover-guard generated current when remote state changes
    /// (needs `discovery`; only namespaces labelled failover-guard.io/reconcile=true).
    #[arg(long, env = "FAILOVER_GUARD_RECONCILE")]
    pub reconcile: bool,
    /// With `--world manifests`: files or folders whose objects form a fixed world (local
    /// development without a cluster, and the load benchmark's 10,000-object world).
    #[arg(long = "world-manifests", env = "FAILOVER_GUARD_WORLD_MANIFESTS")]
    pub world_manifests: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Name of the webhook Service.
    #[arg(long, default_value = "failover-guard")]
    pub service: String,
    /// Namespace of the webhook Service.
    #[arg(long, default_value = "failover-guard")]
    pub namespace: String,
    /// Folder for ca.crt, ca.key, tls.crt and tls.key.
    #[arg(long)]
    pub out: PathBuf,
    /// Extra DNS names or IP addresses for the serving certificate.
    #[arg(long = "extra-name")]
    pub extra_names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Rule ID (FG101); without one, list every rule.
    pub rule: Option<String>,
    /// Print the rule table as Markdown (the README's table is generated from this).
    #[arg(long)]
    pub markdown: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    Sarif,
    /// wgpolicyk8s.io/v1alpha2 PolicyReports, one per namespace (YAML, for kubectl apply).
    Policyreport,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Configuration file; the built-in example when absent.
    #[arg(long, env = "FAILOVER_GUARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// A remote cluster's Services, EndpointSlices, Pods and Nodes, as istiod reads them
    /// through its remote secret in the native multicluster models: `NAME=PATH` (a remote of
    /// the config; a file or folder), repeatable. Without it such a remote's workloads are
    /// assumed (one ready pod per subset in its locality).
    #[arg(long = "remote", value_name = "NAME=PATH")]
    pub remotes: Vec<String>,
    /// Mesh config pilot runs with: the istio ConfigMap as `kubectl get cm istio -n
    /// istio-system -o yaml` prints it, or a bare MeshConfig; Istio's defaults when absent.
    #[arg(long, env = "FAILOVER_GUARD_MESH_CONFIG")]
    pub mesh_config: Option<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: OutputFormat,
    /// Files or folders (recursive: *.yaml, *.yml, *.json); `-` reads standard input.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Configuration file; the built-in example when absent.
    #[arg(long, env = "FAILOVER_GUARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Mesh config pilot runs with: the istio ConfigMap as `kubectl get cm istio -n
    /// istio-system -o yaml` prints it, or a bare MeshConfig; Istio's defaults when absent.
    #[arg(long, env = "FAILOVER_GUARD_MESH_CONFIG")]
    pub mesh_config: Option<PathBuf>,
    /// The Service's name.
    #[arg(long)]
    pub service: String,
    /// The Service's namespace.
    #[arg(long, short, default_value = "default")]
    pub namespace: String,
    /// Read the Service (and the namespace's policies, and the remotes when `discovery` is
    /// configured) from the live cluster instead of files.
    #[arg(long, conflicts_with = "paths")]
    pub cluster: bool,
    /// Kubeconfig for --cluster (default: KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Files or folders holding the Service; `-` reads standard input.
    #[arg(required_unless_present = "cluster")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Configuration file; the built-in example when absent.
    #[arg(long, env = "FAILOVER_GUARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// A remote cluster's Services, EndpointSlices, Pods and Nodes, as istiod reads them
    /// through its remote secret in the native multicluster models: `NAME=PATH` (a remote of
    /// the config; a file or folder), repeatable. Without it such a remote's workloads are
    /// assumed (one ready pod per subset in its locality).
    #[arg(long = "remote", value_name = "NAME=PATH")]
    pub remotes: Vec<String>,
    /// Mesh config pilot runs with: the istio ConfigMap as `kubectl get cm istio -n
    /// istio-system -o yaml` prints it, or a bare MeshConfig; Istio's defaults when absent.
    #[arg(long, env = "FAILOVER_GUARD_MESH_CONFIG")]
    pub mesh_config: Option<PathBuf>,
    /// Only these hosts (fully qualified); every Service and ServiceEntry host when absent.
    #[arg(long)]
    pub host: Vec<String>,
    /// Client localities; this cluster's configured localities when absent.
    #[arg(long = "from")]
    pub from: Vec<String>,
    /// Client namespace; each host's own namespace when absent.
    #[arg(long, short)]
    pub namespace: Option<String>,
    /// Eject the endpoints of a locality (region[/zone[/subzone]]) or a cluster (this one's
    /// name or a remote's) and show which priority then carries the traffic.
    #[arg(long)]
    pub fail: Vec<String>,
    /// Output format (text or json).
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: SimulateFormat,
    /// Read the live cluster once (like `audit`) instead of files.
    #[arg(long, conflicts_with = "paths")]
    pub cluster: bool,
    /// Kubeconfig file, with --cluster.
    #[arg(long, requires = "cluster")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context, with --cluster.
    #[arg(long, requires = "cluster")]
    pub context: Option<String>,
    /// Files or folders (recursive: *.yaml, *.yml, *.json); `-` reads standard input.
    #[arg(required_unless_present = "cluster")]
    pub paths: Vec<PathBuf>,
}

/// Output of `simulate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimulateFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct MutateArgs {
    /// Configuration file; the built-in example when absent.
    #[arg(long, env = "FAILOVER_GUARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Mesh config pilot runs with: the istio ConfigMap as `kubectl get cm istio -n
    /// istio-system -o yaml` prints it, or a bare MeshConfig; Istio's defaults when absent.
    #[arg(long, env = "FAILOVER_GUARD_MESH_CONFIG")]
    pub mesh_config: Option<PathBuf>,
    /// Print a diff of what changed instead of the documents.
    #[arg(long)]
    pub diff: bool,
    /// Files or folders (recursive: *.yaml, *.yml, *.json); `-` reads standard input.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Parses `250ms`, `5s`, `2m`, `1h` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 5s or 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("{text:?} has an unknown unit (use ms, s, m or h)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
    }
}
