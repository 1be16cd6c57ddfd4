//! The world at scale: a generated mesh of 50,000 Services, 100,000 EndpointSlices and Pods,
//! 5,000 Nodes, 20,000 DestinationRules and 5,000 ServiceEntries (tests/common/mesh.rs).
//!
//!   cargo bench --bench world [-- --scale 1.0 --rounds 7 --admissions 500 --no-cluster]
//!
//! In process, against the same objects:
//! - the memory the world holds per kind (what the process's resident memory grows by as each
//!   kind is added, one generated object at a time; the webhook's world holds Services,
//!   Namespaces, DestinationRules, ServiceEntries, AuthorizationPolicies and
//!   PeerAuthentications);
//! - the cost of an admission with FG601 on, against the generated world and against an empty
//!   one (the baseline of the same run): a DestinationRule and a failover ServiceEntry of the
//!   world applied again (the GitOps re-apply), and new ones for Services that have none (a
//!   DestinationRule as users write it, which gets a fix, and as the mutating webhook stores
//!   it; a failover entry that gets its endpoints), each for a different Service every time
//!   (1,000 of them: FG601's memo misses) and for the same one again (it hits).
//!   Measured in alternating rounds (empty, world, world, empty, ...); the median of the
//!   paired ratios is printed with their range.
//!
//! Unless `--no-cluster`: the mesh is loaded into a real kube-apiserver (the e2e control plane,
//! with Istio's CRDs) and the release webhook is started on it (`serve --world cluster`): the
//! time to load each kind, the time from start to `/readyz` with the world synced, and the
//! server's peak and current resident memory.
//! Nothing here is asserted; the machine is shared and noisy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use common::mesh::{self, MeshSize};
use failover_guard::{
    admission::{self, Webhook},
    config::Config,
    world::{ManifestWorld, World},
};
use serde_json::{Value, json};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    scale: f64,
    rounds: usize,
    admissions: usize,
    cluster: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut out = Args {
        scale: 1.0,
        rounds: 7,
        admissions: 500,
        cluster: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().context(format!("{arg} needs a value"));
        match arg.as_str() {
            "--scale" => out.scale = value()?.parse()?,
            "--rounds" => out.rounds = value()?.parse()?,
            "--admissions" => out.admissions = value()?.parse()?,
            "--no-cluster" => out.cluster = false,
            "--bench" => {}
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(out)
}

fn review(object: &Value) -> Vec<u8> {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", "v1"));
    let kind = object["kind"].as_str().unwrap_or("");
    let resource = format!("{}s", kind.to_lowercase());
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "3a1e9b4c-0d7f-4e2a-9c61-5b8f2d7e1a40",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "name": object["metadata"]["name"], "namespace": object["metadata"]["namespace"],
            "operation": "CREATE", "userInfo": {"username": "kubernetes-admin"},
            "object": object, "oldObject": null, "dryRun": false
        }
    }))
    .unwrap()
}

/// A DestinationRule as users write it for Service `i` (no outlier detection yet).
fn destination_rule(size: &MeshSize, i: usize) -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": format!("svc-{i}-new"), "namespace": mesh::namespace(size, i)},
        "spec": {"host": format!("svc-{i}"),
            "trafficPolicy": {"connectionPool": {"http": {"http1MaxPendingRequests": 100}},
                "loadBalancer": {"simple": "LEAST_REQUEST", "localityLbSetting": {"enabled": true,
                    "failover": [{"from": "europe-west1", "to": "europe-west4"}]}}},
            "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]}})
}

/// The same rule as the mutating webhook stores it.
fn stored(mut rule: Value, config: &Config) -> Value {
    failover_guard::engine::evaluate(
        &mut rule,
        config,
        None,
        "default",
        failover_guard::engine::Pass::Mutate,
    );
    rule
}

/// A failover ServiceEntry for Service `i`, for the webhook to give endpoints.
fn failover_entry(size: &MeshSize, i: usize) -> Value {
    let ns = mesh::namespace(size, i);
    json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": format!("svc-{i}-failover-new"), "namespace": ns,
            "annotations": {"failover-guard.io/failover": "true"}},
        "spec": {"hosts": [format!("svc-{i}.{ns}.svc.cluster.local")], "location": "MESH_INTERNAL",
            "resolution": "STATIC", "ports": [{"number": 8080, "name": "http", "protocol": "HTTP"}]}})
}

/// This process's resident memory in bytes.
fn live() -> isize {
    status(std::process::id(), "VmRSS:").unwrap_or(0.0) as isize
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / 1024.0 / 1024.0)
}

/// The world's memory, per kind it holds.
fn build_world(size: &MeshSize) -> ManifestWorld {
    println!("\n### Memory of the world, per kind (in process)\n");
    println!("| kind | objects | held | per object |");
    println!("|---|---|---|---|");
    let mut world = ManifestWorld::new(&[], "default", "svc.cluster.local");
    let mut total = 0isize;
    for kind in ["Namespace", "Service", "DestinationRule", "ServiceEntry"] {
        // One object at a time, so that what the process grows by is what the world holds.
        let n = mesh::count(size, kind);
        let before = live();
        for i in 0..n {
            world.upsert(mesh::object(size, kind, i));
        }
        let held = live() - before;
        total += held;
        println!(
            "| {kind} | {n} | {} | {:.0} B |",
            mib(held as f64),
            held as f64 / n.max(1) as f64
        );
    }
    println!("| total | | {} | |", mib(total as f64));
    println!(
        "\nEndpointSlices, Pods and Nodes are not held: the local world does not watch them.\n"
    );
    world
}

/// Times `n` admissions of `bodies` (cycled) against `world`.
fn time(bodies: &[Vec<u8>], n: usize, webhook: Webhook, config: &Config, world: &dyn World) -> f64 {
    let started = Instant::now();
    for k in 0..n {
        let body = &bodies[k % bodies.len()];
        let reviewed = admission::review(black_box(body), webhook, config, Some(world));
        black_box(reviewed.map(|r| r.findings.len()).ok());
    }
    started.elapsed().as_secs_f64() / n as f64
}

fn admissions(size: &MeshSize, world: &ManifestWorld, args: &Args) {
    let config = Config::example();
    let empty = ManifestWorld::new(&[], "default", "svc.cluster.local");
    // Services 0.. have DestinationRules in the world and the next ones failover entries; the
    // Services after those have neither.
    let distinct = 1000;
    let fresh = |k: usize| (size.destination_rules + size.service_entries + k) % size.services;
    let in_world = |kind: &str, count: usize| -> Vec<Value> {
        (0..distinct.min(count))
            .map(|k| mesh::object(size, kind, k))
            .collect()
    };
    let bodies = |objects: &[Value]| objects.iter().map(review).collect::<Vec<_>>();
    let new_rules: Vec<Value> = (0..distinct)
        .map(|k| destination_rule(size, fresh(k)))
        .collect();
    let rules = in_world("DestinationRule", size.destination_rules);
    let entries = in_world("ServiceEntry", size.service_entries);
    let new_entries: Vec<Value> = (0..distinct)
        .map(|k| failover_entry(size, fresh(k)))
        .collect();
    let cases: Vec<(&str, Webhook, Vec<Vec<u8>>)> = vec![
        (
            "DestinationRule re-applied, /mutate",
            Webhook::Mutate,
            bodies(&rules),
        ),
        (
            "DestinationRule re-applied, /validate",
            Webhook::Validate,
            bodies(&rules),
        ),
        (
            "new DestinationRule that gets a fix, /mutate",
            Webhook::Mutate,
            bodies(&new_rules),
        ),
        (
            "new DestinationRule as stored, /validate",
            Webhook::Validate,
            bodies(
                &new_rules
                    .iter()
                    .map(|r| stored(r.clone(), &config))
                    .collect::<Vec<_>>(),
            ),
        ),
        (
            "failover ServiceEntry re-applied, /validate",
            Webhook::Validate,
            bodies(&entries),
        ),
        (
            "new failover ServiceEntry, /mutate",
            Webhook::Mutate,
            bodies(&new_entries),
        ),
    ];
    println!(
        "### Per admission, FG601 on: the generated world against an empty one (in process)\n"
    );
    println!(
        "| case | Services | empty world | generated world | ratio (median of paired rounds, range) |"
    );
    println!("|---|---|---|---|---|");
    for (name, webhook, bodies) in &cases {
        for (label, bodies) in [
            ("a different one each time", &bodies[..]),
            ("the same one", &bodies[..1]),
        ] {
            let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
            // Warm both (and the memo for "the same one").
            time(bodies, 50, *webhook, &config, &empty);
            time(bodies, 50, *webhook, &config, world);
            for round in 0..args.rounds {
                let (e, w) = if round % 2 == 0 {
                    let e = time(bodies, args.admissions, *webhook, &config, &empty);
                    (e, time(bodies, args.admissions, *webhook, &config, world))
                } else {
                    let w = time(bodies, args.admissions, *webhook, &config, world);
                    (time(bodies, args.admissions, *webhook, &config, &empty), w)
                };
                a.push(e);
                b.push(w);
                ratios.push(w / e);
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let (lo, hi) = (
                ratios.iter().copied().fold(f64::MAX, f64::min),
                ratios.iter().copied().fold(0.0, f64::max),
            );
            println!(
                "| {name} | {label} | {:.0} µs | {:.0} µs | {:.2} ({lo:.2}-{hi:.2}) |",
                median(&mut a) * 1e6,
                median(&mut b) * 1e6,
                median(&mut ratios)
            );
        }
    }
}

fn status(pid: u32, field: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

fn in_cluster(size: &MeshSize) -> anyhow::Result<()> {
    let plane = ControlPlane::start().context("the control plane is needed (FG_E2E=skip)")?;
    plane.install_istio_crds();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = runtime
        .block_on(common::scale::client(&plane.kubeconfig))
        .map_err(anyhow::Error::msg)?;
    println!("### Into a real kube-apiserver\n");
    println!("| kind | objects | load time |");
    println!("|---|---|---|");
    let started = Instant::now();
    for kind in mesh::KINDS {
        let objects = mesh::objects(size, kind);
        let t = Instant::now();
        runtime
            .block_on(common::scale::load(&client, &objects, 64))
            .map_err(anyhow::Error::msg)?;
        println!("| {kind} | {} | {:.0?} |", objects.len(), t.elapsed());
    }
    println!("| all | | {:.0?} |\n", started.elapsed());

    let kubeconfig = plane.kubeconfig.display().to_string();
    let started = Instant::now();
    let server = Server::start(None, &["--world", "cluster", "--kubeconfig", &kubeconfig]);
    let pid = server.pid();
    while !server.probe("/readyz").1.contains("world: synced") {
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("the world did not sync within 30 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let ready = started.elapsed();
    let (_, metrics) = server.probe("/metrics");
    let objects: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("failover_guard_world_objects{"))
        .collect();
    println!("`serve --world cluster` on it:\n");
    println!("- time from start to `/readyz` with the world synced: {ready:.1?}");
    println!(
        "- peak resident memory (VmHWM): {}; resident now (VmRSS): {}",
        mib(status(pid, "VmHWM:").unwrap_or(0.0)),
        mib(status(pid, "VmRSS:").unwrap_or(0.0))
    );
    println!("- objects in the world: {}", objects.join(", "));
    Ok(())
}

use common::{Server, cluster::ControlPlane};

/// In the native models a remote's reading carries its workloads, indexed as istiod's registry
/// looks them up; a reading after a change builds that index again (at most once a second per
/// remote). Its cost for a remote the size of the generated mesh:
fn remote_index(size: &MeshSize) {
    let objects: Vec<std::sync::Arc<Value>> =
        ["Namespace", "Node", "Service", "EndpointSlice", "Pod"]
            .iter()
            .flat_map(|kind| (0..mesh::count(size, kind)).map(move |i| mesh::object(size, kind, i)))
            .map(std::sync::Arc::new)
            .collect();
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        black_box(failover_guard::istio::kube::RemoteObjects::new(
            objects.clone(),
        ));
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "### A native-model remote's workload index\n\nBuilding the index of a remote of {} objects (its Namespaces, Nodes, Services, EndpointSlices and Pods): {:.0?} (median of 5).\n",
        objects.len(),
        times[2]
    );
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let size = MeshSize::scaled(args.scale);
    println!("World at scale: {size:?}");
    let world = build_world(&size);
    admissions(&size, &world, &args);
    drop(world);
    remote_index(&size);
    if args.cluster {
        in_cluster(&size)?;
    }
    Ok(())
}
