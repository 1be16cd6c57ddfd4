//! Two real clusters (two kube-apiservers, each with its own etcd): failover-guard in cluster A
//! discovers cluster B through an Istio remote secret made the way `istioctl
//! create-remote-secret` makes it, authenticated as a read-only identity bound by
//! deploy/remote/rbac.yaml. It generates the failover endpoint from B's east-west gateway
//! (address from `status.loadBalancer`, set through the status subresource), B's node topology
//! and B's ready endpoints; `--reconcile` follows B as it scales and as its gateway address
//! changes; and admission keeps working once B is gone.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use base64::Engine as _;
use common::{
    Server,
    cluster::{ControlPlane, READER_TOKEN, text},
};
use serde_json::{Value, json};

fn ok(out: std::process::Output) {
    assert!(out.status.success(), "{}", text(&out));
}

/// Polls `probe` until it returns `Some`; `None` after `secs` seconds (`what` is logged).
fn eventually<T>(secs: u64, what: &str, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if started.elapsed() > Duration::from_secs(secs) {
            eprintln!("timed out after {secs}s waiting for {what}");
            return None;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn reviews_slice(ready: usize) -> String {
    let endpoints: Vec<Value> = (0..ready)
        .map(|i| json!({"addresses": [format!("10.1.0.{}", i + 1)], "conditions": {"ready": true}, "nodeName": "node-b1"}))
        .chain([json!({"addresses": ["10.1.0.99"], "conditions": {"ready": false}})])
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "reviews-1", "namespace": "bookinfo", "labels": {"kubernetes.io/service-name": "reviews"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 9080}], "endpoints": endpoints})
    .to_string()
}

fn set_gateway_address(remote: &ControlPlane, ip: &str) {
    set_gateway_ingress(remote, json!({"ip": ip}));
}

/// The LoadBalancer status an AWS NLB gives: a hostname and no IP.
fn set_gateway_hostname(remote: &ControlPlane, hostname: &str) {
    set_gateway_ingress(remote, json!({"hostname": hostname}));
}

fn set_gateway_ingress(remote: &ControlPlane, ingress: Value) {
    ok(remote.kubectl(&[
        "-n",
        "istio-system",
        "patch",
        "service",
        "istio-eastwestgateway",
        "--subresource=status",
        "--type=merge",
        "-p",
        &json!({"status": {"loadBalancer": {"ingress": [ingress]}}}).to_string(),
    ]));
}

/// The LIST requests a control plane has served for what discovery reads, by resource
/// (`apiserver_request_total`).
fn list_requests(cp: &ControlPlane) -> std::collections::BTreeMap<String, u64> {
    let out = cp.kubectl(&["get", "--raw", "/metrics"]);
    assert!(out.status.success(), "{}", text(&out));
    common::scale::ApiCounters::parse(&String::from_utf8_lossy(&out.stdout))
        .lists
        .into_iter()
        .map(|(resource, n)| (resource, n as u64))
        .collect()
}

/// The remote secret of `istioctl create-remote-secret`: Secret istio-remote-secret-<name> in
/// istio-system, labelled istio/multiCluster=true, annotated networking.istio.io/cluster, one
/// key per cluster holding a kubeconfig with the CA embedded and a bearer token.
fn remote_secret(name: &str, remote: &ControlPlane, token: &str) -> String {
    let ca = std::fs::read(remote.dir.path().join("pki/ca.crt")).unwrap();
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority-data: {ca}\ncontexts:\n- name: {name}\n  context: {{cluster: {name}, user: {name}}}\ncurrent-context: {name}\nusers:\n- name: {name}\n  user: {{token: {token}}}\n",
        port = remote.port,
        ca = base64::engine::general_purpose::STANDARD.encode(ca),
    );
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("istio-remote-secret-{name}"), "namespace": "istio-system",
            "labels": {"istio/multiCluster": "true"}, "annotations": {"networking.istio.io/cluster": name}},
        "stringData": {name: kubeconfig}})
    .to_string()
}

/// A remote cluster as discovery reads it: istio-system and the app's namespace, and the
/// read-only role of deploy/remote/rbac.yaml bound to the reader identity the remote secret
/// uses.
fn reader_access(remote: &ControlPlane, namespace: &str) {
    ok(remote.kubectl(&["create", "namespace", "istio-system"]));
    ok(remote.kubectl(&["create", "namespace", namespace]));
    ok(remote.kubectl(&[
        "apply",
        "-f",
        &common::repo_path("deploy/remote/rbac.yaml")
            .display()
            .to_string(),
    ]));
    ok(remote.kubectl(&[
        "create",
        "clusterrolebinding",
        "e2e-reader",
        "--clusterrole=failover-guard-remote-reader",
        "--user=reader",
    ]));
}

const CONFIG: &str = "cluster:
  name: cluster-a
  network: network-a
  localities: [europe-west1/europe-west1-b]
discovery:
  source: istio-secrets
";

#[test]
fn discovered_remote_end_to_end() {
    let Some(local) = ControlPlane::start() else {
        return;
    };
    let Some(remote) = ControlPlane::start() else {
        return;
    };
    local.install_istio_crds();

    // Cluster B: the read-only role of deploy/remote/rbac.yaml, bound to the reader identity
    // the remote secret uses; the east-west gateway on a node with topology labels; reviews
    // with 3 ready endpoints (and one unready).
    reader_access(&remote, "bookinfo");
    ok(remote.apply(
        "apiVersion: v1
kind: Node
metadata:
  name: node-b1
  labels: {topology.kubernetes.io/region: europe-west4, topology.kubernetes.io/zone: europe-west4-a}
---
apiVersion: v1
kind: Service
metadata:
  name: istio-eastwestgateway
  namespace: istio-system
  labels: {istio: eastwestgateway, topology.istio.io/network: network-b}
spec:
  type: LoadBalancer
  selector: {istio: eastwestgateway}
  ports: [{name: status-port, port: 15021}, {name: tls, port: 15443}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: istio-eastwestgateway-1
  namespace: istio-system
  labels: {kubernetes.io/service-name: istio-eastwestgateway}
addressType: IPv4
ports: [{name: tls, port: 15443}]
endpoints: [{addresses: [10.1.9.1], nodeName: node-b1}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
",
        &[],
    ));
    ok(remote.apply(&reviews_slice(3), &[]));
    set_gateway_address(&remote, "198.51.100.20");

    // Cluster A: the remote secret, and a namespace opted in to reconciliation.
    ok(local.kubectl(&["create", "namespace", "istio-system"]));
    ok(local.apply(&remote_secret("cluster-b", &remote, READER_TOKEN), &[]));
    ok(local.apply(
        "apiVersion: v1
kind: Namespace
metadata: {name: bookinfo, labels: {failover-guard.io/reconcile: \"true\", failover-guard.io/default-policy: \"true\"}}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: bookinfo}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080}]
",
        &[],
    ));

    // PolicyReports, with the real wgpolicyk8s.io CRD.
    let crd = common::shared_dir()
        .join("policyreport")
        .join("wgpolicyk8s.io_policyreports.yaml");
    let out = local.kubectl(&["apply", "--server-side", "-f", &crd.display().to_string()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = local.kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/policyreports.wgpolicyk8s.io",
    ]);
    assert!(out.status.success(), "{}", text(&out));

    let kubeconfig = local.kubeconfig.display().to_string();
    let server = Server::start(
        Some(CONFIG),
        &[
            "--world",
            "cluster",
            "--kubeconfig",
            &kubeconfig,
            "--reconcile",
            "--report-interval",
            "1s",
        ],
    );
    eventually(60, "cluster-b discovered (readyz)", || {
        let (_, body) = server.probe("/readyz");
        body.contains("cluster-b up").then_some(())
    })
    .expect("cluster-b discovered");
    local.register_webhooks(server.port, &server.ca_pem);

    // The failover entry gets one endpoint for cluster B, all discovered: gateway address and
    // tls port, the gateway node's locality, the gateway's network, weight = ready endpoints.
    let entry = |name: &str, host: &str| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}
  namespace: bookinfo
  annotations: {{failover-guard.io/failover: \"true\"}}
spec:
  hosts: [{host}.bookinfo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
"
        )
    };
    ok(local.apply(&entry("reviews-failover", "reviews"), &[]));
    let endpoints = |name: &str| {
        local
            .get("serviceentries.networking.istio.io", "bookinfo", name)
            .map(|se| se["spec"]["endpoints"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        endpoints("reviews-failover"),
        json!([{"address": "198.51.100.20", "ports": {"http": 15443}, "locality": "europe-west4/europe-west4-a",
            "network": "network-b", "labels": {"security.istio.io/tlsMode": "istio"}, "weight": 3}])
    );

    // ratings does not run in B: no endpoint to a black hole, and a hand-written one is warned
    // about (FG213) on apply.
    ok(local.apply(&entry("ratings-failover", "ratings"), &[]));
    assert_eq!(endpoints("ratings-failover"), Value::Null);
    let manual = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings-manual, namespace: bookinfo}
spec:
  hosts: [ratings.bookinfo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 198.51.100.20, ports: {http: 15443}, locality: europe-west4/europe-west4-a, network: network-b, labels: {security.istio.io/tlsMode: istio}}
";
    let out = local.apply(manual, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("FG213") && text(&out).contains("does not exist in cluster-b"),
        "{}",
        text(&out)
    );
    // The PolicyReport loop judges by the same configuration in force as the webhook, the
    // discovered remotes included: the stored entry's FG213 is in the namespace's report.
    eventually(30, "FG213 in the bookinfo PolicyReport", || {
        let report = local.get("policyreport", "bookinfo", "failover-guard")?;
        report["results"]
            .as_array()?
            .iter()
            .any(|r| r["rule"] == "FG213" && r["resources"][0]["name"] == "ratings-manual")
            .then_some(())
    })
    .expect("FG213 reported");

    // The namespace opted in to a default AuthorizationPolicy has one (it had none).
    let policy = eventually(30, "the default AuthorizationPolicy", || {
        local.get(
            "authorizationpolicies.security.istio.io",
            "bookinfo",
            "failover-guard-default",
        )
    })
    .expect("default AuthorizationPolicy");
    assert_eq!(
        policy["spec"]["rules"][0]["from"][0]["source"]["principals"],
        json!(["cluster.local/ns/bookinfo/sa/*"])
    );

    // render --cluster prints the same entry (discovered), and it passes check clean.
    let config_path = server.path("config.yaml");
    let render = Command::new(common::BIN)
        .args([
            "render",
            "--cluster",
            "--service",
            "reviews",
            "-n",
            "bookinfo",
        ])
        .args(["--kubeconfig", &kubeconfig, "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(render.status.success(), "{}", text(&render));
    let rendered = String::from_utf8(render.stdout.clone()).unwrap();
    assert!(
        rendered.contains("198.51.100.20") && rendered.contains("weight: 3"),
        "{rendered}"
    );
    // The namespace has a policy now (the default): render adds none.
    assert!(
        !rendered.contains("kind: AuthorizationPolicy"),
        "{rendered}"
    );
    let file = server.path("rendered.yaml");
    std::fs::write(&file, &rendered).unwrap();
    // A pipeline without cluster access checks with the remote typed, as it was discovered.
    let typed = server.path("typed.yaml");
    std::fs::write(
        &typed,
        format!(
            "{CONFIG}remotes:\n- {{name: cluster-b, network: network-b, locality: europe-west4/europe-west4-a, gateway: {{address: 198.51.100.20, port: 15443}}}}\n"
        ),
    )
    .unwrap();
    let check = Command::new(common::BIN)
        .args(["check", "--config"])
        .arg(&typed)
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));

    // From here on failover-guard is the remote's only reader: its watches keep the view
    // current, so the changes below cost the remote no LIST (counted by the remote API server).
    let lists_before = list_requests(&remote);
    // Scaling B changes the weight (reconcile, server-side apply as failover-guard).
    ok(remote.apply(&reviews_slice(5), &[]));
    let state = || {
        format!(
            "readyz: {}\nmetrics: {}",
            server.probe("/readyz").1,
            server
                .probe("/metrics")
                .1
                .lines()
                .filter(|l| l.contains("remote") || l.contains("reconcile"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    };
    if eventually(60, "weight 5 after scaling B", || {
        (endpoints("reviews-failover")[0]["weight"] == 5).then_some(())
    })
    .is_none()
    {
        let context = format!("{}\n{}", endpoints("reviews-failover"), state());
        let mut server = server;
        let (_, logs) = server.terminate_with_logs();
        panic!("{context}\nlogs:\n{logs}");
    }
    let out = local.kubectl(&[
        "get",
        "serviceentries.networking.istio.io",
        "reviews-failover",
        "-n",
        "bookinfo",
        "--show-managed-fields",
        "-o",
        "json",
    ]);
    let stored: Value = serde_json::from_slice(&out.stdout).expect("kubectl JSON");
    assert!(
        stored["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["manager"] == "failover-guard" && m["operation"] == "Apply"),
        "{stored:#}"
    );

    // A new gateway address propagates.
    set_gateway_address(&remote, "198.51.100.21");
    eventually(60, "the new gateway address", || {
        (endpoints("reviews-failover")[0]["address"] == "198.51.100.21").then_some(())
    })
    .unwrap_or_else(|| panic!("{}\n{}", endpoints("reviews-failover"), state()));
    assert_eq!(
        list_requests(&remote),
        lists_before,
        "discovery listed the remote again after a change (LIST requests by resource)"
    );

    // GitOps re-applies the unchanged manifest, with client-side apply (Argo CD's default) and
    // with server-side apply under a controller's field manager (Flux): neither undoes what the
    // reconciler wrote, nor fights it, nor changes the stored object at all.
    let stored = || {
        local
            .get(
                "serviceentries.networking.istio.io",
                "bookinfo",
                "reviews-failover",
            )
            .expect("reviews-failover")
    };
    let before = stored();
    for extra in [
        &[][..],
        &["--server-side", "--field-manager=kustomize-controller"],
    ] {
        let out = local.apply(&entry("reviews-failover", "reviews"), extra);
        assert!(out.status.success(), "re-apply {extra:?}: {}", text(&out));
        let after = stored();
        assert_eq!(after["spec"], before["spec"], "re-apply {extra:?}");
        assert_eq!(
            after["metadata"]["generation"], before["metadata"]["generation"],
            "re-apply {extra:?} changed the spec"
        );
        assert_eq!(
            after["metadata"]["annotations"]["failover-guard.io/mutated"],
            before["metadata"]["annotations"]["failover-guard.io/mutated"]
        );
    }
    assert_eq!(
        endpoints("reviews-failover")[0]["weight"],
        5,
        "the reconciled weight stays"
    );

    // simulate --cluster reads the remotes as serve does: the entry's endpoint is cluster B's,
    // so failing this cluster's locality moves the traffic to B, and failing B keeps it here
    // (on the local endpoints simulate assumes, as this test runs no pods).
    let simulate = |fail: &str| {
        let out = Command::new(common::BIN)
            .args([
                "simulate",
                "--cluster",
                "--kubeconfig",
                &kubeconfig,
                "--config",
            ])
            .arg(&config_path)
            .args([
                "--host",
                "reviews.bookinfo.svc.cluster.local",
                "--fail",
                fail,
            ])
            .args(["-n", "bookinfo", "--output", "json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice::<Value>(&out.stdout).expect("simulate JSON")
    };
    let report = simulate("europe-west1");
    let text_of = |v: &Value| v.to_string();
    assert!(
        text_of(&report).contains("\"cluster-b\""),
        "the endpoint is named by its discovered cluster: {report:#}"
    );
    let carried = &report["clusters"][0]["failure"];
    assert_eq!(carried["clusters"], json!(["cluster-b"]), "{report:#}");
    let report = simulate("cluster-b");
    let carried = &report["clusters"][0]["failure"];
    assert_eq!(carried["clusters"], json!([]), "{report:#}");
    assert_eq!(carried["carriedBy"], 0, "{report:#}");

    // A LoadBalancer that reports a hostname (AWS NLBs): discovery resolves it as istiod
    // resolves hostname gateways, and the entry gets its addresses, never the hostname (pilot
    // would drop a hostname endpoint of a merged entry). Then the IP again.
    set_gateway_hostname(&remote, "localhost");
    eventually(60, "the resolved gateway hostname", || {
        let endpoints = endpoints("reviews-failover");
        let addresses: Vec<&str> = endpoints
            .as_array()?
            .iter()
            .filter_map(|e| e["address"].as_str())
            .collect();
        (addresses.contains(&"127.0.0.1")
            && !addresses.contains(&"localhost")
            && !addresses.contains(&"198.51.100.21"))
        .then_some(())
    })
    .unwrap_or_else(|| panic!("{}\n{}", endpoints("reviews-failover"), state()));
    set_gateway_address(&remote, "198.51.100.21");
    eventually(60, "the IP gateway again", || {
        (endpoints("reviews-failover")[0]["address"] == "198.51.100.21").then_some(())
    })
    .unwrap_or_else(|| panic!("{}\n{}", endpoints("reviews-failover"), state()));

    // B goes away: admission keeps working with the last known state, and readyz and the
    // metric say B is down.
    drop(remote);
    eventually(90, "cluster-b reported down", || {
        let (_, body) = server.probe("/readyz");
        body.contains("cluster-b DOWN").then_some(())
    })
    .unwrap_or_else(|| panic!("{}", state()));
    let (_, metrics) = server.probe("/metrics");
    assert!(
        metrics.contains("failover_guard_remote_up{cluster=\"cluster-b\"} 0"),
        "{metrics}"
    );
    // What deploy/monitoring's unreachable-remote alert reads is what the server exposes.
    common::check_remote_monitoring_against(&metrics);
    let started = Instant::now();
    ok(local.apply(&entry("reviews-failover-2", "reviews"), &[]));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        endpoints("reviews-failover-2")[0]["address"],
        "198.51.100.21",
        "the last known state is used"
    );
    // Remote credentials never reach the logs.
    let mut server = server;
    let (_, logs) = server.terminate_with_logs();
    assert!(!logs.contains(READER_TOKEN), "{logs}");
}

/// Multi-primary (istio.io's "Install Multi-Primary"): istiod merges cluster B's workloads
/// itself, so failover-guard asks for no failover entry. On the two real API servers: B's pod,
/// read through the remote secret (Services, EndpointSlices, Pods and Nodes), reaches
/// `simulate --cluster` and FG601 labelled as B's; FG402 asks a Service for a DestinationRule
/// only; a hand-written failover entry is reported as a duplicate (FG208, FG108), and nothing
/// is written into it.
#[test]
fn multi_primary_end_to_end() {
    let Some(local) = ControlPlane::start() else {
        return;
    };
    let Some(remote) = ControlPlane::start() else {
        return;
    };
    local.install_istio_crds();

    // Cluster B: the reader role, a node in europe-west4, helloworld with one ready pod.
    reader_access(&remote, "sample");
    // No controller manager runs here: the pod's ServiceAccount is made by hand.
    ok(remote.kubectl(&["-n", "sample", "create", "serviceaccount", "default"]));
    ok(remote.apply(
        "apiVersion: v1
kind: Node
metadata:
  name: node-b1
  labels: {topology.kubernetes.io/region: europe-west4, topology.kubernetes.io/zone: europe-west4-a}
---
apiVersion: v1
kind: Service
metadata: {name: helloworld, namespace: sample}
spec:
  selector: {app: helloworld}
  ports: [{name: http, port: 5000}]
---
apiVersion: v1
kind: Pod
metadata:
  name: helloworld-v2
  namespace: sample
  labels: {app: helloworld, version: v2, security.istio.io/tlsMode: istio}
spec:
  nodeName: node-b1
  containers: [{name: helloworld, image: docker.io/istio/examples-helloworld-v2}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: helloworld-1
  namespace: sample
  labels: {kubernetes.io/service-name: helloworld}
addressType: IPv4
ports: [{name: http, port: 5000}]
endpoints:
- addresses: [10.2.0.7]
  conditions: {ready: true}
  nodeName: node-b1
  targetRef: {kind: Pod, name: helloworld-v2, namespace: sample}
",
        &[],
    ));
    ok(remote.kubectl(&[
        "-n",
        "sample",
        "patch",
        "pod",
        "helloworld-v2",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status": {"podIP": "10.2.0.7", "podIPs": [{"ip": "10.2.0.7"}]}}"#,
    ]));

    // Cluster A: istiod's Service, the remote secret, and the same Service.
    ok(local.kubectl(&["create", "namespace", "istio-system"]));
    ok(local.apply(
        "apiVersion: v1
kind: Service
metadata: {name: istiod, namespace: istio-system}
spec:
  selector: {app: istiod}
  ports: [{name: grpc-xds, port: 15010}]
",
        &[],
    ));
    ok(local.apply(&remote_secret("cluster-b", &remote, READER_TOKEN), &[]));
    ok(local.kubectl(&["create", "namespace", "sample"]));
    let config = "cluster:
  name: cluster-a
  network: network-a
  localities: [europe-west1/europe-west1-b]
remotes:
  - {name: cluster-b, network: network-a, locality: europe-west4/europe-west4-a, gateway: {address: 198.51.100.20}}
multicluster: {model: multiPrimary}
discovery:
  source: istio-secrets
";
    let kubeconfig = local.kubeconfig.display().to_string();
    let server = Server::start(
        Some(config),
        &["--world", "cluster", "--kubeconfig", &kubeconfig],
    );
    eventually(60, "cluster-b discovered (readyz)", || {
        let (_, body) = server.probe("/readyz");
        (body.contains("cluster-b up")
            && body.contains("multicluster: config says multiPrimary; the cluster shows: istiod runs here and reads 1 remote secret"))
        .then_some(())
    })
    .unwrap_or_else(|| panic!("{}", server.probe("/readyz").1));
    assert!(!server.probe("/readyz").1.contains("differs"));
    local.register_webhooks(server.port, &server.ca_pem);

    // FG402 asks for the DestinationRule, not for a failover entry.
    let out = local.apply(
        "apiVersion: v1
kind: Service
metadata: {name: helloworld, namespace: sample}
spec:
  selector: {app: helloworld}
  ports: [{name: http, port: 5000}]
",
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("Warning: FG402 Service sample/helloworld: helloworld.sample.svc.cluster.local has no DestinationRule with outlierDetection"),
        "{said}"
    );
    assert!(!said.contains("ServiceEntry"), "{said}");

    // The DestinationRule of Istio's docs: failover by cluster, which ranks B's pod below A's.
    let out = local.apply(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: helloworld, namespace: sample}
spec:
  host: helloworld.sample.svc.cluster.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}
    loadBalancer:
      localityLbSetting:
        failoverPriority: [topology.istio.io/cluster]
",
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("FG108"), "{}", text(&out));

    // simulate --cluster: B's pod, read through the remote secret, labelled as B's.
    let config_path = local.dir.path().join("multi-primary.yaml");
    std::fs::write(&config_path, config).unwrap();
    let out = Command::new(common::BIN)
        .args([
            "simulate",
            "--cluster",
            "--kubeconfig",
            &kubeconfig,
            "--config",
        ])
        .arg(&config_path)
        .args([
            "--host",
            "helloworld.sample.svc.cluster.local",
            "-n",
            "sample",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        table.contains("p1 europe-west4/europe-west4-a  weight 1  10.2.0.7:5000 (cluster-b, mTLS)"),
        "{table}"
    );
    assert!(table.contains(": failover"), "{table}");

    // A failover entry left over from the serviceEntries pattern: nothing is written into it,
    // FG208 says it duplicates B's endpoints, and FG601 shows the tie it causes.
    let out = local.apply(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: helloworld-failover, namespace: sample}
spec:
  hosts: [helloworld.sample.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5000, name: http, protocol: HTTP}]
  endpoints:
  - {address: 198.51.100.20, ports: {http: 15443}, locality: europe-west4/europe-west4-a, labels: {security.istio.io/tlsMode: istio}}
",
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("Warning: FG208 ServiceEntry sample/helloworld-failover: this entry lists remote endpoints of helloworld.sample.svc.cluster.local"),
        "{said}"
    );
    // kubectl shows the first 120 characters of a warning: the tie is in FG601's, whole in
    // `check`'s output and the PolicyReport.
    assert!(
        said.contains("Warning: FG601 ServiceEntry sample/helloworld-failover: helloworld:5000: p0 europe-west1/europe-west1-b local; p0 europe-west4"),
        "{said}"
    );
    let stored = local
        .get(
            "serviceentries.networking.istio.io",
            "sample",
            "helloworld-failover",
        )
        .expect("stored entry");
    assert_eq!(
        stored["spec"]["endpoints"].as_array().map(Vec::len),
        Some(1),
        "{stored:#}"
    );
}

/// The API server's counters as the scale benchmarks and the fault tests read them: requests
/// of what discovery reads only, and watch bytes as events sent times their mean size (the API
/// server encodes, and sizes, an event once for all its watchers).
#[test]
fn api_counters_read_what_discovery_reads() {
    let text = r#"apiserver_request_total{code="200",component="apiserver",dry_run="",group="discovery.k8s.io",resource="endpointslices",scope="cluster",subresource="",verb="LIST",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="cluster",subresource="",verb="LIST",version="v1"} 9
apiserver_response_sizes_sum{component="apiserver",group="",resource="services",scope="cluster",subresource="",verb="LIST",version="v1"} 1000
apiserver_response_sizes_sum{component="apiserver",group="",resource="services",scope="namespace",subresource="",verb="PATCH",version="v1"} 50
apiserver_watch_events_sizes_sum{group="discovery.k8s.io",kind="EndpointSlice",version="v1"} 500
apiserver_watch_events_sizes_count{group="discovery.k8s.io",kind="EndpointSlice",version="v1"} 5
apiserver_watch_events_total{group="discovery.k8s.io",kind="EndpointSlice",version="v1"} 15
apiserver_watch_events_total{group="",kind="ConfigMap",version="v1"} 15
apiserver_longrunning_requests{component="apiserver",group="",resource="services",scope="cluster",subresource="",verb="WATCH",version="v1"} 2
"#;
    let c = common::scale::ApiCounters::parse(text);
    assert_eq!(c.count("LIST"), 3.0);
    assert_eq!(c.watch_events(), 15.0);
    assert_eq!(c.bytes(), 1000.0 + 15.0 * 100.0);
    assert_eq!(c.open_watches, 2.0);
    let later = common::scale::ApiCounters::parse(&text.replace("} 15\n", "} 25\n"));
    assert_eq!(later.since(&c).watch_events(), 10.0);
}

/// Faults at scale (#31): a remote of 2,000 Services with a slice each, and a second remote
/// behind a proxy that first does not answer at all and then answers slowly. The hung remote
/// does not delay the other one's changes; the slow one is read once it answers; the large
/// remote's API server restarts during endpoint churn, and its view resumes from the watches
/// (the restarted server's own counters show no relist loop) and follows a change made after.
#[test]
fn remote_faults_at_scale() {
    use common::{proxy::SlowProxy, scale};
    let Some(mut b) = ControlPlane::start() else {
        return;
    };
    let Some(c) = ControlPlane::start() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (plane, services, ip) in [(&b, 2000, "198.51.100.20"), (&c, 20, "198.51.100.30")] {
        let client = runtime.block_on(scale::client(&plane.kubeconfig)).unwrap();
        runtime
            .block_on(scale::load(&client, &scale::remote_objects(services), 16))
            .unwrap();
        runtime
            .block_on(scale::set_gateway_address(&client, ip))
            .unwrap();
    }
    let proxy = SlowProxy::hanging(c.port);
    let through_proxy = c.dir.path().join("kubeconfig-proxy");
    std::fs::write(
        &through_proxy,
        std::fs::read_to_string(&c.kubeconfig)
            .unwrap()
            .replace(&format!(":{}\"", c.port), &format!(":{}\"", proxy.port)),
    )
    .unwrap();
    let config = format!(
        "cluster:
  name: cluster-a
  network: network-a
  localities: [europe-west1/europe-west1-b]
discovery:
  source: kubeconfigs
  kubeconfigs:
    cluster-b: {}
    cluster-c: {}
",
        b.kubeconfig.display(),
        through_proxy.display()
    );
    let server = Server::start(Some(&config), &["--world", "none"]);

    // The generated failover endpoint of svc-00007 per remote gateway: its weight is the
    // remote's ready endpoints.
    let entry = scale::failover_entry(7);
    let weights = || -> std::collections::BTreeMap<String, u64> {
        let review = server.review("/mutate", &common::review_for("u", "CREATE", &entry));
        let mutated = common::apply_response_patch(&entry, &review);
        mutated["spec"]["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["address"].as_str().unwrap_or("").to_owned(),
                    e["weight"].as_u64().unwrap_or(1),
                )
            })
            .collect()
    };
    let weight_of_b = || weights().get("198.51.100.20").copied();
    let b_client = runtime.block_on(scale::client(&b.kubeconfig)).unwrap();

    // Cluster C does not answer at all: B is read, and follows a change, all the same.
    eventually(120, "cluster-b read", || {
        (weight_of_b() == Some(3)).then_some(())
    })
    .expect("cluster-b read while cluster-c hangs");
    runtime.block_on(scale::scale(&b_client, 7, 5)).unwrap();
    eventually(30, "cluster-b's change while cluster-c hangs", || {
        (weight_of_b() == Some(5)).then_some(())
    })
    .expect("cluster-b follows its changes while cluster-c hangs");
    let readyz = server.probe("/readyz").1;
    assert!(!readyz.contains("cluster-c up"), "{readyz}");

    // C answers, slowly: it is read, and its gateway joins the endpoints.
    proxy.slow(Duration::from_millis(300));
    eventually(120, "cluster-c read through the slow proxy", || {
        weights().contains_key("198.51.100.30").then_some(())
    })
    .expect("cluster-c read once it answers");

    // B's API server restarts while its slices churn.
    let churn = scale::Churn::start(b.kubeconfig.clone(), 2000, Duration::from_millis(100), 7);
    std::thread::sleep(Duration::from_secs(3));
    b.stop_apiserver();
    std::thread::sleep(Duration::from_secs(3));
    b.start_apiserver();
    // Churn on the restarted server long enough for a relist loop to show.
    std::thread::sleep(Duration::from_secs(20));
    let (changes, _) = churn.stop();
    assert!(changes > 100, "the churn made {changes} changes");
    runtime.block_on(scale::scale(&b_client, 7, 2)).unwrap();
    eventually(60, "cluster-b's change after its restart", || {
        (weight_of_b() == Some(2)).then_some(())
    })
    .expect("cluster-b's view resumes after its API server restarts");
    // Discovery's own count of its full lists of B: one per kind at the start, and at most one
    // more per kind for the restart (a watch resumed from a version the restarted server's
    // cache no longer has starts over), never a loop. The restarted server's own counters
    // (from zero) agree for EndpointSlices, the kind that churns; its Services and Nodes are
    // also listed by the API server's own start-up and repair loops.
    let lists = |metrics: &str| -> std::collections::BTreeMap<String, u64> {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("failover_guard_remote_lists_total{")
                    && l.contains("cluster=\"cluster-b\"")
            })
            .filter_map(|l| {
                let kind = l.split("kind=\"").nth(1)?.split('"').next()?.to_owned();
                Some((kind, l.rsplit(' ').next()?.parse().ok()?))
            })
            .collect()
    };
    let after_restart = lists(&server.probe("/metrics").1);
    assert!(
        !after_restart.is_empty() && after_restart.values().all(|n| *n <= 2),
        "discovery's lists of cluster-b: {after_restart:?}"
    );
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        lists(&server.probe("/metrics").1),
        after_restart,
        "a relist loop"
    );
    let slices_listed = list_requests(&b)
        .get("endpointslices")
        .copied()
        .unwrap_or(0);
    eprintln!(
        "discovery's lists of cluster-b: {after_restart:?}; EndpointSlice LISTs on the restarted server: {slices_listed}"
    );
    // A full list of 2,000 slices is 4 pages of 500.
    assert!(
        slices_listed <= 4,
        "EndpointSlice LISTs on the restarted remote: {slices_listed}"
    );
    let readyz = server.probe("/readyz").1;
    assert!(
        readyz.contains("cluster-b up") && readyz.contains("cluster-c up"),
        "{readyz}"
    );
}
