//! The mesh config pilot runs with (the `mesh` key of the `istio` ConfigMap), and Istio's
//! defaults for what it leaves out (pkg/config/mesh/mesh.go DefaultMeshConfig, ApplyMeshConfig).
//!
//! Kept as the `serde_json::Value` it was read as, so fields this model does not know are
//! never lost; the accessors below are the only readers, one per field pilot consults for
//! locality load balancing and visibility.

use serde_json::Value;

use crate::object::Field as _;

/// Why a mesh config could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MeshConfigError {
    #[error("mesh config {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("mesh config {origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// A mesh config, or Istio's defaults when none was given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeshConfig {
    /// The MeshConfig fields as written (`{}` for the defaults).
    raw: Value,
    /// Where it came from (`None`: none was given, Istio's defaults are in force).
    origin: Option<String>,
}

/// The MeshConfig fields the model reads, so a typo in a key (`localityLBSetting`) is an
/// error and not a silently ignored setting. Others are kept and not looked at.
const KNOWN_TYPED: [&str; 9] = [
    "serviceScopeConfigs",
    "localityLbSetting",
    "zoneAwareLbSetting",
    "rootNamespace",
    "trustDomain",
    "trustDomainAliases",
    "enableAutoMtls",
    "defaultDestinationRuleExportTo",
    "defaultServiceExportTo",
];

impl MeshConfig {
    /// Reads a mesh config from text: the `istio` ConfigMap as `kubectl get cm istio -o yaml`
    /// prints it (its `data.mesh` holds the MeshConfig as YAML), or a bare MeshConfig.
    pub fn parse(text: &str, origin: &str) -> Result<Self, MeshConfigError> {
        let parse_err = |message: String| MeshConfigError::Parse {
            origin: origin.to_owned(),
            message,
        };
        let invalid = |message: String| MeshConfigError::Invalid {
            origin: origin.to_owned(),
            message,
        };
        let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        let raw = if doc.field("kind").and_then(Value::as_str) == Some("ConfigMap") {
            let Some(mesh) = doc.path(&["data", "mesh"]) else {
                return Err(invalid(
                    "the ConfigMap has no data.mesh (the istio ConfigMap keeps the MeshConfig there)"
                        .into(),
                ));
            };
            let Some(mesh) = mesh.as_str() else {
                return Err(invalid("data.mesh is not a string".into()));
            };
            if mesh.trim().is_empty() {
                Value::Object(Default::default())
            } else {
                serde_yaml_ng::from_str(mesh).map_err(|e| parse_err(format!("data.mesh: {e}")))?
            }
        } else {
            doc
        };
        let raw = match raw {
            Value::Null => Value::Object(Default::default()),
            Value::Object(_) => raw,
            _ => return Err(invalid("a MeshConfig is a map".into())),
        };
        let mesh = MeshConfig {
            raw,
            origin: Some(origin.to_owned()),
        };
        mesh.check().map_err(invalid)?;
        Ok(mesh)
    }

    /// Type checks of the fields the model reads, so a wrong value is said at load time.
    fn check(&self) -> Result<(), String> {
        for key in KNOWN_TYPED {
            let Some(value) = self.raw.field(key).filter(|v| !v.is_null()) else {
                continue;
            };
            let ok = match key {
                "localityLbSetting" | "zoneAwareLbSetting" => value.is_object(),
                "rootNamespace" | "trustDomain" => value.is_string(),
                "enableAutoMtls" => value.is_boolean(),
                "serviceScopeConfigs" => value
                    .as_array()
                    .is_some_and(|a| a.iter().all(Value::is_object)),
                _ => value
                    .as_array()
                    .is_some_and(|a| a.iter().all(Value::is_string)),
            };
            if !ok {
                return Err(format!("{key} has the wrong type"));
            }
        }
        if let Some(lb) = self.raw.field("localityLbSetting") {
            for (key, value) in lb.as_object().into_iter().flatten() {
                let ok = match key.as_str() {
                    "enabled" => value.is_boolean() || value.is_null(),
                    "distribute" | "failover" | "failoverPriority" => {
                        value.is_array() || value.is_null()
                    }
                    _ => return Err(format!("localityLbSetting has no field {key}")),
                };
                if !ok {
                    return Err(format!("localityLbSetting.{key} has the wrong type"));
                }
            }
        }
        Ok(())
    }

    /// Where this mesh config came from, or `None` for Istio's defaults.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// The fields as written.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    fn string(&self, key: &str) -> Option<&str> {
        self.raw
            .field(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    fn strings(&self, key: &str) -> Option<Vec<String>> {
        let list: Vec<String> = self
            .raw
            .field(key)?
            .as_array()?
            .iter()
            .filter_map(|v| Some(v.as_str()?.to_owned()))
            .collect();
        (!list.is_empty()).then_some(list)
    }

    /// The mesh-wide locality setting pilot falls back to when neither the DestinationRule
    /// nor the Service's traffic distribution sets one (loadbalancer.GetEffectiveLbSetting,
    /// `meshLocality`). `None`: locality load balancing is off mesh-wide
    /// (`enabled: false`). Default: `{enabled: true}` (DefaultMeshConfig).
    pub fn locality_lb_setting(&self) -> Option<&Value> {
        static DEFAULT: std::sync::LazyLock<Value> =
            std::sync::LazyLock::new(|| serde_json::json!({"enabled": true}));
        match self.raw.field("localityLbSetting").filter(|v| !v.is_null()) {
            Some(setting) if setting.field("enabled").and_then(Value::as_bool) == Some(false) => {
                None
            }
            Some(setting) => Some(setting),
            None => Some(&DEFAULT),
        }
    }

    /// Whether the mesh config turns locality load balancing off everywhere no
    /// DestinationRule or traffic distribution sets it.
    pub fn locality_lb_disabled(&self) -> bool {
        self.locality_lb_setting().is_none()
    }

    /// Whether the mesh sets `zoneAwareLbSetting`, which pilot prefers to the mesh's
    /// localityLbSetting (GetEffectiveLbSetting); the model does not simulate zone-aware
    /// routing, so callers say so instead of guessing.
    pub fn zone_aware(&self) -> bool {
        self.raw
            .field("zoneAwareLbSetting")
            .is_some_and(|v| !v.is_null())
    }

    /// `serviceScopeConfigs`: which services multi-network ambient makes global
    /// (services.go matchServiceScope); empty when not set.
    pub fn service_scope_configs(&self) -> &[Value] {
        self.raw
            .field("serviceScopeConfigs")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// The namespace whose exported DestinationRules apply to every namespace
    /// (PushContext.destinationRule step 4). Default `istio-system`.
    pub fn root_namespace(&self) -> Option<&str> {
        self.string("rootNamespace")
    }

    /// The trust domain, if the mesh config sets one (default `cluster.local`).
    pub fn trust_domain(&self) -> Option<&str> {
        self.string("trustDomain")
    }

    /// `trustDomainAliases`: identities from these domains are trusted as this mesh's.
    pub fn trust_domain_aliases(&self) -> Vec<String> {
        self.strings("trustDomainAliases").unwrap_or_default()
    }

    /// Whether sidecars send Istio mTLS on their own to endpoints labelled for it
    /// (`enableAutoMtls`, default true).
    pub fn auto_mtls(&self) -> bool {
        self.raw
            .field("enableAutoMtls")
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }

    /// Whether a DestinationRule without `exportTo` is visible only in its own namespace:
    /// the default list holds `.` (PushContext.setDestinationRules asks
    /// `exportToDefaults.destinationRule.Contains(visibility.Private)` and nothing else;
    /// default `*`).
    pub fn destination_rules_private_by_default(&self) -> bool {
        self.strings("defaultDestinationRuleExportTo")
            .is_some_and(|l| l.iter().any(|e| e == "."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_configmap_and_a_bare_mesh_config() {
        let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |-\n    rootNamespace: istio-config\n    localityLbSetting:\n      enabled: false\n";
        let mesh = MeshConfig::parse(cm, "cm.yaml").unwrap();
        assert_eq!(mesh.root_namespace(), Some("istio-config"));
        assert_eq!(mesh.locality_lb_setting(), None);
        let bare = MeshConfig::parse(
            "localityLbSetting: {failover: [{from: us-east, to: us-west}]}",
            "m",
        )
        .unwrap();
        assert_eq!(
            bare.locality_lb_setting(),
            Some(&json!({"failover": [{"from": "us-east", "to": "us-west"}]}))
        );
    }

    #[test]
    fn defaults_are_istios() {
        let mesh = MeshConfig::default();
        assert_eq!(mesh.origin(), None);
        assert_eq!(mesh.locality_lb_setting(), Some(&json!({"enabled": true})));
        assert!(!mesh.locality_lb_disabled());
        assert!(mesh.auto_mtls());
        assert!(!mesh.destination_rules_private_by_default());
        let empty = MeshConfig::parse("kind: ConfigMap\ndata: {mesh: \"\"}", "cm").unwrap();
        assert_eq!(empty.locality_lb_setting(), Some(&json!({"enabled": true})));
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        for (text, says) in [
            ("kind: ConfigMap\ndata: {}", "no data.mesh"),
            ("kind: ConfigMap\ndata: {mesh: \"a: [\"}", "data.mesh"),
            ("[1, 2]", "is a map"),
            (
                "localityLbSetting: true",
                "localityLbSetting has the wrong type",
            ),
            (
                "localityLbSetting: {failovr: []}",
                "localityLbSetting has no field failovr",
            ),
            ("enableAutoMtls: \"no\"", "enableAutoMtls"),
            (
                "serviceScopeConfigs: {scope: GLOBAL}",
                "serviceScopeConfigs has the wrong type",
            ),
            (
                "serviceScopeConfigs: [GLOBAL]",
                "serviceScopeConfigs has the wrong type",
            ),
            (
                "localityLbSetting: {enabled: [no]}",
                "localityLbSetting.enabled has the wrong type",
            ),
            ("{", "mesh config m"),
        ] {
            let err = MeshConfig::parse(text, "m").unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn private_by_default_is_a_dot_in_the_default_list() {
        let m = |t: &str| MeshConfig::parse(t, "m").unwrap();
        assert!(
            m("defaultDestinationRuleExportTo: [\".\"]").destination_rules_private_by_default()
        );
        assert!(
            m("defaultDestinationRuleExportTo: [\".\", \"*\"]")
                .destination_rules_private_by_default()
        );
        assert!(
            !m("defaultDestinationRuleExportTo: [\"*\"]").destination_rules_private_by_default()
        );
        assert!(
            !m("defaultDestinationRuleExportTo: [other]").destination_rules_private_by_default()
        );
    }
}
