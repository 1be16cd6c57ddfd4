//! Endurance: the release server for an hour of mixed admissions at half of its saturation,
//! with remote discovery under endpoint churn, a configuration reload every minute and a
//! certificate rotation every ten.
//!
//!   cargo bench --bench endurance [-- --minutes 60 --services 2000 --churn 10]
//!
//! Set-up: a real kube-apiserver stands in for a remote cluster (`--services` Services with a
//! slice each, `--churn` slice changes a second); the server discovers it through a kubeconfig
//! (`discovery.kubeconfigs`). Its certificate is mounted the way the kubelet mounts a Secret
//! (a `..data` symlink swapped atomically); every ten minutes a new pair is swapped in. Every
//! minute the configuration file changes (FG305 between warn and off), which the server
//! reloads. Saturation is measured first (closed loop, 16 connections, the same request mix);
//! the hour runs open loop at half of it over 8 connections, each latency counted from when
//! the request was due. The mix: the recorded DestinationRule and failover ServiceEntry
//! requests of the load benchmark, and a failover ServiceEntry for a Service of the churned
//! remote (its endpoints come from discovery).
//!
//! Reported: per minute the requests, failures, slow requests (over 250 ms), p50/p99 and the
//! server's resident memory; per ten minutes the p99; every failed or slow request; the growth
//! of resident memory after the first ten minutes; the reloads the server counted.
//! Nothing here is asserted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/client.rs"]
mod client;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/process.rs"]
mod process;

use std::{
    cell::RefCell,
    rc::Rc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use client::{connect, send};
use common::{Server, cluster::ControlPlane, scale};
use tokio_rustls::TlsConnector;

const SLOW: Duration = Duration::from_millis(250);

struct Args {
    minutes: u64,
    services: usize,
    churn: f64,
}

fn args() -> anyhow::Result<Args> {
    let mut out = Args {
        minutes: 60,
        services: 2000,
        churn: 10.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().context(format!("{arg} needs a value"));
        match arg.as_str() {
            "--minutes" => out.minutes = value()?.parse()?,
            "--services" => out.services = value()?.parse()?,
            "--churn" => out.churn = value()?.parse()?,
            "--bench" => {}
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(out)
}

/// The request mix: (path, body).
fn mix() -> anyhow::Result<Vec<(&'static str, Bytes)>> {
    let recorded = |name: &str| -> anyhow::Result<Bytes> {
        let path = common::repo_path("tests/fixtures/apiserver").join(name);
        Ok(Bytes::from(
            std::fs::read(&path).context(path.display().to_string())?,
        ))
    };
    let entry = scale::failover_entry(7);
    let discovered = Bytes::from(serde_json::to_vec(&common::review_for(
        "e1", "CREATE", &entry,
    ))?);
    Ok(vec![
        ("/mutate", recorded("0000-mutate.json")?),
        ("/validate", recorded("0001-validate.json")?),
        ("/mutate", recorded("0010-mutate.json")?),
        ("/validate", recorded("0011-validate.json")?),
        ("/mutate", discovered),
    ])
}

/// A failed or slow request.
struct Outcome {
    at: Duration,
    latency: Duration,
    error: Option<String>,
}

/// What the hour's requests did: per minute their latencies (µs) and failures, and every
/// failed or slow one (an hour at this rate is tens of millions of requests: kept this way
/// they take a few hundred MB).
#[derive(Default)]
struct Record {
    minutes: Vec<Vec<u32>>,
    failed: Vec<u64>,
    notable: Vec<Outcome>,
}

impl Record {
    fn add(&mut self, at: Duration, latency: Duration, error: Option<String>) {
        let minute = (at.as_secs() / 60) as usize;
        if self.minutes.len() <= minute {
            self.minutes.resize_with(minute + 1, Vec::new);
            self.failed.resize(minute + 1, 0);
        }
        self.minutes[minute].push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        if error.is_some() {
            self.failed[minute] += 1;
        }
        if error.is_some() || latency > SLOW {
            self.notable.push(Outcome { at, latency, error });
        }
    }
}

fn rss(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The `q` quantile of sorted latencies in µs, in ms.
fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

/// Requests per second at saturation: closed loop over 16 connections for 15 s.
async fn saturation(
    connector: &TlsConnector,
    port: u16,
    mix: &[(&'static str, Bytes)],
) -> anyhow::Result<f64> {
    let count = Rc::new(std::cell::Cell::new(0u64));
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut tasks = Vec::new();
    for c in 0..16 {
        let mut sender = connect(connector, port).await?;
        let (count, mix) = (count.clone(), mix.to_vec());
        tasks.push(tokio::task::spawn_local(async move {
            let mut k = c;
            while Instant::now() < deadline {
                let (path, body) = &mix[k % mix.len()];
                send(&mut sender, path, body).await?;
                count.set(count.get() + 1);
                k += 1;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(count.get() as f64 / 15.0)
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let remote = ControlPlane::start().context("the control plane is needed (FG_E2E=skip)")?;
    let setup = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let admin = setup
        .block_on(scale::client(&remote.kubeconfig))
        .map_err(anyhow::Error::msg)?;
    setup
        .block_on(scale::load(
            &admin,
            &scale::remote_objects(args.services),
            32,
        ))
        .map_err(anyhow::Error::msg)?;
    setup
        .block_on(scale::set_gateway_address(&admin, "198.51.100.20"))
        .map_err(anyhow::Error::msg)?;

    // One certificate pair per rotation, each under its own CA; the client trusts them all.
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let pairs: Vec<failover_guard::certs::Generated> = (0..=args.minutes / 10 + 1)
        .map(|_| failover_guard::certs::generate(&names))
        .collect::<Result<_, _>>()?;
    let volume = tempfile::tempdir()?;
    common::write_secret_volume(volume.path(), 0, &pairs[0].cert_pem, &pairs[0].key_pem);
    let kubeconfig = remote.kubeconfig.display().to_string();
    let config = move |fg305: &str| {
        format!(
            "cluster:\n  name: cluster-a\n  network: network-a\n  localities: [europe-west1/europe-west1-b]\ndiscovery:\n  source: kubeconfigs\n  kubeconfigs:\n    cluster-b: {kubeconfig}\nrules:\n  FG305: {fg305}\n"
        )
    };
    let server = Server::start_with(
        Some(&config("warn")),
        &["--world", "none"],
        Some((
            volume.path().join("tls.crt"),
            volume.path().join("tls.key"),
            pairs[0].ca_cert_pem.clone(),
        )),
    );
    let pid = server.pid();
    let port = server.port;
    while !server.probe("/readyz").1.contains("cluster-b up") {
        std::thread::sleep(Duration::from_millis(200));
    }

    // Endpoint churn on the remote, for the whole run.
    let churn = scale::Churn::start(
        remote.kubeconfig.clone(),
        args.services,
        Duration::from_secs_f64(1.0 / args.churn),
        usize::MAX,
    );

    let mix = mix()?;
    let cas: Vec<String> = pairs.iter().map(|p| p.ca_cert_pem.clone()).collect();
    let connector = client::connector(&cas)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let saturated = local.block_on(&runtime, saturation(&connector, port, &mix))?;
    let rate = saturated / 2.0;
    println!(
        "Endurance: {} min at {rate:.0} requests/s (saturation {saturated:.0}/s), remote of {} Services with {}/s slice changes\n",
        args.minutes, args.services, args.churn
    );

    let ticks = process::clock_ticks()?;
    let cpu_before = (
        process::cpu_seconds(&pid.to_string(), ticks)?,
        process::cpu_seconds("self", ticks)?,
    );
    let record: Rc<RefCell<Record>> = Rc::new(RefCell::new(Record::default()));
    let duration = Duration::from_secs(args.minutes * 60);
    let start = tokio::time::Instant::now();
    const CONNECTIONS: usize = 8;
    let period = Duration::from_secs_f64(CONNECTIONS as f64 / rate);
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let (record, mix, connector) = (record.clone(), mix.clone(), connector.clone());
        tasks.push(local.spawn_local(async move {
            let mut sender = connect(&connector, port).await.ok();
            let mut due = start + period.mul_f64(c as f64 / CONNECTIONS as f64);
            let mut k = c;
            while due.duration_since(start) < duration {
                let sent = if tokio::time::Instant::now() >= due {
                    due
                } else {
                    tokio::time::sleep_until(due).await;
                    tokio::time::Instant::now()
                };
                let (path, body) = &mix[k % mix.len()];
                let result = match sender.as_mut() {
                    Some(s) => send(s, path, body).await,
                    None => Err(anyhow::anyhow!("not connected")),
                };
                let error = result.err().map(|e| e.to_string());
                if error.is_some() {
                    // A broken connection is counted, then replaced.
                    sender = connect(&connector, port).await.ok();
                }
                record
                    .borrow_mut()
                    .add(sent.duration_since(start), sent.elapsed(), error);
                due += period;
                k += 1;
            }
        }));
    }
    // Every minute: resident memory, a configuration change; every ten: a new certificate.
    let housekeeping = {
        let config_path = server.path("config.yaml");
        let (volume, pairs, minutes, config) = (
            volume.path().to_owned(),
            pairs,
            args.minutes,
            config.clone(),
        );
        local.spawn_local(async move {
            let mut samples = vec![(0u64, rss(pid, "VmRSS:"))];
            for minute in 1..=minutes {
                tokio::time::sleep_until(start + Duration::from_secs(minute * 60)).await;
                samples.push((minute, rss(pid, "VmRSS:")));
                let text = config(if minute % 2 == 0 { "warn" } else { "off" });
                let _ = std::fs::write(&config_path, text);
                if minute % 10 == 0 {
                    let pair = &pairs[(minute / 10) as usize];
                    common::write_secret_volume(
                        &volume,
                        u32::try_from(minute).unwrap_or(0),
                        &pair.cert_pem,
                        &pair.key_pem,
                    );
                }
            }
            samples
        })
    };
    let samples = local.block_on(&runtime, async {
        for t in tasks {
            let _ = t.await;
        }
        housekeeping.await.unwrap_or_default()
    });
    let wall = start.elapsed().as_secs_f64();
    let server_cpu = process::cpu_seconds(&pid.to_string(), ticks)? - cpu_before.0;
    let generator_cpu = process::cpu_seconds("self", ticks)? - cpu_before.1;
    let (changes, churn_errors) = churn.stop();
    // The last minute's configuration change is read within the reload interval.
    std::thread::sleep(Duration::from_secs(2));
    let (_, metrics) = server.probe("/metrics");

    let mut record = record.take();
    for minute in &mut record.minutes {
        minute.sort_unstable();
    }
    println!("| minute | requests | failed | slow (> 250 ms) | p50 | p99 | resident memory |");
    println!("|---|---|---|---|---|---|---|");
    for (minute, latencies) in record.minutes.iter().enumerate() {
        let slow = latencies.partition_point(|l| Duration::from_micros(u64::from(*l)) <= SLOW);
        println!(
            "| {} | {} | {} | {} | {:.1} ms | {:.1} ms | {:.1} MiB |",
            minute + 1,
            latencies.len(),
            record.failed[minute],
            latencies.len() - slow,
            percentile(latencies, 0.5),
            percentile(latencies, 0.99),
            samples
                .iter()
                .find(|(m, _)| *m == minute as u64 + 1)
                .map_or(0.0, |(_, r)| *r)
        );
    }
    println!("\n| minutes | p99 |");
    println!("|---|---|");
    for (ten, chunk) in record.minutes.chunks(10).enumerate() {
        let mut latencies: Vec<u32> = chunk.iter().flatten().copied().collect();
        latencies.sort_unstable();
        println!(
            "| {}-{} | {:.1} ms |",
            ten * 10,
            ten * 10 + chunk.len(),
            percentile(&latencies, 0.99)
        );
    }
    println!("\nFailed or slow requests:");
    for o in &record.notable {
        println!(
            "- at {:.1} s: {:.0} ms{}",
            o.at.as_secs_f64(),
            o.latency.as_secs_f64() * 1000.0,
            o.error
                .as_deref()
                .map(|e| format!(", {e}"))
                .unwrap_or_default()
        );
    }
    if record.notable.is_empty() {
        println!("- none");
    }
    let total: usize = record.minutes.iter().map(Vec::len).sum();
    let failed: u64 = record.failed.iter().sum();
    let at_ten = samples
        .iter()
        .find(|(m, _)| *m == 10.min(args.minutes))
        .map_or(0.0, |(_, r)| *r);
    let peak_after = samples
        .iter()
        .filter(|(m, _)| *m >= 10)
        .map(|(_, r)| *r)
        .fold(0.0, f64::max);
    println!(
        "\nRequests: {}; failed: {}; resident memory at 10 min {at_ten:.1} MiB, highest after {peak_after:.1} MiB: growth {:.1} %; peak (VmHWM) {:.1} MiB",
        total,
        failed,
        if at_ten > 0.0 {
            (peak_after - at_ten) / at_ten * 100.0
        } else {
            0.0
        },
        rss(pid, "VmHWM:")
    );
    println!("Remote churn: {changes} slice changes ({churn_errors} refused)");
    println!(
        "CPU: the server {:.0} % of one core, this process (generator and churn) {:.0} %: the generator's share of the machine {:.0} %",
        server_cpu / wall * 100.0,
        generator_cpu / wall * 100.0,
        generator_cpu / wall / std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
            * 100.0
    );
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("failover_guard_reloads_total{"))
    {
        println!("{line}");
    }
    Ok(())
}
