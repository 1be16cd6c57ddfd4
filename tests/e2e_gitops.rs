//! GitOps on a real API server: every GitOps controller re-applies the same manifests on each
//! sync. For every mutate rule, its example manifest (`failover-guard explain`) is applied with
//! the webhooks registered, then applied again client-side (`kubectl apply`), server-side
//! (`--server-side`, and as another field manager the way Argo CD and Flux apply), and diffed
//! (`kubectl diff`, plain and `--server-side`): the stored object and its generation never
//! change, and the diffs are empty. Once created client-side and once server-side from scratch.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{
    Server,
    cluster::{ControlPlane, text},
};
use failover_guard::rules::RULES;
use serde_json::Value;

/// The parts of a stored object a re-apply must leave alone.
fn state(object: &Value) -> (Value, Value, Value, Value) {
    (
        object["metadata"]["generation"].clone(),
        object["spec"].clone(),
        object["metadata"]["labels"].clone(),
        object["metadata"]["annotations"]
            .as_object()
            .map(|a| {
                // kubectl's own bookkeeping of the last applied manifest is not ours to judge.
                let mut a = a.clone();
                a.remove("kubectl.kubernetes.io/last-applied-configuration");
                Value::Object(a)
            })
            .unwrap_or(Value::Null),
    )
}

/// Kind (as kubectl names it), namespace and name of a manifest.
fn identity(manifest: &str) -> (String, String, String) {
    let object: Value = serde_yaml_ng::from_str(manifest).expect("example is YAML");
    let kind = object["kind"].as_str().unwrap().to_lowercase();
    let group = object["apiVersion"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let kind = if object["apiVersion"].as_str().unwrap().contains('/') {
        format!("{kind}.{group}")
    } else {
        kind
    };
    (
        kind,
        object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned(),
        object["metadata"]["name"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn reapplying_a_manifest_changes_nothing() {
    let Some(plane) = ControlPlane::start() else {
        return;
    };
    plane.install_istio_crds();
    for ns in ["bookinfo", "istio-system"] {
        let out = plane.kubectl(&["create", "namespace", ns]);
        assert!(out.status.success(), "{}", text(&out));
    }
    // The Service FG206's example renames its entry's port after.
    let service = "apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo}
spec:
  selector: {app: reviews}
  ports: [{name: http-web, port: 9080}]
";
    assert!(plane.apply(service, &[]).status.success());

    // FG301 narrows a policy only when configured to.
    let config = format!(
        "{}\nrules: {{FG301: mutate}}\n",
        failover_guard::config::EXAMPLE.replace("rules: {}", "")
    );
    let kubeconfig = plane.kubeconfig.display().to_string();
    let server = Server::start(
        Some(&config),
        &["--world", "cluster", "--kubeconfig", &kubeconfig],
    );
    // The mesh turns locality load balancing off, so FG116's fix is in play too (and every
    // DestinationRule example gets it beside its own).
    let mesh = "apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    localityLbSetting: {enabled: false}
";
    assert!(plane.apply(mesh, &[]).status.success());
    let started = Instant::now();
    while !server.probe("/readyz").1.contains("world: synced")
        || !server
            .probe("/readyz")
            .1
            .contains("ConfigMap istio-system/istio")
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "world never synced, or the mesh ConfigMap never read: {}",
            server.probe("/readyz").1
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    plane.register_webhooks(server.port, &server.ca_pem);

    // Every mutate rule's example, and the seed's transparent-failover demo (its DestinationRule
    // with the deprecated consecutiveErrors is the case GitOps users first reported). FG103's
    // example is one it denies; the seed's DestinationRule is its rewrite.
    let corpus = common::shared_dir().join("corpus/johscheuer-istio-playground");
    let seed_dr = std::fs::read_to_string(corpus.join("transparent_multicluster__dest-rule.yaml"))
        .expect("seed DestinationRule");
    let seed_se = std::fs::read_to_string(
        corpus.join("Transparent_Multicluster-md__serviceentry-remote-gateway.yaml"),
    )
    .expect("seed ServiceEntry");
    let seed_se: String = seed_se
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("- address: $(") {
                "  - address: 203.0.113.10".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut cases: Vec<(String, String)> = RULES
        .iter()
        .filter(|r| r.can_mutate && r.id != "FG103")
        .map(|r| (r.id.to_owned(), r.example_bad.to_owned()))
        .collect();
    cases.push(("seed DestinationRule (FG102, FG103)".into(), seed_dr));
    cases.push(("seed ServiceEntry (FG203, FG210)".into(), seed_se));

    let mut failures = Vec::new();
    let mut checked = Vec::new();
    for (label, manifest) in &cases {
        let manifest = manifest.as_str();
        let (kind, ns, name) = identity(manifest);
        let get = || plane.get(&kind, &ns, &name);
        for create_server_side in [false, true] {
            let how = if create_server_side {
                "created server-side"
            } else {
                "created client-side"
            };
            let created = if create_server_side {
                plane.apply(manifest, &["--server-side"])
            } else {
                plane.apply(manifest, &[])
            };
            if !created.status.success() {
                failures.push(format!(
                    "{} ({how}): apply failed: {}",
                    label,
                    text(&created)
                ));
                continue;
            }
            let stored = get().expect("stored");
            let mutated = stored["metadata"]["annotations"]["failover-guard.io/mutated"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            if mutated.is_empty() {
                failures.push(format!("{label} ({how}): nothing was fixed"));
            }
            let before = state(&stored);
            // The re-applies a GitOps controller of each kind makes: kubectl's client-side apply
            // (Argo CD's default) again and again; server-side apply (Flux, Argo CD with
            // ServerSideApply) as the same manager and as another one, forced as they force.
            let reapplies: &[(&str, &[&str])] = if create_server_side {
                &[
                    ("server-side apply", &["--server-side"]),
                    ("server-side apply again", &["--server-side"]),
                    (
                        "server-side apply as another field manager",
                        &[
                            "--server-side",
                            "--field-manager=flux-controller",
                            "--force-conflicts",
                        ],
                    ),
                ]
            } else {
                &[("client-side apply", &[]), ("client-side apply again", &[])]
            };
            for (what, args) in reapplies {
                let out = plane.apply(manifest, args);
                if !out.status.success() {
                    failures.push(format!("{} ({how}): {what} failed: {}", label, text(&out)));
                    continue;
                }
                let after = state(&get().expect("still stored"));
                if after != before {
                    failures.push(format!(
                        "{} ({how}): {what} changed the stored object:\nbefore {}\nafter  {}",
                        label,
                        serde_json::to_string(&before).unwrap(),
                        serde_json::to_string(&after).unwrap()
                    ));
                }
            }
            let diff: Vec<&str> = if create_server_side {
                vec![
                    "diff",
                    "--server-side",
                    "--force-conflicts",
                    "--field-manager=flux-controller",
                    "-f",
                    "-",
                ]
            } else {
                vec!["diff", "-f", "-"]
            };
            let out = plane.kubectl_stdin(&diff, Some(manifest));
            if out.status.code() != Some(0) {
                failures.push(format!(
                    "{} ({how}): kubectl {} exited {:?}: {}",
                    label,
                    diff.join(" "),
                    out.status.code(),
                    text(&out)
                ));
            }
            let out = plane.kubectl(&["delete", &kind, &name, "-n", &ns, "--wait=true"]);
            assert!(out.status.success(), "{}", text(&out));
        }
        checked.push(label.as_str());
    }
    eprintln!("gitops: re-applied the examples of {checked:?}");
    assert!(checked.len() >= 12, "{checked:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
