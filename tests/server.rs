//! The webhook over real HTTPS: the built binary, real certificates, a real TLS client.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{Server, apply_response_patch, review_for, yaml};
use serde_json::{Value, json};

fn dr_without_outlier_detection() -> Value {
    yaml(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews.bookinfo.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      localityLbSetting: {enabled: true}
",
    )
}

#[test]
fn admission_over_https() {
    let server = Server::start(None, &[]);

    // Mutate: a JSONPatch that, applied, gives outlierDetection with maxEjectionPercent 100.
    let object = dr_without_outlier_detection();
    let answer = server.review("/mutate", &review_for("uid-1", "CREATE", &object));
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(answer["response"]["uid"], "uid-1");
    assert_eq!(answer["response"]["allowed"], true);
    assert_eq!(answer["response"]["patchType"], "JSONPatch");
    let patched = apply_response_patch(&object, &answer);
    let od = &patched["spec"]["trafficPolicy"]["outlierDetection"];
    assert_eq!(od["maxEjectionPercent"], 100);
    assert_eq!(od["consecutive5xxErrors"], 5);
    assert_eq!(
        patched["spec"]["trafficPolicy"]["loadBalancer"],
        object["spec"]["trafficPolicy"]["loadBalancer"],
        "untouched fields survive"
    );
    assert_eq!(
        patched["metadata"]["annotations"]["failover-guard.io/mutated"],
        "FG101"
    );

    // Mutating the patched object again: no patch.
    let again = server.review("/mutate", &review_for("uid-2", "UPDATE", &patched));
    assert_eq!(again["response"]["allowed"], true);
    assert!(again["response"].get("patch").is_none(), "{again}");

    // dryRun gets exactly the same answer.
    let mut dry = review_for("uid-1", "CREATE", &object);
    dry["request"]["dryRun"] = json!(true);
    assert_eq!(server.review("/mutate", &dry), answer);

    // The patched object validates clean.
    let valid = server.review("/validate", &review_for("uid-3", "UPDATE", &patched));
    assert_eq!(valid["response"]["allowed"], true, "{valid}");

    // Validate: inert outlier detection is denied with a message that starts with FG103.
    let inert = yaml(
        "apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: ratings, namespace: bookinfo}
spec:
  host: ratings
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 0, maxEjectionPercent: 100}
",
    );
    let denied = server.review("/validate", &review_for("uid-4", "CREATE", &inert));
    assert_eq!(denied["response"]["uid"], "uid-4");
    assert_eq!(denied["response"]["allowed"], false);
    let message = denied["response"]["status"]["message"]
        .as_str()
        .unwrap_or("");
    assert!(
        message.starts_with("FG103 DestinationRule bookinfo/ratings: "),
        "{message}"
    );

    // Warnings: an explicit maxEjectionPercent below 100.
    let low = yaml(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details, namespace: bookinfo}
spec:
  host: details
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3, maxEjectionPercent: 50}
",
    );
    let warned = server.review("/validate", &review_for("uid-5", "CREATE", &low));
    assert_eq!(warned["response"]["allowed"], true);
    let warnings = warned["response"]["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1);
    let warning = warnings[0].as_str().unwrap_or("");
    assert!(warning.starts_with("FG102 "), "{warning}");
    assert!(warning.chars().count() <= 120);

    // DELETE is allowed without a patch.
    let deleted = server.review("/mutate", &review_for("uid-6", "DELETE", &object));
    assert_eq!(deleted["response"]["allowed"], true);
    assert!(deleted["response"].get("patch").is_none());

    // Kinds the engine does not handle pass untouched.
    let pod = yaml("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: bookinfo}\nspec: {}");
    let untouched = server.review("/mutate", &review_for("uid-7", "CREATE", &pod));
    assert_eq!(untouched["response"]["allowed"], true);
    assert!(untouched["response"].get("patch").is_none());

    // Excluded namespaces are untouched.
    let mut system = dr_without_outlier_detection();
    system["metadata"]["namespace"] = json!("kube-system");
    let skipped = server.review("/mutate", &review_for("uid-8", "CREATE", &system));
    assert!(skipped["response"].get("patch").is_none());

    // Probes and metrics.
    assert_eq!(server.probe("/livez").0, 200);
    assert_eq!(server.probe("/readyz").0, 200);
    let (status, metrics) = server.probe("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            r#"failover_guard_admission_requests_total{webhook="mutate",kind="DestinationRule",operation="CREATE",decision="patched"} 2"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"failover_guard_findings_total{rule="FG103",action="deny"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("failover_guard_admission_duration_seconds_bucket"),
        "{metrics}"
    );
}

#[test]
fn bad_requests_get_clear_errors() {
    let server = Server::start(None, &[]);

    // Malformed JSON: 400 with a JSON error.
    let (status, body) = server.post("/mutate", b"{not json");
    assert_eq!(status, 400);
    let error: Value = serde_json::from_str(&body).expect("JSON error body");
    assert!(
        error["error"].as_str().unwrap_or("").contains("not JSON"),
        "{body}"
    );

    // A non-v1 AdmissionReview: 400.
    let mut old = review_for("u", "CREATE", &dr_without_outlier_detection());
    old["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let (status, body) = server.post("/validate", old.to_string().as_bytes());
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("admission.k8s.io/v1"), "{body}");

    // An AdmissionReview whose request cannot be read: denied with its uid.
    let mut broken = review_for("uid-broken", "CREATE", &dr_without_outlier_detection());
    broken["request"]["object"]["metadata"]["annotations"] = json!({"a": 1});
    let answer = server.review("/validate", &broken);
    assert_eq!(answer["response"]["uid"], "uid-broken");
    assert_eq!(answer["response"]["allowed"], false);

    // A 7 MiB body: 413, on its announced length.
    let response = server.announce("/mutate", 7 * 1024 * 1024);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");

    // GET /mutate: 405.
    let response = server
        .agent()
        .get(&server.url("/mutate"))
        .call()
        .expect("GET");
    assert_eq!(response.status().as_u16(), 405);

    // Unknown path: 404 with a JSON error.
    let (status, body) = server.post("/nope", b"{}");
    assert_eq!(status, 404);
    assert!(body.contains("error"));

    // The server is still healthy.
    assert_eq!(server.probe("/readyz").0, 200);
}

#[test]
fn sigterm_stops_readiness_and_exits_zero() {
    let mut server = Server::start(None, &["--shutdown-delay", "1s"]);
    let pid = server.pid();
    assert!(pid > 0);
    common::signal(server.child.as_ref().expect("child"), "TERM");
    // During the shutdown delay the server is not ready but still answers.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut saw_not_ready = false;
    while std::time::Instant::now() < deadline {
        if server.probe("/readyz").0 == 503 {
            saw_not_ready = true;
            break;
        }
    }
    assert!(saw_not_ready, "/readyz never turned 503");
    let answer = server.review(
        "/mutate",
        &review_for("late", "CREATE", &dr_without_outlier_detection()),
    );
    assert_eq!(answer["response"]["uid"], "late");
    let mut child = server.child.take().expect("child");
    let status =
        common::wait_timeout(&mut child, std::time::Duration::from_secs(20)).expect("exit");
    assert!(status.success(), "{status}");
}

#[test]
fn logs_to_a_pipe_carry_no_terminal_colour_codes() {
    let mut server = common::Server::start(None, &[]);
    // Something worth a warning: a broken configuration file (the old one stays).
    std::fs::write(server.path("config.yaml"), "cluster: [broken").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    let (status, _) = server.probe("/readyz");
    assert_eq!(status, 200);
    let (exit, logs) = server.terminate_with_logs();
    assert!(exit.success());
    assert!(
        logs.contains("config"),
        "the server logged nothing: {logs:?}"
    );
    assert!(
        !logs.contains('\u{1b}'),
        "escape sequences in piped logs: {logs:?}"
    );
}

#[test]
fn certificate_expiry_is_a_metric() {
    let server = common::Server::start(None, &[]);
    let (_, metrics) = server.probe("/metrics");
    let line = metrics
        .lines()
        .find(|l| l.starts_with("failover_guard_certificate_expiry_timestamp_seconds "))
        .unwrap_or_else(|| panic!("{metrics}"));
    let expiry: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(expiry > now + 86_400, "already expiring: {line}");
    assert!(expiry < now + 20 * 365 * 86_400, "{line}");
}
