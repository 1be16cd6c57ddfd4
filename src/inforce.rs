//! Which configuration is in force, in one place: the configuration file (with the server's
//! own namespace exclusions), the mesh config pilot runs with, and the remotes discovery
//! found. The webhook, `--reconcile` and the PolicyReport loop all read [`InForce::current`],
//! so they never judge by different configurations.
//!
//! Also where configuration files are read (`load_file`, `load_mesh_file`): the engine below
//! only parses text.

use std::{path::Path, sync::Arc};

use arc_swap::ArcSwap;

use crate::{
    config::{Config, ConfigError},
    istio::mesh::{MeshConfig, MeshConfigError},
    remotes::Remotes,
};

/// The configuration in force and its three sources.
pub struct InForce {
    /// The configuration file as loaded, with the namespace exclusions applied (what
    /// discovery reads its settings from).
    file: Arc<ArcSwap<Config>>,
    /// The mesh config (the `istio` ConfigMap's, a `--mesh-config` file, or Istio's defaults).
    mesh: ArcSwap<MeshConfig>,
    /// Remote discovery, when configured.
    remotes: Option<Arc<Remotes>>,
    /// file + mesh + discovered remotes: what every reader uses.
    current: ArcSwap<Config>,
}

impl InForce {
    /// A configuration in force from its file and mesh config, without discovery.
    pub fn new(file: Config, mesh: MeshConfig) -> Self {
        let current = file.with_mesh(mesh.clone());
        InForce {
            file: Arc::new(ArcSwap::from_pointee(file)),
            mesh: ArcSwap::from_pointee(mesh),
            remotes: None,
            current: ArcSwap::from_pointee(current),
        }
    }

    /// With remote discovery: what it finds is merged in on every [`InForce::refresh`].
    pub fn with_remotes(mut self, remotes: Arc<Remotes>) -> Self {
        self.remotes = Some(remotes);
        self.refresh();
        self
    }

    /// The configuration every reader uses (cheap: an atomic load).
    pub fn current(&self) -> Arc<Config> {
        self.current.load_full()
    }

    /// The same, borrowed for the span of one request.
    pub fn load(&self) -> arc_swap::Guard<Arc<Config>> {
        self.current.load()
    }

    /// The configuration file as loaded (discovery's own settings come from it).
    pub fn file(&self) -> Arc<ArcSwap<Config>> {
        self.file.clone()
    }

    /// The mesh config in force.
    pub fn mesh(&self) -> Arc<MeshConfig> {
        self.mesh.load_full()
    }

    pub fn remotes(&self) -> Option<&Arc<Remotes>> {
        self.remotes.as_ref()
    }

    /// What this cluster shows of its multicluster model: istiod's Service and the root
    /// namespace in the world, and the Istio remote secrets discovery reads.
    pub fn multicluster_evidence(
        &self,
        world: Option<&dyn crate::world::World>,
    ) -> crate::istio::multicluster::Evidence {
        use crate::object::Field as _;
        let config = self.current();
        let root = &config.scope.root_namespace;
        let istiod = world.and_then(|w| w.service(root, "istiod"));
        let namespace = world.and_then(|w| w.namespace(root));
        let meta = |key: &str, name: &str| {
            namespace
                .as_deref()
                .and_then(|n| n.path(&["metadata", key, name]))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        crate::istio::multicluster::Evidence {
            istiod_here: istiod.map(|svc| {
                svc.path(&["spec", "selector"])
                    .and_then(serde_json::Value::as_object)
                    .is_some_and(|s| !s.is_empty())
            }),
            control_plane_clusters: meta("annotations", "topology.istio.io/controlPlaneClusters"),
            remote_secrets: (config.discovery.source
                == crate::config::DiscoverySource::IstioSecrets)
                .then(|| self.remotes.as_ref().map_or(0, |r| r.statuses().len())),
            network: meta("labels", crate::istio::labels::NETWORK),
        }
    }

    /// The multicluster model in force and what the cluster shows, in one line (/readyz, log).
    pub fn multicluster_report(&self, world: Option<&dyn crate::world::World>) -> (String, bool) {
        let config = self.current();
        let evidence = self.multicluster_evidence(world);
        let found = crate::istio::multicluster::detect(&evidence);
        let agrees = found.agrees_with(config.multicluster.model, config.multicluster.role);
        let mut line = format!(
            "multicluster: config says {}; the cluster shows: {}",
            config.multicluster.describe(),
            found.because
        );
        if !agrees {
            line.push_str(" -- this differs from the config: check multicluster.model");
        }
        if let Some(network) = evidence.network.filter(|n| *n != config.cluster.network) {
            line.push_str(&format!(
                "; the root namespace's network label is {network} but cluster.network is {}",
                config.cluster.network
            ));
        }
        (line, agrees)
    }

    /// Takes a new configuration file.
    pub fn set_file(&self, file: Config) {
        self.file.store(Arc::new(file));
        self.refresh();
    }

    /// Takes a new mesh config.
    pub fn set_mesh(&self, mesh: MeshConfig) {
        self.mesh.store(Arc::new(mesh));
        self.refresh();
    }

    /// Recomputes the configuration in force from its sources.
    pub fn refresh(&self) {
        let with_mesh = self.file.load().with_mesh((**self.mesh.load()).clone());
        let current = match &self.remotes {
            Some(remotes) => with_mesh.with_discovered(&remotes.snapshot()),
            None => with_mesh,
        };
        self.current.store(Arc::new(current));
    }
}

/// Reads and validates a configuration file (rule IDs against the catalog, as
/// `engine::parse_config` does).
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    crate::engine::parse_config(&text, &path.display().to_string())
}

/// Reads a mesh config file: the `istio` ConfigMap as `kubectl get -o yaml` prints it, or a
/// bare MeshConfig.
pub fn load_mesh_file(path: &Path) -> Result<MeshConfig, MeshConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| MeshConfigError::Parse {
        origin: origin.clone(),
        message: e.to_string(),
    })?;
    MeshConfig::parse(&text, &origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mesh_config_and_the_file_meet_in_one_configuration() {
        let in_force = InForce::new(Config::example(), MeshConfig::default());
        assert_eq!(in_force.current().scope.root_namespace, "istio-system");
        in_force.set_mesh(MeshConfig::parse("rootNamespace: istio-config", "cm").unwrap());
        let current = in_force.current();
        assert_eq!(current.scope.root_namespace, "istio-config");
        assert_eq!(current.mesh.origin(), Some("cm"));
        assert!(
            current
                .warnings()
                .iter()
                .any(|w| w.contains("istio-config"))
        );
        // A new file keeps the mesh config.
        in_force.set_file(Config::example());
        assert_eq!(in_force.current().scope.root_namespace, "istio-config");
    }
}
