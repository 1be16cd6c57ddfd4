//! `serve --reconcile`: keeps the failover entries failover-guard generates current when remote
//! state changes (a gateway address, a remote's ready replicas, a service appearing in or
//! leaving a remote). Opt-in per namespace: only namespaces labelled
//! `failover-guard.io/reconcile: "true"`, and in them only ServiceEntries annotated
//! `failover-guard.io/failover: "true"`, whose `spec.endpoints` failover-guard then owns.
//!
//! In namespaces labelled `failover-guard.io/default-policy: "true"` it also keeps the
//! namespace default AuthorizationPolicy of `render` (`failover-guard-default`) while the
//! namespace has no other policy; a policy a user wrote is never changed, and once one exists
//! the default is left alone.
//!
//! One pass after each change a remote reports (and every 5 minutes as a safety net), at most
//! one pass every 2 s. Each entry's endpoints are rendered again from scratch by the same rule
//! the webhook runs (FG208, [`rerender_endpoints`], pure) and, when they differ, applied by
//! server-side apply with field manager `failover-guard` (forced: the field is ours).

use std::{sync::Arc, time::Duration};

use kube::{
    Api, Client,
    api::{DynamicObject, ListParams, Patch, PatchParams},
    core::{ApiResource, GroupVersionKind},
};
use serde_json::{Value, json};

use crate::{
    config::Config,
    engine,
    metrics::{Metrics, ResultLabels},
    object::{FAILOVER_ANNOTATION, annotation, str_at},
    remotes::{DEFAULT_POLICY_LABEL, RECONCILE_LABEL, Remotes},
    render::{DEFAULT_POLICY, default_policy},
    world::World,
};

/// The endpoints the webhook's rules give a failover entry today, ignoring the ones it has.
pub fn rerender_endpoints(entry: &Value, config: &Config, world: Option<&dyn World>) -> Value {
    let mut fresh = entry.clone();
    if let Some(spec) = fresh.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("endpoints");
    }
    let namespace = str_at(entry, &["metadata", "namespace"]).unwrap_or("default");
    engine::evaluate(&mut fresh, config, world, namespace, engine::Pass::Mutate);
    fresh
        .get("spec")
        .and_then(|s| s.get("endpoints"))
        .cloned()
        .unwrap_or_else(|| json!([]))
}

/// Reconciles until the task is dropped.
pub async fn run(
    client: Client,
    in_force: Arc<crate::inforce::InForce>,
    remotes: Arc<Remotes>,
    world: Option<Arc<dyn World>>,
    metrics: Arc<Metrics>,
) {
    let mut changes = remotes.subscribe();
    loop {
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(Duration::from_secs(300)) => {}
        }
        // The rules' configuration follows remote changes in another task: merge here too,
        // so this pass never runs on the state from before the change that woke it.
        in_force.refresh();
        let config = in_force.current();
        let world = world.as_deref().filter(|w| w.is_ready());
        if let Err(error) = reconcile_once(&client, &config, world, &metrics).await {
            tracing::warn!(%error, "reconcile pass failed; retrying on the next change");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The namespaces labelled `label=true`.
async fn opted_in(client: &Client, label: &str) -> Result<Vec<String>, kube::Error> {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    Ok(namespaces
        .list(&ListParams::default().labels(&format!("{label}=true")))
        .await?
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect())
}

/// Server-side applies `object` as field manager `failover-guard` (forced: the fields are
/// ours), logs the outcome and counts it.
async fn apply(api: &Api<DynamicObject>, object: &Value, what: &str, metrics: &Metrics) {
    let namespace = str_at(object, &["metadata", "namespace"]).unwrap_or("");
    let name = str_at(object, &["metadata", "name"]).unwrap_or("");
    let params = PatchParams::apply("failover-guard").force();
    let result = match api.patch(name, &params, &Patch::Apply(object)).await {
        Ok(_) => {
            tracing::info!(%namespace, %name, "{what} applied");
            "applied"
        }
        Err(error) => {
            tracing::warn!(%namespace, %name, %error, "cannot apply {what}");
            "error"
        }
    };
    metrics
        .reconciles
        .get_or_create(&ResultLabels { result })
        .inc();
}

/// Keeps the default AuthorizationPolicy in namespaces opted in, while they have no other.
async fn default_policies(
    client: &Client,
    config: &Config,
    world: Option<&dyn World>,
    metrics: &Metrics,
) -> Result<(), kube::Error> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "security.istio.io",
        "v1",
        "AuthorizationPolicy",
    ));
    for ns in opted_in(client, DEFAULT_POLICY_LABEL).await? {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
        let existing = api.list(&ListParams::default()).await?.items;
        let ours = existing
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(DEFAULT_POLICY));
        // A policy of the user's own: theirs to say who may call; never narrowed or added to.
        if existing.len() > usize::from(ours.is_some()) {
            continue;
        }
        let desired = default_policy(&ns, config, world);
        if ours.is_some_and(|p| p.data.get("spec") == desired.get("spec")) {
            continue;
        }
        apply(&api, &desired, "default AuthorizationPolicy", metrics).await;
    }
    Ok(())
}

/// One pass over the opted-in namespaces.
pub async fn reconcile_once(
    client: &Client,
    config: &Config,
    world: Option<&dyn World>,
    metrics: &Metrics,
) -> Result<(), kube::Error> {
    default_policies(client, config, world, metrics).await?;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "networking.istio.io",
        "v1",
        "ServiceEntry",
    ));
    for ns in opted_in(client, RECONCILE_LABEL).await? {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
        for entry in api.list(&ListParams::default()).await?.items {
            let Ok(mut value) = serde_json::to_value(&entry) else {
                continue;
            };
            if annotation(&value, FAILOVER_ANNOTATION) != Some("true") {
                continue;
            }
            if let Some(map) = value.as_object_mut() {
                map.insert("apiVersion".into(), json!(resource.api_version));
                map.insert("kind".into(), json!(resource.kind));
            }
            let desired = rerender_endpoints(&value, config, world);
            let current = value
                .get("spec")
                .and_then(|s| s.get("endpoints"))
                .cloned()
                .unwrap_or_else(|| json!([]));
            if desired == current {
                metrics
                    .reconciles
                    .get_or_create(&ResultLabels {
                        result: "unchanged",
                    })
                    .inc();
                continue;
            }
            let name = str_at(&value, &["metadata", "name"]).unwrap_or("");
            let patch = json!({
                "apiVersion": resource.api_version,
                "kind": resource.kind,
                "metadata": {"name": name, "namespace": ns},
                "spec": {"endpoints": desired},
            });
            apply(&api, &patch, "re-rendered failover entry", metrics).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DiscoveredRemote, Gateway};

    #[test]
    fn endpoints_follow_the_remote_state() {
        let entry = json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
            "metadata": {"name": "reviews-failover", "namespace": "bookinfo", "annotations": {FAILOVER_ANNOTATION: "true"}},
            "spec": {"hosts": ["reviews.bookinfo.svc.cluster.local"], "location": "MESH_INTERNAL", "resolution": "STATIC",
                "ports": [{"number": 9080, "name": "http", "protocol": "HTTP"}],
                "endpoints": [{"address": "198.51.100.20", "ports": {"http": 15443}, "weight": 3}]}});
        let mut base = Config::example();
        base.remotes.clear();
        let seen = |address: &str, ready: u32| {
            base.with_discovered(&[DiscoveredRemote {
                name: "cluster-b".into(),
                gateway: Some(Gateway {
                    address: address.into(),
                    port: 15443,
                }),
                network: Some("network-b".into()),
                locality: Some("europe-west4/europe-west4-a".into()),
                services: [("bookinfo/reviews".to_owned(), ready)].into(),
                ..DiscoveredRemote::default()
            }])
        };
        let endpoints = rerender_endpoints(&entry, &seen("198.51.100.21", 5), None);
        assert_eq!(
            endpoints,
            json!([{"address": "198.51.100.21", "ports": {"http": 15443}, "locality": "europe-west4/europe-west4-a",
                "network": "network-b", "labels": {"security.istio.io/tlsMode": "istio"}, "weight": 5}])
        );
        // The service gone from the remote: no endpoint to a black hole.
        assert_eq!(
            rerender_endpoints(&entry, &seen("198.51.100.21", 0), None),
            json!([])
        );
    }
}
