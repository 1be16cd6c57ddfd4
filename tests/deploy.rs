//! The shipped manifests: every kustomize tree renders with the real `kubectl kustomize`, and
//! what it renders is hardened (non-root, read-only root fs, no privilege escalation, no
//! capabilities, seccomp, least-privilege RBAC, NetworkPolicy) and registers the webhooks as
//! SPEC section 6 says.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::{path::Path, process::Command};

use serde_json::Value;

fn render(dir: &Path) -> Vec<Value> {
    let output = Command::new("kubectl")
        .args(["kustomize"])
        .arg(dir)
        .output()
        .expect("kubectl kustomize (kubectl must be installed)");
    assert!(
        output.status.success(),
        "{}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_yaml_ng::Deserializer::from_slice(&output.stdout)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn base_is_hardened_and_complete() {
    let objects = render(&common::repo_path("deploy/base"));

    let deployment = find(&objects, "Deployment")[0];
    assert_eq!(deployment["metadata"]["namespace"], "failover-guard");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert!(
        !pod["topologySpreadConstraints"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert!(sc.get("capabilities").and_then(|c| c.get("add")).is_none());
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/livez");
    assert!(container["resources"]["requests"]["cpu"].is_string());
    assert!(container["resources"]["requests"]["memory"].is_string());
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"serve"));
    // Every argument is a real flag of `serve`.
    let help = Command::new(common::BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for arg in args.iter().filter(|a| a.starts_with("--")) {
        let flag = arg.split('=').next().unwrap();
        assert!(help.contains(flag), "{flag} is not a serve flag");
    }

    let pdb = find(&objects, "PodDisruptionBudget")[0];
    assert_eq!(pdb["spec"]["minAvailable"], 1);

    // RBAC: read-only, and only on what the rules look up.
    for role in find(&objects, "ClusterRole") {
        for rule in role["rules"].as_array().unwrap() {
            let verbs: Vec<&str> = rule["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert_eq!(verbs, ["get", "list", "watch"], "{rule}");
            // ConfigMaps: only the mesh config pilot reads, by name.
            if rule["resources"] == serde_json::json!(["configmaps"]) {
                assert_eq!(
                    rule["resourceNames"],
                    serde_json::json!(["istio"]),
                    "{rule}"
                );
                continue;
            }
            for resource in rule["resources"].as_array().unwrap() {
                assert!(
                    [
                        "services",
                        "namespaces",
                        "destinationrules",
                        "serviceentries",
                        "gateways",
                        "authorizationpolicies",
                        "peerauthentications"
                    ]
                    .contains(&resource.as_str().unwrap()),
                    "{resource}"
                );
            }
        }
    }

    // NetworkPolicy: only the admission and probe ports.
    let policy = find(&objects, "NetworkPolicy")[0];
    let ports: Vec<u64> = policy["spec"]["ingress"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, [8443, 9090]);

    // The webhooks.
    let mutating = find(&objects, "MutatingWebhookConfiguration")[0];
    let validating = find(&objects, "ValidatingWebhookConfiguration")[0];
    for webhook in mutating["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .chain(validating["webhooks"].as_array().unwrap())
    {
        assert_eq!(webhook["sideEffects"], "None");
        assert_eq!(
            webhook["admissionReviewVersions"],
            serde_json::json!(["v1"])
        );
        assert_eq!(webhook["matchPolicy"], "Equivalent");
        assert!(webhook["timeoutSeconds"].as_u64().unwrap() <= 10);
        let excluded = &webhook["namespaceSelector"]["matchExpressions"][0];
        assert_eq!(excluded["key"], "kubernetes.io/metadata.name");
        assert_eq!(excluded["operator"], "NotIn");
        for ns in ["kube-system", "failover-guard"] {
            assert!(
                excluded["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v == ns)
            );
        }
        assert_eq!(
            webhook["clientConfig"]["service"]["namespace"],
            "failover-guard"
        );
        assert_eq!(webhook["clientConfig"]["service"]["name"], "failover-guard");
    }
    assert_eq!(mutating["webhooks"][0]["reinvocationPolicy"], "IfNeeded");
    assert_eq!(mutating["webhooks"][0]["failurePolicy"], "Ignore");

    // The ConfigMap holds a configuration the binary accepts.
    let config = find(&objects, "ConfigMap")[0]["data"]["config.yaml"]
        .as_str()
        .unwrap();
    failover_guard::config::Config::from_yaml(config, "configmap").expect("valid config");
}

#[test]
fn cert_manager_overlay_injects_the_ca() {
    let objects = render(&common::repo_path("deploy/overlays/cert-manager"));
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let webhook = find(&objects, kind)[0];
        assert_eq!(
            webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "failover-guard/failover-guard-serving"
        );
    }
    let certificates = find(&objects, "Certificate");
    let serving = certificates
        .iter()
        .find(|c| c["metadata"]["name"] == "failover-guard-serving")
        .unwrap();
    assert_eq!(serving["spec"]["secretName"], "failover-guard-tls");
    assert!(
        serving["spec"]["dnsNames"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "failover-guard.failover-guard.svc")
    );
}

#[test]
fn self_signed_overlay_carries_the_generated_ca() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&common::repo_path("deploy"), dir.path());
    let certs = dir.path().join("overlays/self-signed/certs");
    let output = Command::new(common::BIN)
        .args([
            "certs",
            "--service",
            "failover-guard",
            "--namespace",
            "failover-guard",
            "--out",
        ])
        .arg(&certs)
        .output()
        .unwrap();
    assert!(output.status.success());
    let objects = render(&dir.path().join("overlays/self-signed"));
    let ca = std::fs::read(certs.join("ca.crt")).unwrap();
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        for webhook in find(&objects, kind)[0]["webhooks"].as_array().unwrap() {
            let bundle: String = webhook["clientConfig"]["caBundle"]
                .as_str()
                .unwrap()
                .split_whitespace()
                .collect();
            assert_eq!(
                base64::engine::general_purpose::STANDARD
                    .decode(bundle)
                    .unwrap(),
                ca
            );
        }
    }
    let secret = find(&objects, "Secret")[0];
    assert_eq!(secret["metadata"]["name"], "failover-guard-tls");
    assert_eq!(secret["type"], "kubernetes.io/tls");
}
