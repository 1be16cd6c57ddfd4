//! PeerAuthentication rules (FG305).
//!
//! Failover traffic is Istio mTLS end to end: a client's sidecar sends it to the remote
//! east-west gateway with auto mTLS, and the gateway passes the remote clients' mTLS through to
//! this cluster's sidecars. A namespace- or mesh-level PeerAuthentication with mode DISABLE
//! turns both off without an error anywhere.

use serde_json::Value;

use super::{Context, Issue, Issues, Rule};
use crate::{
    config::Mode,
    istio::peer_authentication::{MtlsMode, PeerAuthentications},
    object::{Kind, str_at},
};

// === FG305 peer-authentication-disables-failover ===

/// FG305: mTLS DISABLE for a namespace (or the mesh) in failover scope.
pub static FG305: Rule = Rule {
    id: "FG305",
    name: "peer-authentication-disables-failover",
    kinds: &[Kind::PeerAuthentication],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "A namespace- or mesh-level PeerAuthentication whose mTLS mode DISABLE is in force \
              for a namespace in failover scope is a warning (deny when configured): failover \
              traffic from and to it is plaintext.",
    istio: "pilot/pkg/model/authentication.go addPeerAuthentication keeps the oldest \
            selector-less policy per namespace (the root namespace's is mesh-wide, and a \
            namespace's UNSET inherits it); push_context.go BestEffortInferServiceMTLSMode then \
            gives the namespace's services MTLSDisable, and cluster_tls.go \
            buildUpstreamTLSSettings sends no auto mTLS: clients here reach the remote east-west \
            gateways in plaintext, which their AUTO_PASSTHROUGH listeners (SNI from mTLS) reject. \
            The same mode makes this namespace's sidecars accept plaintext only, so failover from \
            the remote clusters, which arrives with mTLS through this cluster's gateway, fails.",
    example_bad: "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: bookinfo}\nspec:\n  mtls: {mode: DISABLE}\n",
    example_fixed: "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: bookinfo}\nspec:\n  mtls: {mode: PERMISSIVE}\n",
    check: check_fg305,
};

fn check_fg305(pa: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    let selects = pa
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty());
    if selects || cx.config.remotes.is_empty() {
        return;
    }
    let own = cx.subject.namespace.as_str();
    let root = cx.config.scope.root_namespace.as_str();
    let mesh_wide = own == root;
    if !mesh_wide && !cx.config.in_failover_scope(own) {
        return;
    }
    // The policies pilot weighs, this one in place of its stored version.
    let stored = cx
        .world
        .map(|w| w.peer_authentications(own))
        .unwrap_or_default();
    let admitted = super::as_stored(pa, cx);
    let modes = PeerAuthentications::new(&super::with_admitted(&stored, &admitted, cx), root);
    if modes.namespace_mode(own) != MtlsMode::Disable {
        return;
    }
    let name = str_at(pa, &["metadata", "name"]).unwrap_or("");
    let scope = if mesh_wide {
        "every namespace without a policy of its own".to_owned()
    } else {
        format!("namespace {own}")
    };
    out.push(
        Issue::warn(
            "spec.mtls.mode",
            format!("PeerAuthentication {own}/{name} disables mTLS for {scope}"),
        )
        .because("clients there send failover traffic to the remote east-west gateways in plaintext, which the gateways reject, and their sidecars refuse the mTLS failover traffic from the remote clusters")
        .fix("use mode PERMISSIVE (plaintext callers keep working) or STRICT; disable mTLS per workload or port with a selector and portLevelMtls where it is really needed"),
    );
}
