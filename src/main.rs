//! The binary's edge: parse the command line, set up logging, run one command, map errors to
//! exit codes.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

/// mimalloc rather than glibc's malloc: under load glibc's arena locks showed as 6 % of the
/// server's CPU in futex calls (memory freed by another thread than the one that took it), and
/// mimalloc's thread-local free lists are faster on the many small maps a JSON object is.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context as _, bail};
use clap::Parser;
use failover_guard::{
    certs,
    cli::{
        AuditArgs, CertsArgs, Cli, Command, ExplainArgs, LogFormat, RenderArgs, ServeArgs,
        SimulateArgs, SimulateFormat, WorldMode,
    },
    cluster,
    cluster::ClusterWorld,
    config::{self, Config},
    explain, inforce,
    inforce::InForce,
    logging::{
        batch,
        json::{self, JsonLines},
    },
    metrics::Metrics,
    offline, rules,
    server::{self, tls::CertFiles},
    world::World,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Flushes the log writer when main returns.
    let _log_guard = init_tracing(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => serve(args).map(|()| ExitCode::SUCCESS),
        Command::Certs(args) => certs(args).map(|()| ExitCode::SUCCESS),
        Command::Explain(args) => explain(args),
        Command::Check(args) => Ok(offline::check_command(&args)),
        Command::Mutate(args) => Ok(offline::mutate_command(&args)),
        Command::Audit(args) => audit(args),
        Command::Simulate(args) => simulate(args),
        Command::Render(args) => render(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("failover-guard: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr through a writer thread that writes them in batches
/// (`failover_guard::logging`), so that a request that logs (every denied admission at info, every
/// admission at debug) formats its line and goes on: no write and no wake-up per line.
fn init_tracing(format: LogFormat) -> Option<batch::Guard> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FAILOVER_GUARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal: a file or a log collector would get escape
    // sequences (NO_COLOR is honoured too).
    use std::io::IsTerminal as _;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    let notice = match format {
        LogFormat::Json => json::dropped_notice,
        LogFormat::Text => batch::text_notice,
    };
    match batch::batched(std::io::stderr(), notice) {
        Ok((writer, guard)) => {
            let builder = builder.with_writer(writer);
            match format {
                LogFormat::Json => builder.event_format(JsonLines).init(),
                LogFormat::Text => builder.init(),
            }
            Some(guard)
        }
        // No thread for the writer: log straight to stderr rather than not at all.
        Err(_) => {
            let builder = builder.with_writer(std::io::stderr);
            match format {
                LogFormat::Json => builder.event_format(JsonLines).init(),
                LogFormat::Text => builder.init(),
            }
            None
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let loopback = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let any = |port| std::net::SocketAddr::from(([0, 0, 0, 0], port));
    let (listen, probe_listen) = if args.dev {
        (
            args.listen.unwrap_or(loopback(8443)),
            args.probe_listen.unwrap_or(loopback(9090)),
        )
    } else {
        (
            args.listen.unwrap_or(any(8443)),
            args.probe_listen.unwrap_or(any(9090)),
        )
    };
    let (config, config_path) = match (&args.config, args.dev) {
        (Some(path), _) => (inforce::load_file(path)?, Some(path.clone())),
        (None, true) => (Config::example(), None),
        (None, false) => {
            let path = PathBuf::from(config::DEFAULT_PATH);
            (inforce::load_file(&path)?, Some(path))
        }
    };
    let mesh = match &args.mesh_config {
        Some(path) => inforce::load_mesh_file(path)?,
        None => failover_guard::istio::mesh::MeshConfig::default(),
    };
    let mesh_file_given = args.mesh_config.is_some();
    let in_force = InForce::new(
        server::with_exclusions(
            config.clone(),
            &args.namespace.iter().cloned().collect::<Vec<_>>(),
        ),
        mesh,
    );
    let in_force = Arc::new(
        if config.discovery.source == config::DiscoverySource::None {
            in_force
        } else {
            in_force.with_remotes(Arc::new(failover_guard::remotes::Remotes::default()))
        },
    );
    let current = in_force.current();
    tracing::info!("{}", current.mesh_source());
    tracing::info!("{}", current.judged_by());
    for warning in current.warnings() {
        tracing::warn!("config: {warning}");
    }
    let cert = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => CertFiles { cert, key },
        _ if args.dev => dev_certs()?,
        _ => bail!("serve needs --tls-cert and --tls-key (or --dev for self-signed certificates)"),
    };
    if args.dev && !(listen.ip().is_loopback() && probe_listen.ip().is_loopback()) {
        bail!("--dev serves on loopback addresses only (got {listen} and {probe_listen})");
    }
    let options = server::Options {
        listen,
        probe_listen,
        cert,
        config_path,
        extra_excluded: args.namespace.into_iter().collect(),
        reload_interval: args.reload_interval,
        shutdown_delay: args.shutdown_delay,
        grace_period: args.grace_period,
        header_timeout: args.header_timeout,
        max_in_flight: args.max_in_flight.max(1),
        record_dir: args.record,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let cluster_domain = config.cluster.cluster_domain.clone();
    let mesh_configmap = match args.mesh_configmap.as_str() {
        "none" | "" => None,
        text => match text.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
                Some((ns.to_owned(), name.to_owned()))
            }
            _ => bail!("--mesh-configmap {text:?}: expected NAMESPACE/NAME (or none)"),
        },
    };
    if args.report_interval.is_some() && args.world == Some(WorldMode::None) {
        bail!("--report-interval needs the cluster's objects (--world cluster or auto)");
    }
    runtime.block_on(async {
        let metrics = Arc::new(Metrics::new());
        let mut watches = None;
        let mut reporter = None;
        let mut mesh_watch = None;
        // A development server does not watch whatever cluster the kubeconfig points at
        // unless asked to.
        let mode = args.world.unwrap_or(if args.dev { WorldMode::None } else { WorldMode::Auto });
        let world: Option<Arc<dyn World>> = match mode {
            WorldMode::None => None,
            WorldMode::Manifests => Some(manifest_world(&args.world_manifests, &config)?),
            mode => match cluster::client(args.kubeconfig.as_deref(), None).await {
                Ok(client) => {
                    let world = ClusterWorld::new(&cluster_domain);
                    watches = Some(world.start(client.clone(), metrics.clone()));
                    if let (false, Some((namespace, name))) =
                        (mesh_file_given, mesh_configmap.clone())
                    {
                        mesh_watch = Some(tokio::spawn(follow_mesh_config(
                            client.clone(),
                            namespace,
                            name,
                            in_force.clone(),
                            metrics.clone(),
                        )));
                    }
                    if let Some(interval) = args.report_interval {
                        reporter = Some(tokio::spawn(report_loop(
                            client,
                            world.clone(),
                            interval,
                            in_force.clone(),
                        )));
                    }
                    Some(world)
                }
                Err(error) if mode == WorldMode::Cluster => {
                    return Err(anyhow::anyhow!(error).context("--world cluster"));
                }
                Err(error) => {
                    tracing::warn!(%error, "no cluster credentials: cross-object rules stay silent");
                    None
                }
            },
        };
        let remote_setup = if config.discovery.source == config::DiscoverySource::None {
            if args.reconcile {
                return Err(anyhow::anyhow!(
                    "--reconcile re-renders failover entries when remote state changes: configure discovery"
                ));
            }
            None
        } else {
            // The local cluster holds the remote secrets (istio-secrets) and is where
            // --reconcile applies; without credentials, kubeconfig files still work.
            let local = match cluster::client(args.kubeconfig.as_deref(), None).await {
                Ok(client) => Some(client),
                Err(error) if args.reconcile => {
                    return Err(anyhow::anyhow!(error).context("--reconcile"));
                }
                Err(error) => {
                    tracing::warn!(%error, "no local cluster credentials: remote secrets cannot be read");
                    None
                }
            };
            Some(server::RemoteSetup {
                local,
                reconcile: args.reconcile,
            })
        };
        let multicluster_log = tokio::spawn(log_multicluster(in_force.clone(), world.clone()));
        server::run(options, in_force, world, remote_setup, metrics, shutdown_signal()).await?;
        multicluster_log.abort();
        drop(watches);
        if let Some(mesh_watch) = mesh_watch {
            mesh_watch.abort();
        }
        if let Some(reporter) = reporter {
            reporter.abort();
        }
        Ok(())
    })
}

/// `render`: the failover objects of one Service, as YAML documents.
fn render(args: RenderArgs) -> anyhow::Result<ExitCode> {
    let config = offline::load_config(args.config.as_deref(), args.mesh_config.as_deref())?;
    let (service, policies, config) = if args.cluster {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        runtime.block_on(async {
            let client = cluster::client(args.kubeconfig.as_deref(), None).await?;
            let objects = cluster::list_all(&client, Some(&args.namespace)).await?;
            let config = with_cluster_mesh(&client, config, args.mesh_config.is_some()).await?;
            let config = with_discovery(&client, config).await;
            let service =
                failover_guard::render::find_service(&objects, &args.namespace, &args.service)
                    .cloned();
            anyhow::Ok((service, objects, config))
        })?
    } else {
        let (inputs, errors) = offline::read_inputs(&args.paths);
        if let Some(error) = errors.first() {
            bail!("{}: {}", error.file, error.message);
        }
        let objects: Vec<serde_json::Value> = inputs
            .into_iter()
            .flat_map(|i| i.documents)
            .flat_map(|d| d.objects)
            .collect();
        let service =
            failover_guard::render::find_service(&objects, &args.namespace, &args.service).cloned();
        (service, objects, config)
    };
    let Some(service) = service else {
        bail!(failover_guard::render::RenderError::NoService {
            namespace: args.namespace,
            name: args.service,
        });
    };
    let objects = failover_guard::render::render(&service, &policies, &config, None)?;
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&object).context("cannot print YAML")?);
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// `serve --world manifests`: the objects of the given files, read once. Objects move into
/// the world file by file (no copies), so the peak is one file's text beside the world.
fn manifest_world(paths: &[PathBuf], config: &Config) -> anyhow::Result<Arc<dyn World>> {
    if paths.is_empty() {
        bail!("--world manifests needs --world-manifests PATH");
    }
    let mut world = failover_guard::world::ManifestWorld::new(
        [],
        offline::DEFAULT_NAMESPACE,
        &config.cluster.cluster_domain,
    );
    let mut objects = 0usize;
    for path in paths {
        let (inputs, errors) = offline::read_inputs(std::slice::from_ref(path));
        if let Some(error) = errors.first() {
            bail!("--world-manifests: {}: {}", error.file, error.message);
        }
        for object in inputs
            .into_iter()
            .flat_map(|i| i.documents)
            .flat_map(|d| d.objects)
        {
            objects += 1;
            world.upsert(object);
        }
    }
    tracing::info!(objects, "world read from manifests");
    Ok(Arc::new(world))
}

/// `serve` without `--mesh-config`: follows the mesh ConfigMap; a change that parses is in
/// force at once, one that does not is logged and counted and the previous one stays; a
/// missing ConfigMap means Istio's defaults.
/// Says what the cluster shows of its multicluster model, and whether the config agrees,
/// whenever that changes (checked every 30 s; the world and discovery fill in over time).
async fn log_multicluster(in_force: Arc<InForce>, world: Option<Arc<dyn World>>) {
    let mut last = String::new();
    loop {
        let (line, agrees) = in_force.multicluster_report(world.as_deref());
        if line != last {
            if agrees {
                tracing::info!("{line}");
            } else {
                tracing::warn!("{line}");
            }
            last = line;
        }
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    }
}

async fn follow_mesh_config(
    client: kube::Client,
    namespace: String,
    name: String,
    in_force: Arc<InForce>,
    metrics: Arc<Metrics>,
) {
    let origin = format!("ConfigMap {namespace}/{name}");
    let on_change = |mesh: Option<String>| {
        let parsed = match mesh {
            None => Ok(failover_guard::istio::mesh::MeshConfig::default()),
            Some(text) => failover_guard::istio::mesh::MeshConfig::parse(&text, &origin),
        };
        match parsed {
            Ok(mesh) => {
                in_force.set_mesh(mesh);
                metrics.reload("mesh-config", true);
                tracing::info!("{}", in_force.current().mesh_source());
            }
            Err(error) => {
                metrics.reload("mesh-config", false);
                tracing::error!(%error, "mesh config rejected; keeping the previous one");
            }
        }
    };
    cluster::follow_config_map(client, namespace.clone(), name.clone(), "mesh", on_change).await;
}

/// `serve --report-interval`: every interval, once the watch cache is synced, judges every
/// object as stored (like `audit`) and applies one PolicyReport per namespace with findings; a
/// namespace whose findings are gone gets an empty report. It judges by the configuration in
/// force, the webhook's (file, mesh config and discovered remotes).
async fn report_loop(
    client: kube::Client,
    world: Arc<ClusterWorld>,
    interval: std::time::Duration,
    in_force: Arc<InForce>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // What was last written per namespace, timestamps aside: unchanged reports are not
    // written again (no write, no new generation, every interval).
    let mut published: std::collections::BTreeMap<String, serde_json::Value> = Default::default();
    let content = |report: &serde_json::Value| {
        let mut report = report.clone();
        for result in report
            .get_mut("results")
            .and_then(serde_json::Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(map) = result.as_object_mut() {
                map.remove("timestamp");
            }
        }
        report
    };
    let mut ticks: u64 = 0;
    loop {
        ticker.tick().await;
        if !world.is_synced() {
            continue;
        }
        // Now and then write everything again, in case a report was deleted or edited.
        ticks += 1;
        if ticks.is_multiple_of(30) {
            published.clear();
        }
        let config = in_force.current();
        let objects = world.objects();
        let report = offline::audit(&objects, &config);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut current: std::collections::BTreeMap<String, serde_json::Value> =
            failover_guard::policyreport::reports(&report, now)
                .into_iter()
                .filter_map(|r| {
                    let ns = r.pointer("/metadata/namespace")?.as_str()?.to_owned();
                    Some((ns, r))
                })
                .collect();
        for gone in published.keys() {
            current
                .entry(gone.clone())
                .or_insert_with(|| failover_guard::policyreport::empty(gone));
        }
        let changed: Vec<serde_json::Value> = current
            .iter()
            .filter(|(ns, r)| published.get(*ns) != Some(&content(r)))
            .map(|(_, r)| r.clone())
            .collect();
        if changed.is_empty() {
            continue;
        }
        match cluster::publish_reports(&client, &changed).await {
            Ok(()) => {
                tracing::info!(reports = changed.len(), "policy reports updated");
                published = current
                    .iter()
                    .filter(|(_, r)| r["results"].as_array().is_some_and(|a| !a.is_empty()))
                    .map(|(ns, r)| (ns.clone(), content(r)))
                    .collect();
            }
            Err(error) => tracing::warn!(%error, "cannot update policy reports"),
        }
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// certs/dev/ under the working directory, created on first use.
fn dev_certs() -> anyhow::Result<CertFiles> {
    let dir = PathBuf::from("certs/dev");
    let files = CertFiles {
        cert: dir.join(certs::TLS_CERT),
        key: dir.join(certs::TLS_KEY),
    };
    if !(files.cert.exists() && files.key.exists()) {
        let mut names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        names.extend(certs::service_names("failover-guard", "failover-guard"));
        certs::generate(&names)?.write(&dir)?;
        eprintln!(
            "failover-guard: created development certificates in {} (CA: {})",
            dir.display(),
            dir.join(certs::CA_CERT).display()
        );
    }
    Ok(files)
}

fn certs(args: CertsArgs) -> anyhow::Result<()> {
    let mut names = certs::service_names(&args.service, &args.namespace);
    names.extend(args.extra_names);
    let generated = certs::generate(&names)?;
    generated.write(&args.out)?;
    eprintln!(
        "wrote {}, {}, {} and {} to {}; caBundle:",
        certs::CA_CERT,
        certs::CA_KEY,
        certs::TLS_CERT,
        certs::TLS_KEY,
        args.out.display()
    );
    println!("{}", generated.ca_bundle());
    Ok(())
}

fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let config = offline::load_config(args.config.as_deref(), args.mesh_config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (objects, config) = runtime.block_on(async {
        let client = cluster::client(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
        let objects = cluster::list_all(&client, args.namespace.as_deref()).await?;
        let config = with_cluster_mesh(&client, config, args.mesh_config.is_some()).await?;
        anyhow::Ok((objects, config))
    })?;
    let report = offline::audit(&objects, &config);
    Ok(offline::print_report(&report, args.output))
}

/// With `--cluster` and no `--mesh-config`: the mesh config pilot reads in that cluster (the
/// `istio` ConfigMap in istio-system, as `serve` follows it), or Istio's defaults without one.
/// A ConfigMap that does not parse is an error, as it is for `--mesh-config`.
async fn with_cluster_mesh(
    client: &kube::Client,
    config: config::Config,
    mesh_given: bool,
) -> anyhow::Result<config::Config> {
    if mesh_given {
        return Ok(config);
    }
    let (namespace, name) = ("istio-system", "istio");
    match cluster::read_config_map_key(client, namespace, name, "mesh").await {
        Ok(Some(text)) => {
            let origin = format!("ConfigMap {namespace}/{name}");
            let mesh = failover_guard::istio::mesh::MeshConfig::parse(&text, &origin)?;
            let config = config.with_mesh(mesh);
            eprintln!("failover-guard: {}", config.mesh_source());
            Ok(config)
        }
        Ok(None) => Ok(config),
        Err(error) => {
            eprintln!(
                "failover-guard: cannot read ConfigMap {namespace}/{name} ({error}); Istio's defaults"
            );
            Ok(config)
        }
    }
}

/// The configuration with the remotes `discovery` reads from the live cluster's remote secrets
/// or kubeconfigs (as `serve` has them), or as it is when discovery is off.
async fn with_discovery(client: &kube::Client, config: config::Config) -> config::Config {
    if config.discovery.source == config::DiscoverySource::None {
        return config;
    }
    let discovered = failover_guard::remotes::read_all(client, &config).await;
    config.with_discovered(&discovered)
}

fn simulate(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let config = offline::load_config(args.config.as_deref(), args.mesh_config.as_deref())?;
    let config = offline::with_remote_files(config, &args.remotes)?;
    let (objects, config) = if args.cluster {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        runtime.block_on(async {
            let client =
                cluster::client(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
            let mut objects = cluster::list_all(&client, args.namespace.as_deref()).await?;
            objects.extend(cluster::list_workloads(&client, args.namespace.as_deref()).await?);
            let config = with_cluster_mesh(&client, config, args.mesh_config.is_some()).await?;
            // The remotes as `serve` discovers them: an endpoint is then named by its cluster,
            // and `--fail <remote>` finds it.
            let config = with_discovery(&client, config).await;
            anyhow::Ok((objects, config))
        })?
    } else {
        let (inputs, errors) = offline::read_inputs(&args.paths);
        for e in &errors {
            eprintln!("{}:{}: {}", e.file, e.line.unwrap_or(0), e.message);
        }
        if !errors.is_empty() {
            return Ok(ExitCode::from(2));
        }
        let objects = inputs
            .into_iter()
            .flat_map(|i| i.documents)
            .flat_map(|d| d.objects)
            .collect();
        (objects, config)
    };
    let request = failover_guard::simulate::Request {
        hosts: args.host,
        from: args.from,
        namespace: args.namespace,
        fail: args.fail,
    };
    let report = failover_guard::simulate::run(&objects, &config, &request);
    match args.output {
        SimulateFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        SimulateFormat::Text => print!("{}", failover_guard::simulate::text(&report)),
    }
    Ok(ExitCode::SUCCESS)
}

fn explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    if args.markdown {
        print!("{}", explain::markdown_table());
        return Ok(ExitCode::SUCCESS);
    }
    match args.rule {
        None => print!("{}", explain::list()),
        Some(id) => match rules::by_id(&id) {
            Some(rule) => print!("{}", explain::explain(rule)),
            None => bail!("no rule {id}; `failover-guard explain` lists them"),
        },
    }
    Ok(ExitCode::SUCCESS)
}
