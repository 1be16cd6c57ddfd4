//! End to end: a real kube-apiserver and etcd on loopback, the webhooks registered from
//! deploy/base/webhooks.yaml, the failover-guard binary, and the machine's real `kubectl`.
//!
//! `FG_RECORD_FIXTURES=1` also records the API server's AdmissionReview bodies into
//! tests/fixtures/apiserver/ for the replay tests.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{
    Server,
    cluster::{ControlPlane, text},
};

const DR_WITHOUT_OUTLIER_DETECTION: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: bookinfo
spec:
  host: reviews.bookinfo.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        enabled: true
";

#[test]
fn kubectl_against_a_real_api_server() {
    let Some(plane) = ControlPlane::start() else {
        return;
    };
    plane.install_istio_crds();
    let record = std::env::var_os("FG_RECORD_FIXTURES").is_some();
    let record_dir = common::repo_path("tests/fixtures/apiserver");
    let mut extra = vec![];
    let record_arg = record_dir.display().to_string();
    if record {
        let _ = std::fs::remove_dir_all(&record_dir);
        extra = vec!["--record", record_arg.as_str()];
    }
    let mut server = Server::start(None, &extra);
    plane.register_webhooks(server.port, &server.ca_pem);
    for ns in ["bookinfo", "failover-guard"] {
        let out = plane.kubectl(&["create", "namespace", ns]);
        assert!(out.status.success(), "{}", text(&out));
    }

    // 1. A DestinationRule without outlier detection is stored with it, and re-applying is a no-op.
    let out = plane.apply(DR_WITHOUT_OUTLIER_DETECTION, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let stored = plane
        .get("destinationrule", "bookinfo", "reviews")
        .expect("stored");
    let od = &stored["spec"]["trafficPolicy"]["outlierDetection"];
    assert_eq!(od["maxEjectionPercent"], 100, "{stored:#}");
    assert_eq!(od["consecutive5xxErrors"], 5);
    assert_eq!(
        stored["spec"]["trafficPolicy"]["loadBalancer"]["localityLbSetting"]["enabled"],
        true
    );
    assert_eq!(
        stored["metadata"]["annotations"]["failover-guard.io/mutated"],
        "FG101"
    );
    let again = plane.apply(DR_WITHOUT_OUTLIER_DETECTION, &[]);
    assert!(text(&again).contains("unchanged"), "{}", text(&again));

    // 2. Server-side dry runs of breaking configs fail with the rule and store nothing.
    let inert = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: bookinfo}
spec:
  host: ratings
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 0, maxEjectionPercent: 100}
";
    let out = plane.apply(inert, &["--dry-run=server"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("FG103 DestinationRule bookinfo/ratings: "),
        "{}",
        text(&out)
    );
    assert!(
        plane
            .get("destinationrule", "bookinfo", "ratings")
            .is_none()
    );

    let placeholder = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews-failover, namespace: bookinfo}
spec:
  hosts: [reviews.bookinfo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints:
  - address: \"${CLUSTER2_GW_ADDR}\"
    ports: {http: 15443}
    locality: europe-west4/europe-west4-a
";
    let out = plane.apply(placeholder, &["--dry-run=server"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("FG209"), "{}", text(&out));
    assert!(
        plane
            .get("serviceentry", "bookinfo", "reviews-failover")
            .is_none()
    );

    // A good dry run passes and stores nothing either.
    let out = plane.apply(
        &DR_WITHOUT_OUTLIER_DETECTION.replace("name: reviews", "name: details"),
        &["--dry-run=server"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        plane
            .get("destinationrule", "bookinfo", "details")
            .is_none()
    );

    // 3. Warnings reach the user.
    let low = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: productpage, namespace: bookinfo}
spec:
  host: productpage
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3, maxEjectionPercent: 50}
";
    let out = plane.apply(low, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("Warning: FG102 DestinationRule bookinfo/productpage"),
        "{}",
        text(&out)
    );

    // The failover entry gets its endpoints, locality and mTLS label from the config.
    let entry = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews-failover, namespace: bookinfo}
spec:
  hosts: [reviews.bookinfo.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
";
    let out = plane.apply(entry, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let se = plane
        .get("serviceentry", "bookinfo", "reviews-failover")
        .expect("stored");
    assert_eq!(se["spec"]["location"], "MESH_INTERNAL");
    let endpoint = &se["spec"]["endpoints"][0];
    assert_eq!(endpoint["address"], "203.0.113.10");
    assert_eq!(endpoint["locality"], "europe-west4/europe-west4-a");
    assert_eq!(endpoint["ports"]["http"], 15443);
    assert_eq!(endpoint["labels"]["security.istio.io/tlsMode"], "istio");
    assert_eq!(
        se["metadata"]["annotations"]["failover-guard.io/mutated"],
        "FG204,FG208"
    );

    // 4. Excluded namespaces are untouched.
    let system =
        DR_WITHOUT_OUTLIER_DETECTION.replace("namespace: bookinfo", "namespace: failover-guard");
    let out = plane.apply(&system, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let stored = plane
        .get("destinationrule", "failover-guard", "reviews")
        .expect("stored");
    assert!(
        stored["spec"]["trafficPolicy"]
            .get("outlierDetection")
            .is_none(),
        "{stored:#}"
    );
    assert!(
        stored["metadata"]["annotations"]
            .get("failover-guard.io/mutated")
            .is_none()
    );

    // 5. UPDATE re-checks: breaking a stored rule is denied.
    let broken_update = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews.bookinfo.svc.cluster.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 0, consecutiveGatewayErrors: 0, maxEjectionPercent: 100}
";
    let out = plane.apply(broken_update, &[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("FG103"), "{}", text(&out));
    let stored = plane
        .get("destinationrule", "bookinfo", "reviews")
        .expect("still there");
    assert_eq!(
        stored["spec"]["trafficPolicy"]["outlierDetection"]["consecutive5xxErrors"],
        5
    );

    // 6. DELETE works.
    let out = plane.kubectl(&["delete", "destinationrule", "productpage", "-n", "bookinfo"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        plane
            .get("destinationrule", "bookinfo", "productpage")
            .is_none()
    );

    // The server counted what it did.
    let (_, metrics) = server.probe("/metrics");
    assert!(metrics.contains(r#"failover_guard_admission_requests_total{webhook="mutate",kind="DestinationRule",operation="CREATE",decision="patched"}"#), "{metrics}");
    assert!(metrics.contains(r#"decision="denied""#));

    // 7. Webhook stopped: the mutating webhook lets objects through unmutated (Ignore); the
    // validating webhook rejects Istio kinds (Fail) and lets Services through (Ignore).
    let status = server.terminate();
    assert!(status.success(), "{status}");
    let out = plane.apply(
        &DR_WITHOUT_OUTLIER_DETECTION.replace("name: reviews", "name: while-down"),
        &[],
    );
    assert!(
        !out.status.success(),
        "validating failurePolicy is Fail for Istio kinds: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("failed calling webhook"),
        "{}",
        text(&out)
    );
    assert!(
        plane
            .get("destinationrule", "bookinfo", "while-down")
            .is_none()
    );
    let gateway = "apiVersion: v1
kind: Service
metadata: {name: istio-eastwestgateway, namespace: bookinfo}
spec:
  selector: {istio: eastwestgateway}
  ports: [{name: tls, port: 15443}]
";
    let out = plane.apply(gateway, &[]);
    assert!(
        out.status.success(),
        "Services pass while the webhook is down: {}",
        text(&out)
    );
    let stored = plane
        .get("service", "bookinfo", "istio-eastwestgateway")
        .expect("stored");
    assert!(
        stored["metadata"]
            .get("labels")
            .is_none_or(|l| l.get("topology.istio.io/network").is_none()),
        "unmutated: {stored:#}"
    );
}
