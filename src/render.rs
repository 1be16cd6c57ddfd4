//! `failover-guard render`: the failover objects of one Service, for GitOps repositories.
//!
//! From a Service it builds the failover ServiceEntry (the Service's host and port names, every
//! port to the remote gateway port, one endpoint per remote with locality, network, weight and
//! the mTLS label), a DestinationRule with outlier detection, and, when the namespace has no
//! AuthorizationPolicy yet, a namespace default that admits the namespace's own principals in
//! every configured trust domain plus `authorization.defaultSources`. The objects are skeletons
//! that the engine's own rules complete (FG208 the endpoints, FG101 the outlier detection), so
//! what `render` prints is exactly what the webhook would store, and passes `check` clean.
//! Pure: the caller reads the Service (manifests or the live cluster).

use serde_json::{Value, json};

use crate::{
    config::Config,
    engine,
    object::{FAILOVER_ANNOTATION, Kind, Subject, array_at, str_at},
    rules::{Context, authorization_policy::default_sources},
    world::World,
};

/// What `render` could not do.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("Service {namespace}/{name} not found")]
    NoService { namespace: String, name: String },
    #[error("Service {namespace}/{name} has no ports")]
    NoPorts { namespace: String, name: String },
    #[error("no remote cluster is configured or discovered: there is nothing to fail over to")]
    NoRemotes,
}

/// The protocol Istio infers for a Service port (pilot/pkg/serviceregistry/kube
/// ConvertProtocol): `appProtocol` first, then the port name's prefix (`http-`, `grpc-`...),
/// else TCP.
fn protocol(port: &Value) -> &'static str {
    let known = |p: &str| -> Option<&'static str> {
        Some(match p.to_ascii_lowercase().as_str() {
            "http" => "HTTP",
            "http2" | "h2c" | "kubernetes.io/h2c" => "HTTP2",
            "grpc" | "grpc-web" => "GRPC",
            "https" => "HTTPS",
            "tls" => "TLS",
            "tcp" => "TCP",
            "mongo" => "Mongo",
            "redis" => "Redis",
            "mysql" => "MySQL",
            _ => return None,
        })
    };
    if let Some(p) = str_at(port, &["appProtocol"]).and_then(known) {
        return p;
    }
    let name = str_at(port, &["name"]).unwrap_or("");
    known(name.split('-').next().unwrap_or(name)).unwrap_or("TCP")
}

/// Renders the failover objects of `service`; `policies` are the namespace's existing
/// AuthorizationPolicies (a default is rendered only when there is none).
pub fn render(
    service: &Value,
    policies: &[Value],
    config: &Config,
    world: Option<&dyn World>,
) -> Result<Vec<Value>, RenderError> {
    let name = str_at(service, &["metadata", "name"]).unwrap_or("");
    let namespace = str_at(service, &["metadata", "namespace"]).unwrap_or("default");
    if config.remotes.is_empty() {
        return Err(RenderError::NoRemotes);
    }
    let ports: Vec<Value> = array_at(service, &["spec", "ports"])
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let number = p.get("port")?.as_u64()?;
            // Entry ports merge into the Service's by name: keep the Service's names.
            let port_name = str_at(p, &["name"])
                .map(str::to_owned)
                .unwrap_or_else(|| format!("port-{i}"));
            Some(json!({"number": number, "name": port_name, "protocol": protocol(p)}))
        })
        .collect();
    if ports.is_empty() {
        return Err(RenderError::NoPorts {
            namespace: namespace.into(),
            name: name.into(),
        });
    }
    let host = crate::istio::service_host(name, namespace, &config.cluster.cluster_domain);
    let mut entry = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": format!("{name}-failover"), "namespace": namespace,
            "annotations": {FAILOVER_ANNOTATION: "true"}},
        "spec": {
            "hosts": [host],
            "location": "MESH_INTERNAL",
            "resolution": "STATIC",
            "ports": ports,
        }
    });
    let mut rule = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"host": host, "trafficPolicy": {}}
    });
    engine::evaluate(&mut entry, config, world, namespace, engine::Pass::Mutate);
    engine::evaluate(&mut rule, config, world, namespace, engine::Pass::Mutate);
    let mut out = vec![entry, rule];
    let has_policy = policies.iter().any(|p| {
        Kind::of(p) == Some(Kind::AuthorizationPolicy)
            && str_at(p, &["metadata", "namespace"]).unwrap_or("default") == namespace
    });
    if !has_policy {
        out.push(default_policy(namespace, config, world));
    }
    Ok(out)
}

/// The name of the namespace default AuthorizationPolicy failover-guard renders.
pub const DEFAULT_POLICY: &str = "failover-guard-default";

/// A namespace's default AuthorizationPolicy: ALLOW from the namespace's own principals in
/// every configured trust domain and `authorization.defaultSources` (FG301's sources), so that
/// an east-west gateway serving `*.svc.cluster.local` does not open the namespace to every
/// workload of every cluster sharing the root CA.
pub fn default_policy(namespace: &str, config: &Config, world: Option<&dyn World>) -> Value {
    let subject = Subject {
        kind: Kind::AuthorizationPolicy,
        namespace: namespace.to_owned(),
        name: DEFAULT_POLICY.into(),
    };
    let cx = Context::new(config, world, &subject);
    json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": DEFAULT_POLICY, "namespace": namespace},
        "spec": {"action": "ALLOW", "rules": [{"from": default_sources(&cx)}]}
    })
}

/// Finds a Service among objects.
pub fn find_service<'a>(objects: &'a [Value], namespace: &str, name: &str) -> Option<&'a Value> {
    objects.iter().find(|o| {
        Kind::of(o) == Some(Kind::Service)
            && str_at(o, &["metadata", "name"]) == Some(name)
            && str_at(o, &["metadata", "namespace"]).unwrap_or("default") == namespace
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DiscoveredRemote;

    fn reviews() -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews", "namespace": "bookinfo"},
            "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080}, {"name": "grpc-admin", "port": 9090}, {"port": 7000, "appProtocol": "http2"}]}})
    }

    #[test]
    fn renders_entry_rule_and_namespace_default() {
        let config = Config::example().with_discovered(&[DiscoveredRemote {
            name: "cluster-b".into(),
            services: [("bookinfo/reviews".to_owned(), 3)].into(),
            ..DiscoveredRemote::default()
        }]);
        let out = render(&reviews(), &[], &config, None).unwrap();
        assert_eq!(out.len(), 3);
        let entry = &out[0];
        assert_eq!(
            entry["spec"]["hosts"],
            json!(["reviews.bookinfo.svc.cluster.local"])
        );
        assert_eq!(
            entry["spec"]["ports"],
            json!([{"number": 9080, "name": "http", "protocol": "HTTP"},
                   {"number": 9090, "name": "grpc-admin", "protocol": "GRPC"},
                   {"number": 7000, "name": "port-2", "protocol": "HTTP2"}])
        );
        let endpoint = &entry["spec"]["endpoints"][0];
        assert_eq!(endpoint["address"], "203.0.113.10");
        assert_eq!(
            endpoint["ports"],
            json!({"http": 15443, "grpc-admin": 15443, "port-2": 15443})
        );
        assert_eq!(endpoint["weight"], 3);
        assert_eq!(endpoint["labels"]["security.istio.io/tlsMode"], "istio");
        assert_eq!(
            out[1]["spec"]["trafficPolicy"]["outlierDetection"]["maxEjectionPercent"],
            100
        );
        assert_eq!(
            out[2]["spec"]["rules"][0]["from"][0]["source"]["principals"],
            json!(["cluster.local/ns/bookinfo/sa/*"])
        );
        // What render prints is already what the webhook stores: a second pass changes nothing.
        for object in &out {
            let mut again = object.clone();
            let evaluation =
                engine::evaluate(&mut again, &config, None, "bookinfo", engine::Pass::Mutate);
            assert!(evaluation.applied.is_empty(), "{object}");
        }
    }

    #[test]
    fn no_default_policy_when_the_namespace_has_one_and_no_remotes_is_an_error() {
        let policy = json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "mine", "namespace": "bookinfo"}, "spec": {}});
        let out = render(&reviews(), &[policy], &Config::example(), None).unwrap();
        assert_eq!(out.len(), 2);
        let mut config = Config::example();
        config.remotes.clear();
        assert!(matches!(
            render(&reviews(), &[], &config, None),
            Err(RenderError::NoRemotes)
        ));
    }
}
