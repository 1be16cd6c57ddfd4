//! Remote discovery at the cost of the changes, measured on a real kube-apiserver standing in
//! for the remote clusters (tests/controlplane, the e2e suite's control plane).
//!
//!   cargo bench --bench discovery [-- --services 20000 --rate 10 --minutes 5]
//!                                   [--setups baseline,one,five,replicas]
//!
//! The remote holds `--services` headless Services with one EndpointSlice each (and the
//! east-west gateway); `--rate` slices a second change their ready endpoints for `--minutes`.
//! Each setup runs alone in its own window, against the same remote:
//!
//! - `baseline`: a bare kube-runtime watcher on the remote's Services, EndpointSlices and
//!   Nodes: what any client that follows the changes must read, and how fast it sees them;
//! - `one`: failover-guard's discovery (`remotes::supervise`, the code `serve` runs) of one
//!   remote;
//! - `five`: five remotes (five kubeconfigs to the same API server: its counters are the sum
//!   of the five);
//! - `replicas`: two webhook replicas discovering the one remote (each on its own runtime and
//!   connections, as two pods would).
//!
//! Reported per window, from the API server's own counters (`apiserver_request_total`,
//! `apiserver_response_sizes`, `apiserver_watch_events_total` times the mean event size of
//! `apiserver_watch_events_sizes`) over the resources discovery
//! reads: LISTs after the initial sync by resource (the API server's own repair loops list
//! Services every 3 minutes: they show in every window), the watches open, watch events and
//! their bytes per change; and the time from a change (its PATCH sent) to the reading that carries it
//! (the Service's ready endpoints, the weight of its generated failover endpoint), p50/p99/max,
//! per remote and replica. Ratios are against the baseline of the same run. Nothing here is
//! asserted; the machine is shared and noisy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use common::{cluster::ControlPlane, scale};
use failover_guard::{config::Config, metrics::Metrics, remotes};
use futures::StreamExt as _;
use kube::{
    Api, Client,
    api::DynamicObject,
    config::{KubeConfigOptions, Kubeconfig},
    runtime::{WatchStreamExt as _, watcher},
};

struct Args {
    services: usize,
    rate: f64,
    minutes: f64,
    setups: Vec<String>,
}

fn args() -> anyhow::Result<Args> {
    let mut out = Args {
        services: 20_000,
        rate: 10.0,
        minutes: 5.0,
        setups: ["baseline", "one", "five", "replicas"]
            .map(str::to_owned)
            .to_vec(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().context(format!("{arg} needs a value"));
        match arg.as_str() {
            "--services" => out.services = value()?.parse()?,
            "--rate" => out.rate = value()?.parse()?,
            "--minutes" => out.minutes = value()?.parse()?,
            "--setups" => out.setups = value()?.split(',').map(str::to_owned).collect(),
            "--bench" => {}
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(out)
}

/// The changes one observer waits to see, per remote, and how long each took.
#[derive(Default)]
struct Pending {
    waiting: BTreeMap<(String, usize), (usize, Instant)>,
    latencies: Vec<Duration>,
    superseded: u64,
}

impl Pending {
    fn expect(&mut self, remote: &str, service: usize, ready: usize, at: Instant) {
        if self
            .waiting
            .insert((remote.to_owned(), service), (ready, at))
            .is_some()
        {
            self.superseded += 1;
        }
    }

    fn seen(&mut self, remote: &str, service: usize, ready: usize, now: Instant) {
        let key = (remote.to_owned(), service);
        if let Some((want, at)) = self.waiting.get(&key)
            && *want == ready
        {
            self.latencies.push(now.saturating_duration_since(*at));
            self.waiting.remove(&key);
        }
    }
}

/// One observer: a bare watcher, or a replica of failover-guard's discovery, on its own
/// thread and runtime (stopping it drops every task it started).
struct Observer {
    remotes: Vec<String>,
    pending: Arc<Mutex<Pending>>,
    synced: Arc<Mutex<Option<Duration>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Observer {
    fn start<F, Fut>(remotes: Vec<String>, run: F) -> Observer
    where
        F: FnOnce(Arc<Mutex<Pending>>, Arc<Mutex<Option<Duration>>>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let pending = Arc::new(Mutex::new(Pending::default()));
        let synced = Arc::new(Mutex::new(None));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (p, s) = (pending.clone(), synced.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                tokio::select! {
                    () = run(p, s) => {}
                    _ = stopped => {}
                }
            });
        });
        Observer {
            remotes,
            pending,
            synced,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The ready endpoints of a churned slice, and which Service it is.
fn churned(slice: &DynamicObject) -> Option<(usize, usize)> {
    let name = slice.metadata.name.as_deref()?;
    let i = name
        .strip_prefix("svc-")?
        .strip_suffix("-1")?
        .parse()
        .ok()?;
    let ready = slice.data["endpoints"]
        .as_array()?
        .iter()
        .filter(|e| e["conditions"]["ready"].as_bool() != Some(false))
        .count();
    Some((i, ready))
}

/// The baseline: plain watches on what discovery reads, seeing each change as its event.
fn bare_watcher(kubeconfig: Kubeconfig) -> Observer {
    Observer::start(vec!["bare".into()], move |pending, synced| async move {
        let started = Instant::now();
        let client = client(kubeconfig).await;
        let kinds = [
            ("", "v1", "Service"),
            ("discovery.k8s.io", "v1", "EndpointSlice"),
            ("", "v1", "Node"),
        ];
        let streams = kinds.iter().map(|(g, v, k)| {
            let resource =
                kube::core::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(g, v, k));
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            watcher(api, watcher::Config::default().any_semantic())
                .default_backoff()
                .boxed()
        });
        let mut events = futures::stream::select_all(streams);
        let mut done = 0;
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::InitDone) => {
                    done += 1;
                    if done == kinds.len() {
                        *synced.lock().unwrap() = Some(started.elapsed());
                    }
                }
                Ok(watcher::Event::Apply(o)) => {
                    if let Some((i, ready)) = churned(&o) {
                        pending
                            .lock()
                            .unwrap()
                            .seen("bare", i, ready, Instant::now());
                    }
                }
                _ => {}
            }
        }
    })
}

/// A webhook replica's discovery: `remotes::supervise` over kubeconfig files, as `serve` runs
/// it, observed through its readings.
fn replica(config: Config, names: Vec<String>) -> Observer {
    Observer::start(names.clone(), move |pending, synced| async move {
        let started = Instant::now();
        let state = Arc::new(remotes::Remotes::default());
        let mut changes = state.subscribe();
        let supervise = remotes::supervise(
            None,
            Arc::new(arc_swap::ArcSwap::from_pointee(config)),
            Arc::new(Metrics::new()),
            state.clone(),
        );
        let observe = async {
            loop {
                if changes.changed().await.is_err() {
                    return;
                }
                let now = Instant::now();
                let snapshot = state.snapshot();
                let mut pending = pending.lock().unwrap();
                let waiting: Vec<(String, usize)> = pending.waiting.keys().cloned().collect();
                for found in &snapshot {
                    for (remote, i) in waiting.iter().filter(|(r, _)| *r == found.name) {
                        let key = format!("{}/{}", scale::NAMESPACE, scale::service_name(*i));
                        if let Some(ready) = found.services.get(&key) {
                            pending.seen(remote, *i, *ready as usize, now);
                        }
                    }
                }
                drop(pending);
                let mut synced = synced.lock().unwrap();
                if synced.is_none()
                    && snapshot.len() == names.len()
                    && snapshot
                        .iter()
                        .all(|r| r.services.len() > 1 && r.gateway.is_some())
                {
                    *synced = Some(started.elapsed());
                }
            }
        };
        tokio::select! {
            () = supervise => {}
            () = observe => {}
        }
    })
}

async fn client(kubeconfig: Kubeconfig) -> Client {
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One window's figures.
struct Figures {
    setup: String,
    sync: Option<Duration>,
    counters: scale::ApiCounters,
    changes: usize,
    minutes: f64,
    latencies: Vec<Duration>,
    unseen: usize,
    superseded: u64,
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let plane = ControlPlane::start().context("the control plane is needed (FG_E2E=skip)")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let kubeconfig = Kubeconfig::read_from(&plane.kubeconfig)?;
    let admin = runtime.block_on(client(kubeconfig.clone()));

    let objects = scale::remote_objects(args.services);
    let started = Instant::now();
    runtime
        .block_on(scale::load(&admin, &objects, 32))
        .map_err(anyhow::Error::msg)?;
    runtime
        .block_on(scale::set_gateway_address(&admin, "198.51.100.20"))
        .map_err(anyhow::Error::msg)?;
    eprintln!(
        "loaded {} objects ({} Services with a slice each) in {:.0?}",
        objects.len(),
        args.services,
        started.elapsed()
    );

    let names: Vec<String> = (1..=5).map(|i| format!("remote-{i}")).collect();
    let config = |remotes: &[String]| {
        let kubeconfigs: BTreeMap<String, String> = remotes
            .iter()
            .map(|n| (n.clone(), plane.kubeconfig.display().to_string()))
            .collect();
        Config::from_yaml(
            &serde_json::to_string(&serde_json::json!({
                "cluster": {"name": "cluster-a", "network": "network-a", "localities": ["europe-west1/europe-west1-b"]},
                "discovery": {"source": "kubeconfigs", "kubeconfigs": kubeconfigs},
            }))
            .unwrap(),
            "bench",
        )
        .unwrap()
    };

    // The ready endpoints of each Service's slice now (3 as loaded).
    let mut current = vec![3usize; args.services];
    let mut results = Vec::new();
    for setup in &args.setups {
        let mut observers = match setup.as_str() {
            "baseline" => vec![bare_watcher(kubeconfig.clone())],
            "one" => vec![replica(config(&names[..1]), names[..1].to_vec())],
            "five" => vec![replica(config(&names), names.clone())],
            "replicas" => (0..2)
                .map(|_| replica(config(&names[..1]), names[..1].to_vec()))
                .collect(),
            other => bail!("unknown setup {other}"),
        };
        eprintln!("== {setup}: waiting for the initial sync");
        let waited = Instant::now();
        while observers.iter().any(|o| o.synced.lock().unwrap().is_none()) {
            if waited.elapsed() > Duration::from_secs(600) {
                bail!("{setup}: not synced within 10 minutes");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let sync = observers
            .iter()
            .filter_map(|o| *o.synced.lock().unwrap())
            .max();
        // Let the initial readings settle before the window opens.
        std::thread::sleep(Duration::from_secs(3));
        let before = runtime
            .block_on(scale::ApiCounters::read(&admin))
            .map_err(anyhow::Error::msg)?;
        eprintln!("== {setup}: churning for {} min", args.minutes);
        let window = Duration::from_secs_f64(args.minutes * 60.0);
        let every = Duration::from_secs_f64(1.0 / args.rate);
        let opened = Instant::now();
        let mut changes = 0usize;
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        while opened.elapsed() < window {
            let due = opened + every * u32::try_from(changes).unwrap_or(u32::MAX);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = (seed % args.services as u64) as usize;
            // A new count each time: a patch that changes nothing is no change (no event).
            let ready = 1 + (current[i] + (seed >> 32) as usize % 5) % 6;
            current[i] = ready;
            // Expected before it is sent: a watcher can see it before the PATCH is answered.
            let at = Instant::now();
            for o in &observers {
                let mut pending = o.pending.lock().unwrap();
                for r in &o.remotes {
                    pending.expect(r, i, ready, at);
                }
            }
            runtime
                .block_on(scale::scale(&admin, i, ready))
                .map_err(anyhow::Error::msg)?;
            changes += 1;
        }
        // Changes still in flight get their chance to arrive.
        std::thread::sleep(Duration::from_secs(5));
        let after = runtime
            .block_on(scale::ApiCounters::read(&admin))
            .map_err(anyhow::Error::msg)?;
        let minutes = opened.elapsed().as_secs_f64() / 60.0;
        let mut latencies = Vec::new();
        let (mut unseen, mut superseded) = (0, 0);
        let closed = Instant::now();
        for o in &mut observers {
            o.stop();
            let p = o.pending.lock().unwrap();
            for ((remote, i), (ready, at)) in &p.waiting {
                eprintln!(
                    "{setup}: not seen: {remote} svc-{i:05} ready {ready}, changed {:.1} s before the window closed",
                    closed.saturating_duration_since(*at).as_secs_f64()
                );
            }
            latencies.extend(p.latencies.iter().copied());
            unseen += p.waiting.len();
            superseded += p.superseded;
        }
        latencies.sort();
        results.push(Figures {
            setup: setup.clone(),
            sync,
            counters: after.since(&before),
            changes,
            minutes,
            latencies,
            unseen,
            superseded,
        });
        print_window(results.last().unwrap());
    }
    print_table(&results, &args);
    Ok(())
}

fn print_window(f: &Figures) {
    eprintln!(
        "{}: {} changes in {:.1} min; requests {:?}; LIST by resource {:?}; {:.0} bytes; p99 {:?}",
        f.setup,
        f.changes,
        f.minutes,
        f.counters.requests,
        f.counters.lists,
        f.counters.bytes(),
        percentile(&f.latencies, 0.99)
    );
}

fn print_table(results: &[Figures], args: &Args) {
    println!(
        "\nDiscovery at scale: {} Services with an EndpointSlice each, {}/s slice changes, {:.1} min per window\n",
        args.services, args.rate, args.minutes
    );
    println!(
        "| setup | initial sync | LISTs after sync, by resource | LIST bytes /min | watches open | watch events /min | watch bytes /change | vs baseline | change → reading p50 | p99 | max | seen / expected |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let per_change = |f: &Figures| f.counters.watch_bytes() / f.changes.max(1) as f64;
    let baseline = results
        .iter()
        .find(|f| f.setup == "baseline")
        .map(per_change);
    for f in results {
        let ratio = baseline.map_or("-".to_owned(), |b| format!("{:.2}", per_change(f) / b));
        let lists = if f.counters.lists.is_empty() {
            "none".to_owned()
        } else {
            f.counters
                .lists
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "| {} | {:.1} s | {lists} | {:.0} | {} | {:.0} | {:.0} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {} / {} |",
            f.setup,
            f.sync.unwrap_or_default().as_secs_f64(),
            f.counters.list_bytes / f.minutes,
            f.counters.open_watches,
            f.counters.watch_events() / f.minutes,
            per_change(f),
            ratio,
            percentile(&f.latencies, 0.5).as_secs_f64() * 1000.0,
            percentile(&f.latencies, 0.99).as_secs_f64() * 1000.0,
            f.latencies
                .last()
                .copied()
                .unwrap_or_default()
                .as_secs_f64()
                * 1000.0,
            f.latencies.len(),
            f.latencies.len() + f.unseen + f.superseded as usize,
        );
    }
    println!(
        "\nThe API server lists every Service itself every 3 minutes (its ClusterIP and NodePort repair loops, pkg/controlplane/instance.go repairLoopInterval): those LISTs show in every window, the baseline's too."
    );
}
