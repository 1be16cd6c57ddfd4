//! The Helm chart (deploy/helm/failover-guard) with the real `helm`, built from the Go module
//! proxy by tests/helm/build.sh and cached outside the checkout: `helm lint`, `helm template`
//! checked for the same hardening as the kustomize base, and `helm install` on the real
//! kube-apiserver of the end-to-end suite, after which a `kubectl apply` is mutated.
//!
//! Follows the end-to-end suite's switch: `FG_E2E=skip` skips, `FG_E2E=required` (CI) fails
//! when helm cannot be built.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::{path::PathBuf, process::Command};

use base64::Engine as _;
use common::{
    Server,
    cluster::{ControlPlane, text},
};
use serde_json::Value;

const CHART: &str = "deploy/helm/failover-guard";

fn helm() -> Option<PathBuf> {
    let policy = std::env::var("FG_E2E").unwrap_or_default();
    if policy == "skip" {
        eprintln!("helm: skipped (FG_E2E=skip)");
        return None;
    }
    let built = if Command::new("go").arg("version").output().is_err() {
        Err("Go is not installed, so helm cannot be built".to_owned())
    } else {
        common::run_build_script("tests/helm/build.sh")
    };
    match built {
        Ok(path) if path.is_file() => Some(path),
        Ok(path) => panic!(
            "tests/helm/build.sh printed {} which is no file",
            path.display()
        ),
        Err(reason) if policy == "required" => {
            panic!("helm is required (FG_E2E=required) but: {reason}")
        }
        Err(reason) => {
            eprintln!("helm: skipped: {reason}");
            None
        }
    }
}

fn run(helm: &PathBuf, args: &[&str]) -> std::process::Output {
    Command::new(helm)
        .args(args)
        .current_dir(common::repo_path(""))
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("fg-helm-cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("fg-helm-config"),
        )
        .env("HELM_DATA_HOME", std::env::temp_dir().join("fg-helm-data"))
        .output()
        .expect("run helm")
}

fn template(helm: &PathBuf, extra: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "template",
        "failover-guard",
        CHART,
        "--namespace",
        "failover-guard",
    ];
    args.extend_from_slice(extra);
    let out = run(helm, &args);
    assert!(out.status.success(), "helm template: {}", text(&out));
    serde_yaml_ng::Deserializer::from_str(&String::from_utf8_lossy(&out.stdout))
        .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

#[test]
fn chart_lints_and_renders_what_the_kustomize_base_renders() {
    let Some(helm) = helm() else { return };
    let lint = run(&helm, &["lint", CHART, "--strict"]);
    assert!(lint.status.success(), "helm lint: {}", text(&lint));

    let objects = template(&helm, &[]);
    // The configuration is one failover-guard accepts.
    let config = find(&objects, "ConfigMap")[0]["data"]["config.yaml"]
        .as_str()
        .unwrap()
        .to_owned();
    failover_guard::engine::parse_config(&config, "chart values")
        .expect("the chart's config is valid");

    let deployment = find(&objects, "Deployment")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"][0],
        "ALL"
    );
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["readinessProbe"].is_object() && container["livenessProbe"].is_object());
    assert_eq!(find(&objects, "PodDisruptionBudget").len(), 1);
    assert_eq!(find(&objects, "NetworkPolicy").len(), 1);
    let role = find(&objects, "ClusterRole")[0];
    for rule in role["rules"].as_array().unwrap() {
        assert_eq!(
            rule["verbs"],
            serde_json::json!(["get", "list", "watch"]),
            "read-only RBAC"
        );
    }
    // PolicyReports in the cluster are opt-in, and so is the RBAC to write them.
    let with_reports = template(&helm, &["--set", "reports.interval=5m"]);
    let args =
        &find(&with_reports, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"];
    assert!(
        args.as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--report-interval=5m"),
        "{args}"
    );
    let rules = &find(&with_reports, "ClusterRole")[0]["rules"];
    assert!(
        rules
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resources"] == serde_json::json!(["policyreports"])),
        "{rules}"
    );

    // Remote discovery: reading secrets only in the named namespace, and patching
    // ServiceEntries only with reconcile; neither by default.
    assert!(find(&objects, "Role").is_empty());
    let with_discovery = template(
        &helm,
        &[
            "--set",
            "discovery.secretNamespace=istio-system",
            "--set",
            "discovery.reconcile=true",
        ],
    );
    let secrets_role = find(&with_discovery, "Role")[0];
    assert_eq!(secrets_role["metadata"]["namespace"], "istio-system");
    assert_eq!(
        secrets_role["rules"][0]["resources"],
        serde_json::json!(["secrets"])
    );
    assert!(find(&with_discovery, "RoleBinding")[0]["subjects"][0]["kind"] == "ServiceAccount");
    let args = &find(&with_discovery, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
        ["args"];
    assert!(
        args.as_array().unwrap().iter().any(|a| a == "--reconcile"),
        "{args}"
    );
    assert!(
        find(&with_discovery, "ClusterRole")[0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["verbs"] == serde_json::json!(["patch"])
                && r["resources"] == serde_json::json!(["serviceentries"]))
    );

    // Generated certificates: a TLS Secret and its CA in every webhook.
    let secret = find(&objects, "Secret")[0];
    let ca = secret["data"]["ca.crt"].as_str().unwrap();
    assert!(!ca.is_empty() && secret["data"]["tls.key"].is_string());
    let mutating = find(&objects, "MutatingWebhookConfiguration")[0];
    let validating = find(&objects, "ValidatingWebhookConfiguration")[0];
    let mut policies = Vec::new();
    for hook in mutating["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .chain(validating["webhooks"].as_array().unwrap())
    {
        assert_eq!(hook["sideEffects"], "None");
        assert_eq!(hook["admissionReviewVersions"], serde_json::json!(["v1"]));
        assert_eq!(hook["timeoutSeconds"], 5);
        assert_eq!(hook["matchPolicy"], "Equivalent");
        assert_eq!(hook["clientConfig"]["caBundle"], ca);
        let excluded = &hook["namespaceSelector"]["matchExpressions"][0]["values"];
        assert!(
            excluded
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v == "failover-guard"),
            "{excluded}"
        );
        policies.push((
            hook["name"].as_str().unwrap().to_owned(),
            hook["failurePolicy"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(mutating["webhooks"][0]["reinvocationPolicy"], "IfNeeded");
    assert_eq!(
        policies,
        [
            ("mutate.failover-guard.io".to_owned(), "Ignore".to_owned()),
            ("validate.failover-guard.io".to_owned(), "Fail".to_owned()),
            (
                "validate-services.failover-guard.io".to_owned(),
                "Ignore".to_owned()
            ),
        ]
    );

    // cert-manager: a Certificate and CA injection instead of a bundle.
    let objects = template(&helm, &["--set", "certificates.mode=certManager"]);
    assert_eq!(find(&objects, "Certificate").len(), 1);
    let mutating = find(&objects, "MutatingWebhookConfiguration")[0];
    assert_eq!(
        mutating["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        "failover-guard/failover-guard"
    );
    assert!(
        mutating["webhooks"][0]["clientConfig"]
            .get("caBundle")
            .is_none()
    );

    // An existing Secret needs its CA: a clear error without one.
    let out = run(
        &helm,
        &[
            "template",
            "failover-guard",
            CHART,
            "--set",
            "certificates.mode=secret",
            "--set",
            "certificates.secret.name=tls",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("certificates.secret.caBundle is required"),
        "{}",
        text(&out)
    );

    // The configuration as a file (`--set-file config=...`) is taken verbatim.
    let objects = template(&helm, &["--set-file", "config=deploy/base/config.yaml"]);
    let config = find(&objects, "ConfigMap")[0]["data"]["config.yaml"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        config.trim(),
        std::fs::read_to_string(common::repo_path("deploy/base/config.yaml"))
            .unwrap()
            .trim()
    );
    failover_guard::engine::parse_config(&config, "--set-file").expect("valid");

    // Optional ServiceMonitor.
    let objects = template(&helm, &["--set", "metrics.serviceMonitor.enabled=true"]);
    assert_eq!(find(&objects, "ServiceMonitor").len(), 1);
}

#[test]
fn helm_install_on_a_real_api_server_mutates_kubectl_apply() {
    let Some(helm) = helm() else { return };
    let Some(plane) = ControlPlane::start() else {
        return;
    };
    plane.install_istio_crds();
    for ns in ["failover-guard", "bookinfo"] {
        assert!(plane.kubectl(&["create", "namespace", ns]).status.success());
    }
    // No kubelet runs here, so the chart's pods cannot start: the webhooks the chart registers
    // are served by the real binary on loopback (webhooks.url), with the chart's
    // certificates.mode=secret and that server's CA.
    let server = Server::start(None, &[]);
    let ca = base64::engine::general_purpose::STANDARD.encode(&server.ca_pem);
    let url = format!("https://127.0.0.1:{}", server.port);
    let kubeconfig = plane.kubeconfig.display().to_string();
    let out = run(
        &helm,
        &[
            "install",
            "failover-guard",
            CHART,
            "--namespace",
            "failover-guard",
            "--kubeconfig",
            &kubeconfig,
            "--set",
            "certificates.mode=secret",
            "--set",
            "certificates.secret.name=failover-guard-tls",
            "--set",
            &format!("certificates.secret.caBundle={ca}"),
            "--set",
            &format!("webhooks.url={url}"),
        ],
    );
    assert!(out.status.success(), "helm install: {}", text(&out));
    let status = run(
        &helm,
        &[
            "status",
            "failover-guard",
            "--namespace",
            "failover-guard",
            "--kubeconfig",
            &kubeconfig,
        ],
    );
    assert!(
        text(&status).contains("STATUS: deployed"),
        "{}",
        text(&status)
    );

    let dr = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews.bookinfo.svc.cluster.local
";
    let out = plane.apply(dr, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let stored = plane
        .get("destinationrule", "bookinfo", "reviews")
        .expect("stored");
    assert_eq!(
        stored["spec"]["trafficPolicy"]["outlierDetection"]["maxEjectionPercent"], 100,
        "mutated through the chart's webhook: {stored:#}"
    );
    let inert = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: bookinfo}
spec:
  host: ratings.bookinfo.svc.cluster.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 0}
";
    let out = plane.apply(inert, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("FG103 DestinationRule bookinfo/ratings"),
        "{}",
        text(&out)
    );

    let out = run(
        &helm,
        &[
            "uninstall",
            "failover-guard",
            "--namespace",
            "failover-guard",
            "--kubeconfig",
            &kubeconfig,
        ],
    );
    assert!(out.status.success(), "helm uninstall: {}", text(&out));
    assert!(
        plane
            .kubectl(&["get", "mutatingwebhookconfiguration", "failover-guard"])
            .status
            .code()
            != Some(0)
    );
}
