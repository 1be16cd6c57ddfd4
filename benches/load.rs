//! The server under load: the release binary over TLS on loopback, driven by a small Rust
//! client on the same TLS stack (rustls + hyper, one thread), so that the generator costs much
//! less than the server it measures.
//!
//!   cargo bench --bench load [-- --duration 5 --connections 16 --rate 1000 --rounds 2]
//!                              [--no-world | --world-only] [--case "gets a fix"]
//!
//! Side by side in one run, for each case: (a) the shipped config (deploy/base/config.yaml)
//! and (b) the same server with every rule off, measured alternately (a b, then b a, ...).
//! Each case is a real AdmissionReview recorded from a kube-apiserver
//! (tests/fixtures/apiserver). Reported per case: throughput at saturation, the server's CPU
//! time per request (from /proc), the generator's share of the machine, latency at a fixed
//! rate, and the ratios a/b, both of the best round of each and the median over rounds of a
//! and b measured back to back, with the range of those paired ratios (steadier on a noisy
//! machine: use more, shorter rounds, such as `--rounds 5 --duration 2`); per server: peak
//! resident memory and the time to ready. Everything runs twice: without a world and with a
//! world of 10,000 objects (`serve --world manifests`), the size of a large cluster's watch
//! cache.
//! Ratios are what to judge; the machine is shared and noisy. Nothing here is asserted.

#[path = "support/client.rs"]
mod client;
#[path = "support/process.rs"]
mod process;

use std::{
    fmt::Write as _,
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    rc::Rc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use client::{connect, send};
use process::{clock_ticks, cpu_seconds};
use tokio_rustls::TlsConnector;

const BIN: &str = env!("CARGO_BIN_EXE_failover-guard");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// One measured request: a recorded body sent to one webhook path.
struct Case {
    name: &'static str,
    path: &'static str,
    fixture: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "DestinationRule gets a fix, /mutate",
        path: "/mutate",
        fixture: "0000-mutate.json",
    },
    Case {
        name: "DestinationRule already correct, /mutate",
        path: "/mutate",
        fixture: "0001-validate.json",
    },
    Case {
        name: "DestinationRule already correct, /validate",
        path: "/validate",
        fixture: "0001-validate.json",
    },
    Case {
        name: "failover ServiceEntry gets endpoints, /mutate",
        path: "/mutate",
        fixture: "0010-mutate.json",
    },
    Case {
        name: "failover ServiceEntry as mutated, /validate",
        path: "/validate",
        fixture: "0011-validate.json",
    },
];

struct Options {
    duration: Duration,
    connections: usize,
    rate: u32,
    rounds: usize,
    only_world: Option<bool>,
    /// Only the cases whose name contains this.
    case: Option<String>,
}

impl Options {
    fn parse() -> anyhow::Result<Options> {
        let mut options = Options {
            duration: Duration::from_secs(4),
            connections: 16,
            rate: 1000,
            rounds: 2,
            only_world: None,
            case: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().context("a value is missing");
            match arg.as_str() {
                "--bench" => {}
                "--duration" => options.duration = Duration::from_secs_f64(value()?.parse()?),
                "--connections" => options.connections = value()?.parse()?,
                "--rate" => options.rate = value()?.parse()?,
                "--rounds" => options.rounds = value()?.parse()?,
                "--no-world" => options.only_world = Some(false),
                "--world-only" => options.only_world = Some(true),
                "--case" => options.case = Some(value()?),
                other => bail!("unknown argument {other}"),
            }
        }
        Ok(options)
    }
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    let work = tempfile::tempdir()?;
    let status = Command::new(BIN)
        .args(["certs", "--out"])
        .arg(work.path())
        .args(["--extra-name", "localhost"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("failover-guard certs failed");
    }
    let shipped = std::fs::read_to_string(Path::new(ROOT).join("deploy/base/config.yaml"))?;
    let rule_ids = rule_ids()?;
    let off = shipped.replace(
        "rules: {}",
        &format!(
            "rules: {{{}}}",
            rule_ids
                .iter()
                .map(|id| format!("{id}: off"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    if off == shipped {
        bail!("deploy/base/config.yaml no longer has `rules: {{}}`");
    }
    std::fs::write(work.path().join("shipped.yaml"), &shipped)?;
    std::fs::write(work.path().join("off.yaml"), &off)?;
    std::fs::write(work.path().join("world.yaml"), large_world())?;
    let connector = connector(&work.path().join("ca.crt"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let clock_ticks = clock_ticks()?;

    println!(
        "machine: {} cores; generator: this process, one thread; {} connections at saturation; {} req/s for latency; {:?} per measurement, {} rounds, best round kept\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        options.connections,
        options.rate,
        options.duration,
        options.rounds
    );
    for world in [false, true] {
        if options.only_world.is_some_and(|w| w != world) {
            continue;
        }
        let a = Server::start(work.path(), "shipped.yaml", world)?;
        let b = Server::start(work.path(), "off.yaml", world)?;
        println!(
            "## {}\n",
            if world {
                "world of 10,000 objects (serve --world manifests)"
            } else {
                "no world"
            }
        );
        println!(
            "| case | a req/s | b req/s | a/b (best of each) | a/b (median of paired rounds, their range) | a CPU µs/req | b CPU µs/req | a − b CPU µs (median of rounds) | a p50/p99 ms | b p50/p99 ms | generator share |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        for case in CASES.iter().filter(|c| {
            options
                .case
                .as_ref()
                .is_none_or(|n| c.name.contains(n.as_str()))
        }) {
            let body = Bytes::from(std::fs::read(
                Path::new(ROOT)
                    .join("tests/fixtures/apiserver")
                    .join(case.fixture),
            )?);
            let mut best = [None::<Saturation>, None];
            // (a's throughput over b's, a's CPU per request minus b's) of each round: a and b
            // measured back to back see the same machine, unlike the best of each.
            let mut paired = Vec::with_capacity(options.rounds);
            for r in 0..options.rounds {
                let mut round = [0.0_f64; 4];
                // a then b, then b then a (ABBA): a drift of the machine over a round, or
                // whatever the first of two measurements pays, falls on both servers alike.
                let order = if r % 2 == 0 { [0, 1] } else { [1, 0] };
                for slot in order {
                    let server = [&a, &b][slot];
                    let run = runtime.block_on(saturate(
                        &connector,
                        server,
                        case.path,
                        &body,
                        options.connections,
                        options.duration,
                        clock_ticks,
                    ))?;
                    round[slot] = run.per_second();
                    round[2 + slot] = run.server_cpu_us_per_request();
                    if best[slot]
                        .as_ref()
                        .is_none_or(|b| run.per_second() > b.per_second())
                    {
                        best[slot] = Some(run);
                    }
                }
                paired.push((round[0] / round[1], round[2] - round[3]));
            }
            let ratios: Vec<f64> = paired.iter().map(|p| p.0).collect();
            let (low, high) = ratios
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
            let ratio = median(ratios);
            let extra_cpu = median(paired.iter().map(|p| p.1).collect());
            let [Some(sa), Some(sb)] = best else {
                bail!("no rounds measured");
            };
            let la = runtime.block_on(fixed_rate(
                &connector,
                &a,
                case.path,
                &body,
                options.rate,
                options.duration,
            ))?;
            let lb = runtime.block_on(fixed_rate(
                &connector,
                &b,
                case.path,
                &body,
                options.rate,
                options.duration,
            ))?;
            println!(
                "| {} | {:.0} | {:.0} | {:.2} | **{:.2}** ({:.2}-{:.2}) | {:.1} | {:.1} | {:+.1} | {:.2} / {:.2} | {:.2} / {:.2} | {:.0} % |",
                case.name,
                sa.per_second(),
                sb.per_second(),
                sa.per_second() / sb.per_second(),
                ratio,
                low,
                high,
                sa.server_cpu_us_per_request(),
                sb.server_cpu_us_per_request(),
                extra_cpu,
                la.0,
                la.1,
                lb.0,
                lb.1,
                100.0 * sa.generator_share().max(sb.generator_share()),
            );
        }
        println!();
        for (label, server) in [("a: shipped config", &a), ("b: every rule off", &b)] {
            println!(
                "{label}: peak RSS {:.1} MiB, ready in {:.0} ms",
                server.peak_rss_mib()?,
                server.ready.as_secs_f64() * 1000.0
            );
        }
        println!();
    }
    println!(
        "targets: a/b at least 0.85 for a fix, 0.95 for an object already correct; peak RSS under 64 MiB with the 10,000-object world"
    );
    Ok(())
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The IDs of the rules that can be turned off, from `failover-guard explain`.
fn rule_ids() -> anyhow::Result<Vec<String>> {
    let out = Command::new(BIN).arg("explain").output()?;
    let ids: Vec<String> = String::from_utf8(out.stdout)?
        .split_whitespace()
        .filter(|w| w.len() == 5 && w.starts_with("FG"))
        .map(str::to_owned)
        .collect();
    if ids.len() < 10 {
        bail!("`failover-guard explain` listed {} rules", ids.len());
    }
    // The rules-off baseline turns off what can be: a rule that guards istiod (FG602) only
    // denies, and its cost stays in both configurations.
    let mut can_be_off = Vec::with_capacity(ids.len());
    for id in ids {
        let out = Command::new(BIN).args(["explain", &id]).output()?;
        let text = String::from_utf8(out.stdout)?;
        let supports = text
            .lines()
            .find(|l| l.trim_start().starts_with("default:"))
            .unwrap_or("");
        if supports.contains("off") {
            can_be_off.push(id);
        }
    }
    Ok(can_be_off)
}

/// The ticks per second of /proc's CPU times.
/// 10,000 objects over 250 namespaces (as `benches/engine.rs` builds), plus the Service the
/// measured objects are about.
fn large_world() -> String {
    let mut out = String::from(
        "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  selector: {app: reviews}\n  ports: [{name: http, port: 9080}]\n",
    );
    for i in 0..2_500 {
        let ns = format!("team-{}", i % 250);
        let name = format!("svc-{i}");
        let _ = write!(
            out,
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{name: http, port: 8080}}]\n\
             ---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  host: {name}\n  trafficPolicy: {{outlierDetection: {{consecutive5xxErrors: 5}}}}\n  subsets: [{{name: v1, labels: {{version: v1}}}}]\n\
             ---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}-failover, namespace: {ns}}}\nspec:\n  hosts: [{name}.{ns}.svc.cluster.local]\n  resolution: STATIC\n  location: MESH_INTERNAL\n  ports: [{{number: 8080, name: http, protocol: HTTP}}]\n\
             ---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  rules: [{{from: [{{source: {{principals: [cluster.local/ns/{ns}/sa/{name}]}}}}]}}]\n"
        );
    }
    out
}

fn connector(ca: &Path) -> anyhow::Result<TlsConnector> {
    client::connector(&[std::fs::read_to_string(ca)?])
}

/// A server process under test.
struct Server {
    child: Child,
    port: u16,
    ready: Duration,
}

impl Server {
    fn start(work: &Path, config: &str, world: bool) -> anyhow::Result<Server> {
        let port = free_port()?;
        let probe = free_port()?;
        let started = Instant::now();
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .arg("--config")
            .arg(work.join(config))
            .arg("--tls-cert")
            .arg(work.join("tls.crt"))
            .arg("--tls-key")
            .arg(work.join("tls.key"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--probe-listen", &format!("127.0.0.1:{probe}")])
            // The shipped log level and format (info, JSON, as deploy/base/deployment.yaml
            // sets: a line per denied admission).
            .env("FAILOVER_GUARD_LOG", "info")
            .env("FAILOVER_GUARD_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if world {
            command
                .args(["--world", "manifests", "--world-manifests"])
                .arg(work.join("world.yaml"));
        } else {
            command.args(["--world", "none"]);
        }
        let mut child = command.spawn()?;
        loop {
            if let Ok(response) = ureq::get(&format!("http://127.0.0.1:{probe}/readyz")).call()
                && response.status() == 200
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) || child.try_wait()?.is_some() {
                let _ = child.kill();
                bail!("the server ({config}) did not become ready");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(Server {
            ready: started.elapsed(),
            child,
            port,
        })
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .context("no VmHWM")?;
        let kib: f64 = line
            .split_whitespace()
            .nth(1)
            .context("odd VmHWM")?
            .parse()?;
        Ok(kib / 1024.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct Saturation {
    requests: u64,
    wall: Duration,
    server_cpu: f64,
    generator_cpu: f64,
}

impl Saturation {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.wall.as_secs_f64()
    }
    fn server_cpu_us_per_request(&self) -> f64 {
        self.server_cpu * 1e6 / self.requests as f64
    }
    /// The generator's CPU time as a share of the whole machine's.
    fn generator_share(&self) -> f64 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        self.generator_cpu / (self.wall.as_secs_f64() * cores)
    }
}

/// Runs the connection tasks to the end; the first failure fails the measurement.
async fn run_all(
    local: tokio::task::LocalSet,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
) -> anyhow::Result<()> {
    local
        .run_until(async {
            for task in tasks {
                task.await??;
            }
            anyhow::Ok(())
        })
        .await
}

/// Closed loop: every connection sends its next request as soon as the answer is in.
async fn saturate(
    connector: &TlsConnector,
    server: &Server,
    path: &'static str,
    body: &Bytes,
    connections: usize,
    duration: Duration,
    ticks: f64,
) -> anyhow::Result<Saturation> {
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut sender = connect(connector, server.port).await?;
        // Warm-up: handshakes done, allocator and caches warm.
        for _ in 0..50 {
            send(&mut sender, path, body).await?;
        }
        senders.push(sender);
    }
    let server_before = cpu_seconds(&server.pid(), ticks)?;
    let generator_before = cpu_seconds("self", ticks)?;
    let start = Instant::now();
    let deadline = start + duration;
    let count = Rc::new(std::cell::Cell::new(0u64));
    let local = tokio::task::LocalSet::new();
    let mut tasks = Vec::new();
    for mut sender in senders {
        let body = body.clone();
        let count = count.clone();
        tasks.push(local.spawn_local(async move {
            while Instant::now() < deadline {
                send(&mut sender, path, &body).await?;
                count.set(count.get() + 1);
            }
            anyhow::Ok(())
        }));
    }
    run_all(local, tasks).await?;
    let wall = start.elapsed();
    Ok(Saturation {
        requests: count.get(),
        wall,
        server_cpu: cpu_seconds(&server.pid(), ticks)? - server_before,
        generator_cpu: cpu_seconds("self", ticks)? - generator_before,
    })
}

/// Open loop at `rate` requests/s over four connections; each latency counts from the moment
/// the request was due, so a stalled server is not hidden (coordinated omission). Returns p50
/// and p99 in milliseconds.
async fn fixed_rate(
    connector: &TlsConnector,
    server: &Server,
    path: &'static str,
    body: &Bytes,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<(f64, f64)> {
    const CONNECTIONS: u32 = 4;
    let latencies = Rc::new(std::cell::RefCell::new(Vec::<Duration>::new()));
    let local = tokio::task::LocalSet::new();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut sender = connect(connector, server.port).await?;
        send(&mut sender, path, body).await?;
        let body = body.clone();
        let latencies = latencies.clone();
        let period = Duration::from_secs_f64(f64::from(CONNECTIONS) / f64::from(rate.max(1)));
        tasks.push(local.spawn_local(async move {
            let start = tokio::time::Instant::now();
            let mut due = start;
            while due.duration_since(start) < duration {
                // Behind schedule (the server was slow): the latency counts from when the
                // request was due. Ahead: from when it is sent, since the timer wakes up to a
                // millisecond late and that delay is the generator's, not the server's.
                let sent = if tokio::time::Instant::now() >= due {
                    due
                } else {
                    tokio::time::sleep_until(due).await;
                    tokio::time::Instant::now()
                };
                send(&mut sender, path, &body).await?;
                latencies.borrow_mut().push(sent.elapsed());
                due += period;
            }
            anyhow::Ok(())
        }));
    }
    run_all(local, tasks).await?;
    let mut all = latencies.take();
    all.sort();
    let pick = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    Ok((pick(0.50), pick(0.99)))
}
