//! Istio in the loop: Istio's own validation and Istio's own pilot as the judge of what
//! failover-guard writes. The harness (tests/istio/main.go) is built from the Go module proxy
//! at the version pinned in tests/istio/go.mod by tests/istio/build.sh and cached outside the
//! checkout, like the control plane of the end-to-end suite.
//!
//! `FG_ISTIO=skip` skips on purpose; `FG_ISTIO=required` (set by .ci/run) turns a missing
//! harness into a failure; otherwise a machine without Go skips with the reason printed.

use std::{
    io::Write as _,
    path::PathBuf,
    process::{Command, Stdio},
    sync::OnceLock,
};

use failover_guard::config::Config;
use serde_json::{Value, json};

/// The harness binary, built once per test process (None: skipped, with the reason printed).
pub fn harness() -> Option<&'static PathBuf> {
    static HARNESS: OnceLock<Option<PathBuf>> = OnceLock::new();
    HARNESS.get_or_init(locate).as_ref()
}

fn locate() -> Option<PathBuf> {
    let policy = std::env::var("FG_ISTIO").unwrap_or_default();
    if policy == "skip" {
        eprintln!("istio: skipped (FG_ISTIO=skip)");
        return None;
    }
    match build() {
        Ok(path) => Some(path),
        Err(reason) if policy == "required" => {
            panic!("the Istio harness is required (FG_ISTIO=required) but: {reason}")
        }
        Err(reason) => {
            eprintln!("istio: skipped: {reason} (set FG_ISTIO=required to make this a failure)");
            None
        }
    }
}

fn build() -> Result<PathBuf, String> {
    if Command::new("go").arg("version").output().is_err() {
        return Err("Go is not installed, so the Istio harness cannot be built".into());
    }
    eprintln!("istio: locating the harness (a cold build takes 10-15 minutes on 2 cores)");
    let path = super::run_build_script("tests/istio/build.sh")?;
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "build.sh printed {} which is no file",
            path.display()
        ))
    }
}

/// The harness's view of this cluster and its remotes, from failover-guard's configuration.
pub fn mesh(config: &Config) -> Value {
    json!({
        "cluster": config.cluster.name,
        "network": config.cluster.network,
        "localities": config.cluster.localities,
        "remotes": config.remotes.iter().map(|r| json!({
            "name": r.name,
            "network": r.network,
            "address": r.gateway.address,
            "port": r.gateway.port,
            "locality": r.locality,
        })).collect::<Vec<_>>(),
        "native": config.multicluster.native(),
        "ambientMultiNetwork": failover_guard::istio::ambient::scopes_services(&config.mesh),
    })
}

/// The mesh config of a configuration as the harness takes it (YAML; JSON is YAML), or empty
/// for Istio's defaults.
pub fn mesh_config(config: &Config) -> String {
    match config.mesh.origin() {
        Some(_) => serde_json::to_string(config.mesh.raw()).expect("mesh config"),
        None => String::new(),
    }
}

/// Runs a batch of cases through the harness; one result per case, in order.
pub fn run(harness: &PathBuf, cases: &[Value]) -> Vec<Value> {
    let mut child = Command::new(harness)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the Istio harness");
    let request = serde_json::to_vec(&json!({ "cases": cases })).expect("request");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&request));
    let output = child.wait_with_output().expect("the Istio harness");
    writer.join().expect("writer").expect("write request");
    assert!(
        output.status.success(),
        "the Istio harness failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(results.len(), cases.len(), "one result per case");
    results
}

/// Istio's validation errors of one object, split into single messages (Istio joins several
/// with newlines or "; "). Localities in a message are masked: Istio walks Go maps in random
/// order, so "locality a/* overlap with previous specified ones" names either key.
pub fn error_messages(validation: &Value) -> Vec<String> {
    validation["error"]
        .as_str()
        .unwrap_or("")
        .split(['\n', ';'])
        .map(|s| {
            s.trim()
                .trim_start_matches("* ")
                .split(' ')
                .map(|word| {
                    if word.contains(['/', '*']) {
                        "<locality>"
                    } else {
                        word
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|s| {
            !s.is_empty() && !s.ends_with("errors occurred:") && !s.ends_with("error occurred:")
        })
        .collect()
}

/// A tests/scenarios folder's configuration as `check`, `mutate` and pilot see it: its
/// config.yaml (the built-in example without one), what discovery saw, its mesh.yaml (the
/// istio ConfigMap or a bare MeshConfig pilot runs with), and each `remote-NAME.yaml` read as
/// `--remote NAME=PATH` reads it (returned too: the harness gets them as that remote's objects).
pub fn scenario_config(
    dir: &std::path::Path,
    discovered: &[failover_guard::config::DiscoveredRemote],
) -> (Config, Vec<(String, PathBuf)>) {
    let name = dir.display();
    let config = match std::fs::read_to_string(dir.join("config.yaml")) {
        Ok(text) => Config::from_yaml(&text, "config.yaml").expect("scenario config"),
        Err(_) => Config::example(),
    }
    .with_discovered(discovered);
    let config = match std::fs::read_to_string(dir.join("mesh.yaml")) {
        Ok(text) => config.with_mesh(
            failover_guard::istio::mesh::MeshConfig::parse(&text, "mesh.yaml")
                .unwrap_or_else(|e| panic!("{name}: {e}")),
        ),
        Err(_) => config,
    };
    let remote_files: Vec<(String, PathBuf)> = config
        .remotes
        .iter()
        .map(|r| (r.name.clone(), dir.join(format!("remote-{}.yaml", r.name))))
        .filter(|(_, p)| p.exists())
        .collect();
    let config = failover_guard::offline::with_remote_files(
        config,
        &remote_files
            .iter()
            .map(|(n, p)| format!("{n}={}", p.display()))
            .collect::<Vec<_>>(),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    (config, remote_files)
}

/// The harness's mesh for a scenario: `mesh(config)`, with each remote given its own objects
/// where the scenario has a `remote-NAME.yaml`.
pub fn scenario_mesh(config: &Config, remote_files: &[(String, PathBuf)]) -> Value {
    let mut mesh = mesh(config);
    for (remote, path) in remote_files {
        let text = std::fs::read_to_string(path).expect("remote file");
        let objects: Vec<Value> = failover_guard::offline::parse_input("remote.yaml", &text)
            .documents
            .iter()
            .flat_map(|d| d.objects.clone())
            .collect();
        for r in mesh["remotes"].as_array_mut().into_iter().flatten() {
            if r["name"] == json!(remote) {
                r["objects"] = json!(objects);
            }
        }
    }
    mesh
}

/// Every scenario folder under tests/scenarios (a folder with a scenario.yaml, at any depth:
/// tests/scenarios/users holds the user reports), with its name: its path below
/// tests/scenarios (`users/u01-...`). Sorted by name.
pub fn scenario_dirs() -> Vec<(String, PathBuf)> {
    fn walk(dir: &std::path::Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if path.join("scenario.yaml").is_file() {
                out.push((name, path));
            } else {
                walk(&path, &format!("{name}/"), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&super::repo_path("tests/scenarios"), "", &mut out);
    out.sort();
    out
}

/// istioctl, built by tests/istio/build.sh from the same pinned module, beside the harness.
pub fn istioctl(harness: &std::path::Path) -> PathBuf {
    harness.with_file_name("istioctl")
}
