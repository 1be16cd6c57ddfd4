//! End to end, cluster-aware: the webhook watches the real API server as its world
//! (`serve --world cluster`), and `failover-guard audit` reads it once.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::{
    process::{Command, Output},
    time::{Duration, Instant},
};

use common::{
    Server,
    cluster::{ControlPlane, text},
};
use serde_json::Value;

/// Applies until `accept` is happy with the output (the webhook's watch catches up with
/// objects created a moment ago), or fails after 10 s.
fn apply_until(
    plane: &ControlPlane,
    yaml: &str,
    extra: &[&str],
    accept: impl Fn(&Output) -> bool,
) -> Output {
    let started = Instant::now();
    loop {
        let out = plane.apply(yaml, extra);
        if accept(&out) || started.elapsed() > Duration::from_secs(10) {
            return out;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn cluster_world_and_audit() {
    let Some(plane) = ControlPlane::start() else {
        return;
    };
    plane.install_istio_crds();
    assert!(
        plane
            .kubectl(&["create", "namespace", "bookinfo"])
            .status
            .success()
    );

    // Objects created while no webhook is registered.
    let legacy = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: legacy, namespace: bookinfo}
spec:
  host: legacy
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy-failover, namespace: bookinfo}
spec:
  hosts: [legacy.bookinfo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints:
  - {address: \"$(kubectl get svc gw)\", locality: europe-west4/europe-west4-a, labels: {security.istio.io/tlsMode: istio}}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo}
spec:
  selector: {app: reviews}
  ports: [{name: http-web, port: 9080}]
";
    let out = plane.apply(legacy, &[]);
    assert!(out.status.success(), "{}", text(&out));

    // audit finds them.
    let audit = Command::new(common::BIN)
        .args(["audit", "--output", "json", "--kubeconfig"])
        .arg(&plane.kubeconfig)
        .output()
        .unwrap();
    assert_eq!(audit.status.code(), Some(1), "{}", text(&audit));
    let report: Value = serde_json::from_slice(&audit.stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    let has = |rule: &str, name: &str| {
        findings
            .iter()
            .any(|f| f["rule"] == rule && f["name"] == name && f["action"] == "deny")
    };
    assert!(has("FG101", "legacy"), "{report:#}");
    assert!(has("FG209", "legacy-failover"), "{report:#}");
    assert!(findings.iter().all(|f| f["namespace"] != "kube-system"));
    // The same findings as PolicyReports, created on the API server with the real
    // wgpolicyk8s.io CRDs, so the real schema validates them.
    for crd in [
        "wgpolicyk8s.io_policyreports.yaml",
        "wgpolicyk8s.io_clusterpolicyreports.yaml",
    ] {
        let path = common::shared_dir().join("policyreport").join(crd);
        let out = plane.kubectl(&["apply", "--server-side", "-f", &path.display().to_string()]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = plane.kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/policyreports.wgpolicyk8s.io",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let reports = Command::new(common::BIN)
        .args(["audit", "--output", "policyreport", "--kubeconfig"])
        .arg(&plane.kubeconfig)
        .output()
        .unwrap();
    assert_eq!(reports.status.code(), Some(1), "{}", text(&reports));
    let out = plane.apply(&String::from_utf8_lossy(&reports.stdout), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let stored = plane
        .get("policyreport", "bookinfo", "failover-guard")
        .expect("a report");
    let results = stored["results"].as_array().expect("results");
    assert!(
        results.iter().any(|r| r["rule"] == "FG209"
            && r["result"] == "fail"
            && r["resources"][0]["name"] == "legacy-failover"),
        "{stored:#}"
    );
    assert!(
        stored["summary"]["fail"].as_u64().unwrap_or(0) > 0,
        "{stored:#}"
    );
    // The server keeps its own: delete this one, and it comes back from the watch cache
    // (serve --report-interval), managed by failover-guard.
    assert!(
        plane
            .kubectl(&["delete", "policyreport", "failover-guard", "-n", "bookinfo"])
            .status
            .success()
    );

    // simulate reads the same live objects, and the live workloads behind a Service: a Node
    // with its zone, a Pod on it, the EndpointSlice that lists it.
    let workloads = "apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: bookinfo}
---
apiVersion: v1
kind: Node
metadata:
  name: node-b
  labels: {topology.kubernetes.io/region: europe-west1, topology.kubernetes.io/zone: europe-west1-b}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-b, namespace: bookinfo, labels: {app: reviews, security.istio.io/tlsMode: istio}}
spec:
  nodeName: node-b
  automountServiceAccountToken: false
  containers: [{name: reviews, image: reviews}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: reviews-live, namespace: bookinfo, labels: {kubernetes.io/service-name: reviews}}
addressType: IPv4
ports: [{name: http-web, port: 9080, protocol: TCP}]
endpoints:
- addresses: [10.1.0.11]
  conditions: {ready: true}
  targetRef: {kind: Pod, name: reviews-b, namespace: bookinfo}
";
    let out = plane.apply(workloads, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let simulated = Command::new(common::BIN)
        .args(["simulate", "--cluster", "--output", "json", "--kubeconfig"])
        .arg(&plane.kubeconfig)
        .output()
        .unwrap();
    assert_eq!(simulated.status.code(), Some(0), "{}", text(&simulated));
    let report: Value = serde_json::from_slice(&simulated.stdout).unwrap();
    let reviews = report["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "outbound|9080||reviews.bookinfo.svc.cluster.local")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(reviews["verdict"], "no-remote", "{reviews:#}");
    assert_eq!(
        reviews["priorities"][0]["endpoints"][0]["address"], "10.1.0.11",
        "the live pod, not an assumed one: {reviews:#}"
    );
    assert_eq!(
        reviews["priorities"][0]["locality"],
        "europe-west1/europe-west1-b"
    );
    let namespaced = Command::new(common::BIN)
        .args(["audit", "--namespace", "default", "--kubeconfig"])
        .arg(&plane.kubeconfig)
        .output()
        .unwrap();
    assert_eq!(
        namespaced.status.code(),
        Some(0),
        "nothing broken in default: {}",
        text(&namespaced)
    );

    // The webhook, watching the cluster.
    let kubeconfig = plane.kubeconfig.display().to_string();
    let server = Server::start(
        None,
        &[
            "--world",
            "cluster",
            "--kubeconfig",
            &kubeconfig,
            "--report-interval",
            "1s",
        ],
    );
    let started = Instant::now();
    while !server.probe("/readyz").1.contains("world: synced") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "world never synced: {}",
            server.probe("/readyz").1
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, metrics) = server.probe("/metrics");
    assert!(
        metrics.contains("failover_guard_world_synced 1"),
        "{metrics}"
    );
    plane.register_webhooks(server.port, &server.ca_pem);

    // A shadowing DestinationRule is denied.
    let shadow = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: legacy-shadow, namespace: bookinfo}
spec:
  host: legacy.bookinfo.svc.cluster.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}
";
    let out = plane.apply(shadow, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("FG111 DestinationRule bookinfo/legacy-shadow: "),
        "{}",
        text(&out)
    );
    // A second rule with subsets only merges fine: admitted, and FG101 gives it no
    // trafficPolicy of its own (pilot would use the older rule's anyway).
    let subsets = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: legacy-subsets, namespace: bookinfo}
spec:
  host: legacy.bookinfo.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}]
";
    let out = plane.apply(subsets, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let stored = plane
        .get("destinationrule", "bookinfo", "legacy-subsets")
        .expect("stored");
    assert!(stored["spec"].get("trafficPolicy").is_none(), "{stored:#}");

    // A failover entry whose port name differs from the live Service's is renamed.
    let entry = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews-failover, namespace: bookinfo}
spec:
  hosts: [reviews.bookinfo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 203.0.113.10, ports: {http: 15443}, locality: europe-west4/europe-west4-a, labels: {security.istio.io/tlsMode: istio}}
";
    let out = plane.apply(entry, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let se = plane
        .get("serviceentry", "bookinfo", "reviews-failover")
        .unwrap();
    assert_eq!(se["spec"]["ports"][0]["name"], "http-web", "{se:#}");
    assert_eq!(se["spec"]["endpoints"][0]["ports"]["http-web"], 15443);
    assert!(
        se["metadata"]["annotations"]["failover-guard.io/mutated"]
            .as_str()
            .unwrap()
            .contains("FG206")
    );

    // Subsets of the host's DestinationRule get one failover endpoint each.
    let ratings = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: bookinfo}
spec:
  host: ratings
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
";
    assert!(plane.apply(ratings, &[]).status.success());
    let ratings_entry = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings-failover, namespace: bookinfo}
spec:
  hosts: [ratings.bookinfo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
";
    // Dry runs until the watch has seen the DestinationRule, then for real.
    let out = apply_until(
        &plane,
        ratings_entry,
        &["--dry-run=server", "-o", "json"],
        |out| {
            serde_json::from_slice::<Value>(&out.stdout).is_ok_and(|se| {
                se["spec"]["endpoints"]
                    .as_array()
                    .is_some_and(|e| e.len() == 2)
            })
        },
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(plane.apply(ratings_entry, &[]).status.success());
    let se = plane
        .get("serviceentry", "bookinfo", "ratings-failover")
        .unwrap();
    let endpoints = se["spec"]["endpoints"].as_array().unwrap();
    let versions: Vec<&str> = endpoints
        .iter()
        .map(|e| e["labels"]["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["v1", "v2"], "{se:#}");
    assert!(
        endpoints.iter().all(|e| e["address"] == "203.0.113.10"
            && e["labels"]["security.istio.io/tlsMode"] == "istio")
    );

    // A Service with no DestinationRule and no failover entry gets an FG402 warning.
    let details = "apiVersion: v1
kind: Service
metadata: {name: details, namespace: bookinfo}
spec:
  selector: {app: details}
  ports: [{name: http, port: 9080}]
";
    let out = plane.apply(details, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Warning: FG402 Service bookinfo/details"),
        "{}",
        text(&out)
    );

    // serve --report-interval wrote the report again, and keeps it current.
    let started = Instant::now();
    let report = loop {
        let out = plane.kubectl(&[
            "get",
            "policyreport",
            "failover-guard",
            "-n",
            "bookinfo",
            "-o",
            "json",
            "--show-managed-fields",
        ]);
        if out.status.success() {
            break serde_json::from_slice::<Value>(&out.stdout).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no PolicyReport from the server"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        report["metadata"]["managedFields"]
            .as_array()
            .is_some_and(|m| m.iter().any(|f| f["manager"] == "failover-guard")),
        "{report:#}"
    );
    assert!(
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["rule"] == "FG209"),
        "{report:#}"
    );
    // Unchanged findings are not written again every interval (1 s): once the world has
    // settled, the generation stays put across several intervals.
    let generation = |plane: &ControlPlane| {
        plane
            .get("policyreport", "bookinfo", "failover-guard")
            .unwrap()["metadata"]["generation"]
            .clone()
    };
    let started = Instant::now();
    let mut last = generation(&plane);
    loop {
        std::thread::sleep(Duration::from_millis(3000));
        let now = generation(&plane);
        if now == last {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the report is rewritten every interval: generation {now}"
        );
        last = now;
    }

    // The monitoring shipped in deploy/monitoring names only metrics this server exposes:
    // first make every family have a sample (a shed-free bad request, a rejected config
    // reload, a skipped rule), then compare.
    let _ = server.post("/validate", b"not json");
    std::fs::write(server.path("config.yaml"), "cluster: [broken").unwrap();
    let skipped = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: skipped, namespace: bookinfo, annotations: {failover-guard.io/skip: \"*\"}}
spec: {host: skipped}
";
    assert!(plane.apply(skipped, &[]).status.success());
    std::thread::sleep(Duration::from_millis(800));
    let (_, exposition) = server.probe("/metrics");
    common::check_monitoring_against(&exposition);
}

/// The mesh config is an input pilot reads, so the webhook follows it: `serve` watches the
/// `istio` ConfigMap on the real API server, and a change there changes what an admission
/// writes (FG116: with locality load balancing off mesh-wide, a failover DestinationRule gets
/// its own `localityLbSetting`), and a deletion brings Istio's defaults back.
#[test]
fn the_mesh_configmap_changes_the_verdict() {
    let Some(plane) = ControlPlane::start() else {
        return;
    };
    plane.install_istio_crds();
    for ns in ["bookinfo", "istio-system"] {
        assert!(plane.kubectl(&["create", "namespace", ns]).status.success());
    }
    let kubeconfig = plane.kubeconfig.display().to_string();
    let server = Server::start(None, &["--world", "cluster", "--kubeconfig", &kubeconfig]);
    plane.register_webhooks(server.port, &server.ca_pem);
    let rule = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}
";
    let dry_run = || -> Value {
        let out = plane.apply(rule, &["--dry-run=server", "-o", "json"]);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).expect("JSON")
    };
    let locality = |object: &Value| {
        object["spec"]["trafficPolicy"]["loadBalancer"]["localityLbSetting"].clone()
    };
    let until = |what: &str, accept: &dyn Fn(&Value) -> bool| -> Value {
        let started = Instant::now();
        loop {
            let object = dry_run();
            if accept(&object) {
                return object;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{what}: {object:#}\nreadyz: {}",
                server.probe("/readyz").1
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };

    // No ConfigMap: Istio's defaults, locality load balancing on; nothing to add.
    let before = dry_run();
    assert!(locality(&before).is_null(), "{before:#}");
    assert!(
        server.probe("/readyz").1.contains("Istio's defaults"),
        "{}",
        server.probe("/readyz").1
    );

    // The mesh turns it off: the same rule now gets localityLbSetting {enabled: true}.
    let configmap = "apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    localityLbSetting:
      enabled: false
";
    let out = plane.apply(configmap, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let after = until("FG116 after the ConfigMap turned locality off", &|o| {
        locality(o) == serde_json::json!({"enabled": true})
    });
    assert!(
        after["metadata"]["annotations"]["failover-guard.io/mutated"]
            .as_str()
            .is_some_and(|m| m.contains("FG116")),
        "{after:#}"
    );
    assert!(
        server
            .probe("/readyz")
            .1
            .contains("mesh config: ConfigMap istio-system/istio"),
        "{}",
        server.probe("/readyz").1
    );

    // `simulate --cluster` reads the same ConfigMap: a rule stored without FG116's fix (the
    // user skipped it) gets no locality priorities under this mesh, so the failover entry's
    // gateway shares priority 0 with the local pods (`spread`). With `--mesh-config` the file
    // wins: under Istio's defaults the same objects fail over.
    let stored = rule.replace(
        "metadata: {name: reviews, namespace: bookinfo}",
        "metadata: {name: reviews, namespace: bookinfo, annotations: {failover-guard.io/skip: FG116}}",
    );
    assert!(
        plane
            .apply(
                &format!("apiVersion: v1\nkind: Service\nmetadata: {{name: reviews, namespace: bookinfo}}\nspec:\n  selector: {{app: reviews}}\n  ports: [{{name: http, port: 9080}}]\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: reviews-failover, namespace: bookinfo, annotations: {{failover-guard.io/failover: \"true\"}}}}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 9080, name: http, protocol: HTTP}}]\n---\n{stored}"),
                &[]
            )
            .status
            .success()
    );
    let simulate = |extra: &[&str]| {
        let out = std::process::Command::new(common::BIN)
            .args([
                "simulate",
                "--cluster",
                "--kubeconfig",
                &kubeconfig,
                "-n",
                "bookinfo",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (table, said) = simulate(&[]);
    assert!(
        said.contains("mesh config: ConfigMap istio-system/istio"),
        "{said}"
    );
    assert!(table.contains("reviews.bookinfo.svc.cluster.local:9080 from bookinfo@europe-west1/europe-west1-b: spread"), "{table}");
    let defaults = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(defaults.path(), "{}\n").unwrap();
    let path = defaults.path().display().to_string();
    let (table, _) = simulate(&["--mesh-config", &path]);
    assert!(table.contains("reviews.bookinfo.svc.cluster.local:9080 from bookinfo@europe-west1/europe-west1-b: failover"), "{table}");

    // A broken mesh config is refused and the previous one stays in force.
    let broken = configmap.replace("enabled: false", "enabled: [no]");
    assert!(plane.apply(&broken, &[]).status.success());
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(locality(&dry_run()), serde_json::json!({"enabled": true}));
    let (_, metrics) = server.probe("/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("mesh-config") && l.contains("error") && !l.ends_with(" 0")),
        "a rejected mesh config is counted: {metrics}"
    );

    // Deleted: Istio's defaults again.
    assert!(
        plane
            .kubectl(&["delete", "configmap", "istio", "-n", "istio-system"])
            .status
            .success()
    );
    until("defaults after the ConfigMap was deleted", &|o| {
        locality(o).is_null()
    });
}

/// Polls `probe` for up to `secs` seconds; panics with `what` and the last value otherwise.
fn wait_for<T: std::fmt::Debug>(secs: u64, what: &str, mut probe: impl FnMut() -> (bool, T)) {
    let started = Instant::now();
    loop {
        let (done, last) = probe();
        if done {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "{what} within {secs}s; last: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The local API server restarts (#31, faults at scale): while it is gone, admission keeps
/// answering from the world's last known state and /readyz says which watches fail; when it
/// is back, the world resumes from its watches and follows a change made after the restart.
#[test]
fn the_local_api_server_restarts() {
    let Some(mut plane) = ControlPlane::start() else {
        return;
    };
    plane.install_istio_crds();
    assert!(
        plane
            .kubectl(&["create", "namespace", "bookinfo"])
            .status
            .success()
    );
    let first = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: legacy, namespace: bookinfo}
spec:
  host: legacy.bookinfo.svc.cluster.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}
";
    let out = plane.apply(first, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let kubeconfig = plane.kubeconfig.display().to_string();
    let server = Server::start(None, &["--world", "cluster", "--kubeconfig", &kubeconfig]);
    wait_for(30, "world synced", || {
        let body = server.probe("/readyz").1;
        (body.contains("world: synced"), body)
    });

    // A second rule with its own trafficPolicy for the same host: the world's rule shadows
    // it (FG111), a verdict only the world can give. Sent as the API server would send it.
    // The API server sets the creation time before admission; pilot keeps the older policy.
    let shadow = common::yaml(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: legacy-shadow, namespace: bookinfo, creationTimestamp: '2030-01-01T00:00:00Z'}
spec:
  host: legacy.bookinfo.svc.cluster.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}
",
    );
    let verdict = || {
        let review = server.review("/validate", &common::review_for("u1", "CREATE", &shadow));
        (
            review["response"]["allowed"].as_bool(),
            review["response"]["status"]["message"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        )
    };
    let (allowed, message) = verdict();
    assert_eq!(allowed, Some(false), "{message}");
    assert!(message.contains("FG111"), "{message}");

    // The API server goes away: the same verdict from the last known state, and /readyz
    // (still ready: admission answers) names the failing watches.
    plane.stop_apiserver();
    wait_for(60, "/readyz to name the failing watches", || {
        let (code, body) = server.probe("/readyz");
        (
            code == 200 && body.contains("last known state kept while the watches of"),
            (code, body),
        )
    });
    let (allowed, message) = verdict();
    assert_eq!(allowed, Some(false), "{message}");
    assert!(message.contains("FG111"), "{message}");

    // Back: the watches resume, and a change made after the restart reaches the world.
    plane.start_apiserver();
    let out = plane.kubectl(&["-n", "bookinfo", "delete", "destinationrule", "legacy"]);
    assert!(out.status.success(), "{}", text(&out));
    wait_for(60, "the deletion to reach the world", || {
        let (allowed, message) = verdict();
        (allowed == Some(true), message)
    });
    wait_for(30, "/readyz to be clear again", || {
        let body = server.probe("/readyz").1;
        (
            body.contains("world: synced") && !body.contains("watches of"),
            body,
        )
    });
}
