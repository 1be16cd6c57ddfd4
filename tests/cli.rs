//! The built binary's offline commands (`check`, `mutate`, `explain`, `certs`) on fixture
//! folders and on ../shared/corpus: exit codes, parsed JSON and SARIF, stdin, byte identity.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::{
    io::Write as _,
    process::{Command, Output, Stdio},
};

use serde_json::Value;

fn run(args: &[&str]) -> Output {
    Command::new(common::BIN)
        .args(args)
        .current_dir(common::repo_path(""))
        .output()
        .expect("run failover-guard")
}

fn run_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(common::BIN)
        .args(args)
        .current_dir(common::repo_path(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // A command that refuses its arguments (a bad config) exits without reading its input:
    // the pipe is then closed, which is no failure of the test; its output says what happened.
    match child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.expect("write stdin"),
    }
    child.wait_with_output().expect("wait")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

const FIXTURES: &str = "tests/fixtures/manifests";

#[test]
fn check_exit_codes() {
    let clean = run(&["check", &format!("{FIXTURES}/clean")]);
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));
    assert!(stdout(&clean).contains("0 deny"));

    let deny = run(&["check", &format!("{FIXTURES}/deny")]);
    assert_eq!(deny.status.code(), Some(1), "{}", stdout(&deny));

    let broken = run(&["check", &format!("{FIXTURES}/broken")]);
    assert_eq!(broken.status.code(), Some(2));

    let missing = run(&["check", "no/such/path.yaml"]);
    assert_eq!(missing.status.code(), Some(2));

    let bad_config = run(&["check", "--config", "Cargo.toml", FIXTURES]);
    assert_eq!(bad_config.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_config.stderr).contains("config"));
}

#[test]
fn check_json_names_file_document_line_and_rule() {
    let output = run(&["check", "--output", "json", FIXTURES]);
    assert_eq!(output.status.code(), Some(2), "the broken file makes it 2");
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["version"], 1);
    assert_eq!(report["summary"]["exitCode"], 2);
    assert_eq!(report["summary"]["deny"], 3);

    let findings = report["findings"].as_array().expect("findings");
    let inert = findings
        .iter()
        .find(|f| f["rule"] == "FG103" && f["name"] == "ratings")
        .expect("FG103 finding on ratings");
    assert_eq!(
        inert["file"],
        format!("{FIXTURES}/deny/broken-failover.yaml")
    );
    assert_eq!(inert["document"], 1);
    assert_eq!(inert["line"], 8);
    assert_eq!(inert["action"], "deny");
    assert_eq!(inert["kind"], "DestinationRule");
    assert_eq!(inert["namespace"], "bookinfo");
    assert!(
        inert["message"]
            .as_str()
            .unwrap()
            .starts_with("FG103 DestinationRule bookinfo/ratings: ")
    );

    // The broken file is reported with its line, and the document after the break is checked.
    let errors = report["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["file"], format!("{FIXTURES}/broken/broken.yaml"));
    assert_eq!(errors[0]["line"], 6);
    assert!(
        findings
            .iter()
            .any(|f| f["name"] == "after-the-break" && f["rule"] == "FG103")
    );
    // Documents of other kinds are not findings.
    assert!(findings.iter().all(|f| f["name"] != "untouched"));
}

#[test]
fn check_sarif_is_valid_2_1_0() {
    let output = run(&["check", "--output", "sarif", &format!("{FIXTURES}/deny")]);
    assert_eq!(output.status.code(), Some(1));
    let sarif: Value = serde_json::from_slice(&output.stdout).expect("SARIF JSON");
    assert_eq!(sarif["version"], "2.1.0");
    assert!(sarif["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let run = &sarif["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "failover-guard");
    let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), failover_guard::rules::RULES.len());
    let results = run["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    for result in results {
        let index = result["ruleIndex"].as_u64().expect("ruleIndex") as usize;
        assert_eq!(
            rules[index]["id"], result["ruleId"],
            "ruleIndex points at the rule"
        );
        assert_eq!(result["level"], "error");
        assert!(!result["message"]["text"].as_str().unwrap().is_empty());
        let location = &result["locations"][0]["physicalLocation"];
        assert_eq!(
            location["artifactLocation"]["uri"],
            format!("{FIXTURES}/deny/broken-failover.yaml")
        );
        assert!(location["region"]["startLine"].as_u64().unwrap() >= 1);
    }
    let lines: Vec<u64> = results
        .iter()
        .map(|r| {
            r["locations"][0]["physicalLocation"]["region"]["startLine"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(lines, [8, 20]);
}

#[test]
fn check_reads_stdin() {
    let input = std::fs::read_to_string(common::repo_path(&format!(
        "{FIXTURES}/deny/broken-failover.yaml"
    )))
    .unwrap();
    let output = run_stdin(&["check", "--output", "json", "-"], &input);
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["file"] == "<stdin>")
    );
}

#[test]
fn check_the_whole_corpus() {
    let corpus = common::shared_dir().join("corpus");
    let output = run(&["check", "--output", "json", corpus.to_str().unwrap()]);
    // The corpus holds two damaged pastes (kept damaged on purpose): exit 2, both reported.
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors.iter().all(|e| e["line"].as_u64().is_some()));
    assert!(report["summary"]["objects"].as_u64().unwrap() > 100);
    assert!(report["summary"]["deny"].as_u64().unwrap() > 10);
}

#[test]
fn mutate_keeps_untouched_documents_byte_for_byte() {
    let path = common::repo_path(&format!("{FIXTURES}/clean/reviews.yaml"));
    let original = std::fs::read_to_string(&path).unwrap();
    let output = run(&["mutate", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        stdout(&output),
        original,
        "a clean file comes out byte for byte"
    );

    let input = "# a comment that must survive\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: details, namespace: bookinfo}\nspec:\n  host: details\n---\n# trailing document, untouched\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\n";
    let output = run_stdin(&["mutate", "-"], input);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(text.starts_with("# a comment that must survive\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n"), "{text}");
    assert!(
        text.ends_with(
            "---\n# trailing document, untouched\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
        ),
        "{text}"
    );
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(
        docs[1]["spec"]["trafficPolicy"]["outlierDetection"]["maxEjectionPercent"],
        100
    );
    assert_eq!(
        docs[1]["metadata"]["annotations"]["failover-guard.io/mutated"],
        "FG101"
    );
    assert_eq!(docs[1]["metadata"]["name"], "details");

    let diff = run_stdin(&["mutate", "--diff", "-"], input);
    let diff = stdout(&diff);
    assert!(diff.contains("+    outlierDetection:"), "{diff}");
    assert!(
        !diff.contains("ConfigMap"),
        "only changed documents are diffed: {diff}"
    );
}

#[test]
fn mutate_of_several_files_keeps_every_document_when_one_lacks_a_final_newline() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yaml");
    let b = dir.path().join("b.yaml");
    std::fs::write(
        &a,
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  selector: {app: a}",
    )
    .unwrap();
    std::fs::write(
        &b,
        "apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec:\n  selector: {app: b}\n",
    )
    .unwrap();
    let output = run(&["mutate", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(text.contains("selector: {app: a}\n---\n"), "{text}");
    let names: Vec<String> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| {
            let doc: Value = serde::Deserialize::deserialize(d).unwrap();
            doc["metadata"]["name"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(names, ["a", "b"], "{text}");
}

#[test]
fn explain_and_certs() {
    let output = run(&["explain", "FG204"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(text.starts_with("FG204 failover-entry-mesh-external"));
    assert!(text.contains("MESH_INTERNAL"));

    let unknown = run(&["explain", "FG999"]);
    assert_eq!(unknown.status.code(), Some(2));

    let listing = stdout(&run(&["explain"]));
    assert_eq!(listing.lines().count(), failover_guard::rules::RULES.len());

    let dir = tempfile::tempdir().unwrap();
    let output = run(&[
        "certs",
        "--service",
        "fg",
        "--namespace",
        "ops",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0));
    use base64::Engine as _;
    let bundle = base64::engine::general_purpose::STANDARD
        .decode(stdout(&output).trim())
        .expect("base64 caBundle");
    assert_eq!(bundle, std::fs::read(dir.path().join("ca.crt")).unwrap());
    assert!(dir.path().join("tls.key").exists());

    for help in [
        &["--help"][..],
        &["serve", "--help"],
        &["check", "--help"],
        &["mutate", "--help"],
    ] {
        assert_eq!(run(help).status.code(), Some(0));
    }
}

#[test]
fn simulate_shows_where_traffic_goes_before_and_after_mutate() {
    let dir = "tests/scenarios/seed-transparent-failover";
    let config = format!("{dir}/config.yaml");
    let objects = format!("{dir}/objects.yaml");

    // As written: capped (Envoy may eject 10% of two hosts: none).
    let before = run(&["simulate", "--config", &config, &objects]);
    assert_eq!(before.status.code(), Some(0));
    let text = stdout(&before);
    assert!(
        text.contains("call-me-maybe.default.svc.cluster.local:80 from default@europe-west3/europe-west3-a: capped"),
        "{text}"
    );
    assert!(
        text.contains(
            "p1 europe-west1/europe-west1-b  weight 1  203.0.113.10:15443 (cluster-b, mTLS)"
        ),
        "{text}"
    );
    assert!(text.contains("Assumed local workloads"), "{text}");

    // After mutate, with the local locality failed, cluster-b carries the traffic (JSON).
    let mutated = stdout(&run(&["mutate", "--config", &config, &objects]));
    let after = run_stdin(
        &[
            "simulate",
            "--config",
            &config,
            "--fail",
            "europe-west3",
            "--output",
            "json",
            "-",
        ],
        &mutated,
    );
    assert_eq!(after.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&after.stdout).expect("JSON");
    let cluster = &report["clusters"][0];
    assert_eq!(
        cluster["name"],
        "outbound|80||call-me-maybe.default.svc.cluster.local"
    );
    assert_eq!(cluster["verdict"], "failover");
    assert_eq!(cluster["outlierDetection"], true);
    assert_eq!(cluster["client"]["locality"], "europe-west3/europe-west3-a");
    assert_eq!(
        cluster["priorities"][1]["endpoints"][0]["cluster"],
        "cluster-b"
    );
    assert_eq!(cluster["failure"]["carriedBy"], 1);
    assert_eq!(
        cluster["failure"]["clusters"],
        serde_json::json!(["cluster-b"])
    );

    // Failing both clusters is an outage; an unknown host gives no cluster.
    let outage = run(&[
        "simulate",
        "--config",
        &config,
        "--fail",
        "europe-west3",
        "--fail",
        "cluster-b",
        &objects,
    ]);
    assert!(
        stdout(&outage).contains("=> outage: no endpoint is left"),
        "{}",
        stdout(&outage)
    );
    let none = run(&[
        "simulate",
        "--config",
        &config,
        "--host",
        "nothing.default.svc.cluster.local",
        "--output",
        "json",
        &objects,
    ]);
    let report: Value = serde_json::from_slice(&none.stdout).expect("JSON");
    assert_eq!(report["clusters"], serde_json::json!([]));

    // Broken input is an error with exit code 2, not a panic.
    let broken = run_stdin(&["simulate", "-"], "kind: [unclosed\n");
    assert_eq!(broken.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&broken.stderr).contains("<stdin>:2:"),
        "{broken:?}"
    );
}

#[test]
fn check_prints_policy_reports_the_crd_accepts() {
    let output = run(&[
        "check",
        "--output",
        "policyreport",
        &format!("{FIXTURES}/deny"),
    ]);
    let text = stdout(&output);
    let reports: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert!(!reports.is_empty(), "no reports: {text}");
    let schemas = common::CrdSchemas::load_files(&[
        "policyreport/wgpolicyk8s.io_policyreports.yaml",
        "policyreport/wgpolicyk8s.io_clusterpolicyreports.yaml",
    ]);
    let mut fails = 0;
    for report in &reports {
        assert_eq!(report["kind"], "PolicyReport");
        assert_eq!(report["metadata"]["name"], "failover-guard");
        let errors = schemas.errors(report).expect("a PolicyReport schema");
        assert!(errors.is_empty(), "{errors:?}\n{report:#}");
        let results = report["results"].as_array().unwrap();
        let count = |r: &str| results.iter().filter(|x| x["result"] == r).count() as u64;
        assert_eq!(report["summary"]["fail"], count("fail"));
        assert_eq!(report["summary"]["warn"], count("warn"));
        assert_eq!(report["summary"]["pass"], count("pass"));
        for result in results {
            assert_eq!(result["policy"], "failover-guard");
            assert!(result["rule"].as_str().unwrap().starts_with("FG"));
            assert_eq!(
                result["resources"][0]["namespace"],
                report["metadata"]["namespace"]
            );
        }
        fails += count("fail");
    }
    assert!(fails > 0, "the deny fixtures have denials: {text}");
    // The exit code is check's, whatever the format.
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn render_prints_what_check_passes_and_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("svc.yaml");
    std::fs::write(
        &manifests,
        "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  ports: [{name: http, port: 9080}]\n",
    )
    .unwrap();
    let path = manifests.display().to_string();
    let out = run(&["render", "--service", "reviews", "-n", "bookinfo", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let rendered = stdout(&out);
    for kind in ["ServiceEntry", "DestinationRule", "AuthorizationPolicy"] {
        assert!(rendered.contains(&format!("kind: {kind}")), "{rendered}");
    }
    assert!(rendered.contains("address: 203.0.113.10"), "{rendered}");
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, &rendered).unwrap();
    let check = run(&["check", &file.display().to_string()]);
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));

    let missing = run(&["render", "--service", "ratings", "-n", "bookinfo", &path]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("Service bookinfo/ratings not found")
    );
    let broken = run_stdin(&["render", "--service", "reviews", "-"], "not: [yaml");
    assert_eq!(broken.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&broken.stderr).contains("<stdin>"));
}

/// A remote in a trust domain this cluster does not trust: `check` says so when the config
/// loads, and warns on the failover entry that points at it (FG214).
#[test]
fn check_warns_about_an_untrusted_remote_trust_domain() {
    let dir = std::env::temp_dir().join(format!("fg-trust-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = std::fs::read_to_string(common::repo_path("deploy/base/config.yaml"))
        .unwrap()
        .replacen(
            "    trustDomain: cluster.local\n    locality: europe-west4",
            "    trustDomain: cluster-b.example\n    locality: europe-west4",
            1,
        );
    assert!(
        config.contains("cluster-b.example"),
        "the example config changed shape"
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let entry = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - {address: 203.0.113.10, ports: {http: 15443}, locality: europe-west4/europe-west4-a, network: network-b, labels: {security.istio.io/tlsMode: istio}}\n";
    let out = run_stdin(&["check", "--config", path.to_str().unwrap(), "-"], entry);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config: remotes[0] (cluster-b) has trust domain \"cluster-b.example\""),
        "{stderr}"
    );
    assert!(
        stdout(&out).contains("warn: FG214 ServiceEntry bookinfo/reviews-failover: failover to cluster-b, whose trust domain cluster-b.example this cluster does not trust"),
        "{}",
        stdout(&out)
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `--mesh-config`: the mesh config pilot runs with changes what `mutate` writes (FG116 under
/// a mesh that turns locality load balancing off); without one the defaults are said to be
/// in force; a file that is not a mesh config is an error with exit code 2, never a panic.
#[test]
fn mutate_follows_the_mesh_config_and_refuses_a_bad_one() {
    let dir = "tests/scenarios/fg116-locality-disabled-mesh-wide";
    let objects = format!("{dir}/objects.yaml");
    let defaults = run(&["mutate", &objects]);
    assert_eq!(defaults.status.code(), Some(0), "{}", stdout(&defaults));
    assert!(!stdout(&defaults).contains("localityLbSetting"));
    assert!(String::from_utf8_lossy(&defaults.stderr).contains("Istio's defaults"));

    let off = run(&[
        "mutate",
        "--mesh-config",
        &format!("{dir}/mesh.yaml"),
        &objects,
    ]);
    assert_eq!(off.status.code(), Some(0), "{}", stdout(&off));
    assert!(
        stdout(&off).contains("localityLbSetting: {enabled: true}")
            || stdout(&off).contains("enabled: true"),
        "{}",
        stdout(&off)
    );
    assert!(String::from_utf8_lossy(&off.stderr).contains("mesh config: tests/scenarios"));

    let not_a_map = run(&["check", "--mesh-config", "Cargo.toml", &objects]);
    assert_eq!(not_a_map.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&not_a_map.stderr).contains("mesh config Cargo.toml"));
    let missing = run(&["check", "--mesh-config", "no/such/mesh.yaml", &objects]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no/such/mesh.yaml"));
    let configmap = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(configmap.path(), "kind: ConfigMap\ndata: {}\n").unwrap();
    let path = configmap.path().display().to_string();
    let no_mesh_key = run(&["simulate", "--mesh-config", &path, &objects]);
    assert_eq!(
        no_mesh_key.status.code(),
        Some(2),
        "{}",
        stdout(&no_mesh_key)
    );
    assert!(String::from_utf8_lossy(&no_mesh_key.stderr).contains("no data.mesh"));
}

/// The multicluster model and the Istio version come from the config file, `check` says which
/// it judged by, and what they change is what a user sees: in multi-primary a hand-written
/// failover entry is a redundant duplicate (FG208), not something to complete. Bad values are
/// refused with exit code 2 and a message naming the key.
#[test]
fn check_judges_by_the_configured_multicluster_model_and_istio_version() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let multi_primary = write(
        "multi-primary.yaml",
        "cluster: {name: cluster1, network: network1, localities: [region1/zone1]}\nremotes: [{name: cluster2, network: network1, locality: region1/zone2}]\nmulticluster: {model: multiPrimary}\nistio: {version: \"1.29\"}\n",
    );
    let entry = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-failover, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints:\n  - {address: 203.0.113.10, ports: {http: 15443}, locality: region1/zone2, network: network1, labels: {security.istio.io/tlsMode: istio}}\n";
    let out = run_stdin(&["check", "--config", &multi_primary, "-"], entry);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("judged as Istio 1.29, multicluster model multiPrimary"),
        "{stderr}"
    );
    assert!(
        stdout(&out).contains("warn: FG208 ServiceEntry bookinfo/reviews-failover: this entry lists remote endpoints of reviews.bookinfo.svc.cluster.local, which istiod already merges in the multiPrimary model"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("FG201"), "{}", stdout(&out));

    for (name, text, needle) in [
        (
            "no-role.yaml",
            "cluster: {name: c, network: n, localities: [a/b]}\nmulticluster: {model: primaryRemote}\n",
            "multicluster.role is not set",
        ),
        (
            "bad-model.yaml",
            "cluster: {name: c, network: n, localities: [a/b]}\nmulticluster: {model: multiPrimaryy}\n",
            "unknown variant `multiPrimaryy`",
        ),
        (
            "float-version.yaml",
            "cluster: {name: c, network: n, localities: [a/b]}\nistio: {version: 1.30}\n",
            "ambiguous",
        ),
        (
            "old-version.yaml",
            "cluster: {name: c, network: n, localities: [a/b]}\nistio: {version: \"1.20\"}\n",
            "older than 1.24",
        ),
        (
            "no-gateway.yaml",
            "cluster: {name: c, network: n, localities: [a/b]}\nremotes: [{name: r, network: n2, locality: c/d}]\n",
            "gateway.address is required with multicluster.model serviceEntries",
        ),
    ] {
        let path = write(name, text);
        let out = run_stdin(&["check", "--config", &path, "-"], entry);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stdout(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{name}: {stderr}");
    }
}

/// `--remote NAME=PATH`: in a native multicluster model, a remote cluster's real workloads
/// (Services, EndpointSlices, Pods, Nodes) are what istiod merges, and `simulate` shows them
/// (address, locality, cluster, mTLS from the pod's tlsMode label) in place of assumed ones.
/// Misuse is refused with exit code 2 and the reason.
#[test]
fn simulate_reads_a_remote_clusters_workloads_from_files() {
    let dir = "tests/scenarios/mc-multi-primary-cluster-priority";
    let config = format!("{dir}/config.yaml");
    let objects = format!("{dir}/objects.yaml");
    let out = run(&[
        "simulate",
        "--config",
        &config,
        "--remote",
        "cluster2=tests/fixtures/remotes/cluster2-helloworld.yaml",
        &objects,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("p1 region1/zone2  weight 1  10.20.0.7:5000 (cluster2, mTLS)"),
        "{text}"
    );
    assert!(!text.contains("cluster2:sample/helloworld"), "{text}");

    for (args, needle) in [
        (
            vec!["--remote", "cluster9=tests/fixtures/remotes"],
            "cluster9 is not one of the config's remotes",
        ),
        (vec!["--remote", "cluster2"], "expected NAME=PATH"),
        (vec!["--remote", "cluster2=no/such/dir"], "no/such/dir"),
    ] {
        let mut all = vec!["simulate", "--config", &config];
        all.extend(args);
        all.push(&objects);
        let out = run(&all);
        assert_eq!(out.status.code(), Some(2), "{needle}: {}", stdout(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
    let example = run(&[
        "check",
        "--remote",
        "cluster-b=tests/fixtures/remotes",
        &objects,
    ]);
    assert_eq!(example.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&example.stderr)
            .contains("only in multicluster.model multiPrimary or primaryRemote")
    );
}

/// `simulate` on an ambient namespace says what ztunnel does for each Service: with no traffic
/// distribution and no waypoint it prefers nothing (spread across clusters); with PreferClose
/// it fails over by network, region and zone. (The harness test
/// `ztunnel_receives_what_the_model_says_and_no_destination_rule` holds this against pilot.)
#[test]
fn simulate_says_what_ztunnel_does_for_ambient_services() {
    let out = run(&["simulate", "tests/fixtures/ambient/services.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("helloworld.sample.svc.cluster.local for ambient clients: ztunnel (no waypoint, no DestinationRule read) no preference: spread over every endpoint it knows, in every cluster"), "{text}");
    assert!(text.contains("close.sample.svc.cluster.local for ambient clients: ztunnel (no waypoint, no DestinationRule read) prefers NETWORK > REGION > ZONE (FAILOVER"), "{text}");
    let json = run(&[
        "simulate",
        "--output",
        "json",
        "tests/fixtures/ambient/services.yaml",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(
        report["ztunnel"][1]["loadBalancing"],
        serde_json::json!({"routingPreference": ["NETWORK", "REGION", "ZONE"], "mode": "FAILOVER"})
    );
}

/// In ambient multi-primary on two networks, `simulate` lists the workloads ztunnel receives
/// (this network's pods in both clusters, the other network through its east-west gateway) and
/// the order a client's ztunnel uses them in. (The scenarios under tests/scenarios/fg409-* and
/// fg411-* hold the workloads against pilot's ambient index.)
#[test]
fn simulate_orders_ztunnel_workloads_across_clusters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "cluster: {name: cluster1, network: network1, localities: [region1/zone1]}\n\
         remotes:\n\
         - {name: cluster2, network: network1, locality: region1/zone2}\n\
         - {name: cluster3, network: network2, locality: region2/zone1, gateway: {address: 1.2.3.4, port: 15008}}\n\
         multicluster: {model: multiPrimary}\n",
    )
    .expect("config");
    let mesh = dir.path().join("mesh.yaml");
    std::fs::write(
        &mesh,
        "serviceScopeConfigs: [{servicesSelector: {matchLabels: {istio.io/global: \"true\"}}, scope: GLOBAL}]\n",
    )
    .expect("mesh");
    let objects = dir.path().join("objects.yaml");
    std::fs::write(
        &objects,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: sample, labels: {istio.io/dataplane-mode: ambient}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: close, namespace: sample, labels: {istio.io/global: \"true\"}}\n\
         spec: {trafficDistribution: PreferClose, selector: {app: close}, ports: [{name: http, port: 5000}]}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: local, namespace: sample}\n\
         spec: {trafficDistribution: PreferClose, selector: {app: local}, ports: [{name: http, port: 5000}]}\n",
    )
    .expect("objects");
    let (config, mesh, objects) = (
        config.to_str().unwrap(),
        mesh.to_str().unwrap(),
        objects.to_str().unwrap(),
    );
    let out = run(&[
        "simulate",
        "--config",
        config,
        "--mesh-config",
        mesh,
        objects,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("  from region1/zone1: cluster1 region1/zone1 > cluster2 region1/zone2 > network2 via cluster3's east-west gateway"),
        "{text}"
    );
    // A local service keeps this cluster's pods only.
    assert!(
        text.contains("local.sample.svc.cluster.local for ambient clients")
            && text.contains("  scope: local\n  from region1/zone1: cluster1 region1/zone1\n"),
        "{text}"
    );
}
