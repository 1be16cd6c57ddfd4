//! Test support: start the real `failover-guard` binary with real certificates on loopback
//! ports and talk to it over HTTPS with a real client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::Read as _,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

pub mod cluster;
pub mod istio;
pub mod mesh;
pub mod proxy;
pub mod scale;
pub mod strategies;

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_failover-guard");

use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use std::net::TcpStream;

/// A TLS client trusting `ca_pem`, limited to `versions`.
pub fn client_config(
    ca_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

pub type Tls = StreamOwned<ClientConnection, TcpStream>;

pub fn connect(port: u16, config: Arc<ClientConfig>) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running `failover-guard serve`.
pub struct Server {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub probe_port: u16,
    pub ca_pem: String,
}

impl Server {
    /// Starts the server with `config` (YAML; the example config when `None`) and extra flags.
    pub fn start(config: Option<&str>, extra: &[&str]) -> Server {
        Self::start_with(config, extra, None)
    }

    /// Starts the server with the given certificate and key files (and the CA that signed
    /// them), or with a freshly generated pair when `None`.
    pub fn start_with(
        config: Option<&str>,
        extra: &[&str],
        certs: Option<(PathBuf, PathBuf, String)>,
    ) -> Server {
        let mut dir = tempfile::tempdir().expect("tempdir");
        let (cert, key, mut ca_pem) = certs.unwrap_or_else(|| {
            let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
            let generated = failover_guard::certs::generate(&names).expect("certs");
            generated.write(dir.path()).expect("write certs");
            (
                dir.path().join("tls.crt"),
                dir.path().join("tls.key"),
                generated.ca_cert_pem,
            )
        });
        let config_path = dir.path().join("config.yaml");
        std::fs::write(
            &config_path,
            config.unwrap_or(failover_guard::config::EXAMPLE),
        )
        .expect("write config");
        // A port found free can be taken by a parallel test before the server binds it:
        // start again on new ports when that is why the server exited.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port();
            let probe_port = free_port();
            let child = Command::new(BIN)
                .args(["serve", "--config"])
                .arg(&config_path)
                .arg("--tls-cert")
                .arg(&cert)
                .arg("--tls-key")
                .arg(&key)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(["--probe-listen", &format!("127.0.0.1:{probe_port}")])
                .args(["--reload-interval", "200ms"])
                .args(extra)
                // Never watch whatever cluster the developer's kubeconfig points at.
                .args(if extra.contains(&"--world") {
                    &[][..]
                } else {
                    &["--world", "none"][..]
                })
                .env(
                    "FAILOVER_GUARD_LOG",
                    std::env::var("FG_TEST_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start failover-guard");
            let mut server = Server {
                child: Some(child),
                dir,
                port,
                probe_port,
                ca_pem,
            };
            match server.wait_ready() {
                Ok(()) => return server,
                Err(why) if why.contains("Address already in use") && attempt < 5 => {
                    // The certificates and config live in `dir`: keep it for the next try.
                    let placeholder = tempfile::tempdir().expect("temp dir");
                    dir = std::mem::replace(&mut server.dir, placeholder);
                    ca_pem = std::mem::take(&mut server.ca_pem);
                    continue;
                }
                Err(why) => panic!("{why}"),
            }
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.probe("/readyz").0 == 200 {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let mut stderr = String::new();
                if let Some(mut err) = self.child.as_mut().and_then(|c| c.stderr.take()) {
                    let _ = err.read_to_string(&mut stderr);
                }
                return Err(format!("failover-guard exited with {status}: {stderr}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("failover-guard did not become ready".into())
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    /// An HTTPS client that trusts only this server's CA.
    pub fn agent(&self) -> ureq::Agent {
        agent_trusting(&self.ca_pem)
    }

    /// POSTs a body to the admission listener; returns status and body.
    pub fn post(&self, path: &str, body: &[u8]) -> (u16, String) {
        let response = self
            .agent()
            .post(&self.url(path))
            .header("content-type", "application/json")
            .send(body)
            .expect("request");
        read(response)
    }

    /// Sends only the headers of a POST announcing a `length`-byte body, and returns the raw
    /// response. A body over the limit is refused on its announcement; sending it too would
    /// race with the server closing the connection (the client would see a broken pipe).
    pub fn announce(&self, path: &str, length: usize) -> String {
        use std::io::Write as _;
        let mut tls = connect(
            self.port,
            client_config(&self.ca_pem, &[&rustls::version::TLS13]),
        )
        .expect("TLS connection");
        write!(
            tls,
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
        )
        .expect("send headers");
        tls.flush().expect("send headers");
        let mut response = Vec::new();
        let _ = tls.read_to_end(&mut response);
        String::from_utf8_lossy(&response).into_owned()
    }

    /// POSTs an AdmissionReview and returns the parsed response review.
    pub fn review(&self, path: &str, review: &Value) -> Value {
        let (status, body) = self.post(path, review.to_string().as_bytes());
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("JSON response")
    }

    /// GETs from the probe listener.
    pub fn probe(&self, path: &str) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        match agent
            .get(&format!("http://127.0.0.1:{}{path}", self.probe_port))
            .call()
        {
            Ok(response) => read(response),
            Err(_) => (0, String::new()),
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(&child, "TERM");
        wait_timeout(&mut child, Duration::from_secs(30)).expect("exited after SIGTERM")
    }

    /// Sends SIGTERM, waits for the exit, and returns what the server logged on stderr.
    pub fn terminate_with_logs(&mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        signal(&child, "TERM");
        let mut logs = String::new();
        let _ = stderr.read_to_string(&mut logs);
        let status =
            wait_timeout(&mut child, Duration::from_secs(30)).expect("exited after SIGTERM");
        (status, logs)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn signal(child: &Child, name: &str) {
    let _ = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status();
}

pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

pub fn agent_trusting(ca_pem: &str) -> ureq::Agent {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    let ca = Certificate::from_pem(ca_pem.as_bytes())
        .expect("CA PEM")
        .to_owned();
    ureq::Agent::config_builder()
        .tls_config(
            TlsConfig::builder()
                .root_certs(RootCerts::Specific(Arc::new(vec![ca])))
                .build(),
        )
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn read(mut response: ureq::http::Response<ureq::Body>) -> (u16, String) {
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_string()
        .unwrap_or_default();
    (status, body)
}

/// An AdmissionReview for `object` as the API server sends it.
pub fn review_for(uid: &str, operation: &str, object: &Value) -> Value {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap_or("");
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": format!("{}s", kind.to_lowercase())},
            "name": object["metadata"]["name"],
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "tester"},
            "object": if operation == "DELETE" { Value::Null } else { object.clone() },
            "oldObject": if operation == "DELETE" { object.clone() } else { Value::Null },
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

/// Applies the response's base64 JSONPatch (if any) to `object`.
pub fn apply_response_patch(object: &Value, review: &Value) -> Value {
    use base64::Engine as _;
    let mut patched = object.clone();
    if let Some(patch) = review["response"]["patch"].as_str() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .expect("base64 patch");
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("JSONPatch");
        json_patch::patch(&mut patched, &patch).expect("patch applies");
    }
    patched
}

pub fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).expect("test YAML")
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Runs a build script that prints what it built (a folder or a file) on its last line of
/// standard output, with its progress on our standard error.
pub fn run_build_script(rel: &str) -> Result<PathBuf, String> {
    let script = repo_path(rel);
    let output = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed with {}",
            script.display(),
            output.status
        ));
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .lines()
            .last()
            .unwrap_or(""),
    ))
}

/// The shared folder beside the checkout (Istio CRDs, corpus); `FG_SHARED` overrides it.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("FG_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_path("../shared"))
}

/// Istio's CRD OpenAPI schemas, by (group, version, kind).
pub struct CrdSchemas {
    validators: std::collections::HashMap<(String, String, String), jsonschema::Validator>,
}

impl CrdSchemas {
    pub fn load() -> CrdSchemas {
        Self::load_files(&["istio/crd-all.gen.yaml"])
    }

    /// The schemas of the CRD files under ../shared named (relative paths).
    pub fn load_files(files: &[&str]) -> CrdSchemas {
        let mut text = String::new();
        for file in files {
            let path = shared_dir().join(file);
            text.push_str(
                &std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("CRDs at {}: {e}", path.display())),
            );
            text.push_str("\n---\n");
        }
        let path = shared_dir();
        let mut validators = std::collections::HashMap::new();
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let crd = <Value as serde::Deserialize>::deserialize(document).expect("CRD YAML");
            if crd["kind"] != "CustomResourceDefinition" {
                continue;
            }
            let group = crd["spec"]["group"].as_str().unwrap_or("").to_owned();
            let kind = crd["spec"]["names"]["kind"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            for version in crd["spec"]["versions"].as_array().into_iter().flatten() {
                let mut schema = version["schema"]["openAPIV3Schema"].clone();
                if let Some(properties) =
                    schema.get_mut("properties").and_then(Value::as_object_mut)
                {
                    properties.values_mut().for_each(close_objects);
                }
                let schema = &schema;
                let name = version["name"].as_str().unwrap_or("").to_owned();
                let validator = jsonschema::validator_for(schema)
                    .unwrap_or_else(|e| panic!("schema of {kind} {name}: {e}"));
                validators.insert((group.clone(), name, kind.clone()), validator);
            }
        }
        assert!(
            !validators.is_empty(),
            "no CRDs found in {} {files:?}",
            path.display()
        );
        CrdSchemas { validators }
    }

    /// Errors of `object` against its CRD schema; `None` when no schema covers its kind.
    pub fn errors(&self, object: &Value) -> Option<Vec<String>> {
        let api_version = object["apiVersion"].as_str()?;
        let (group, version) = api_version.split_once('/')?;
        let kind = object["kind"].as_str()?;
        let validator =
            self.validators
                .get(&(group.to_owned(), version.to_owned(), kind.to_owned()))?;
        Some(
            validator
                .iter_errors(object)
                .map(|e| format!("{}: {e}", e.instance_path))
                .collect(),
        )
    }
}

/// The API server prunes fields a structural schema does not list, silently. To catch a patch
/// that adds such a field, every object schema that lists its properties is closed
/// (`additionalProperties: false`) unless it preserves unknown fields.
fn close_objects(schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    let preserves = map
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    if map.contains_key("properties") && !preserves && !map.contains_key("additionalProperties") {
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    for key in ["properties", "patternProperties"] {
        if let Some(children) = map.get_mut(key).and_then(Value::as_object_mut) {
            children.values_mut().for_each(close_objects);
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(child) = map.get_mut(key) {
            close_objects(child);
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(children) = map.get_mut(key).and_then(Value::as_array_mut) {
            children.iter_mut().for_each(close_objects);
        }
    }
}

/// The failover_guard_* metric families named in a PromQL text.
pub fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("failover_guard_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

/// Checks deploy/monitoring against a server's /metrics text: every failover_guard_* metric an
/// alert or a dashboard panel names is one the server exposes (families with samples).
/// The metrics only a server with remote discovery exposes.
pub const REMOTE_METRIC_PREFIX: &str = "failover_guard_remote";

/// Checks that every remote-discovery metric an alert names is exposed by a server with
/// discovery (`exposition` is its /metrics text), and that the unreachable-remote alert exists.
#[allow(dead_code)]
pub fn check_remote_monitoring_against(exposition: &str) {
    let rules =
        std::fs::read_to_string(repo_path("deploy/monitoring/prometheusrule.yaml")).unwrap();
    let names: Vec<String> = metric_names(&rules)
        .into_iter()
        .filter(|n| n.starts_with(REMOTE_METRIC_PREFIX))
        .collect();
    assert!(!names.is_empty(), "no alert on remote discovery");
    assert!(rules.contains("FailoverGuardRemoteUnreachable"));
    for name in names {
        assert!(
            exposition.contains(&format!("# TYPE {name} ")),
            "{name} is not exposed:\n{exposition}"
        );
    }
}

pub fn check_monitoring_against(exposition: &str) {
    // The families the server declares (`# TYPE <name> <type>`), and their sample names.
    let mut exposed = std::collections::BTreeSet::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, kind) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            exposed.insert(name.to_owned());
            match kind {
                "counter" => {
                    exposed.insert(format!("{name}_total"));
                }
                "histogram" => {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        exposed.insert(format!("{name}{suffix}"));
                    }
                }
                _ => {}
            }
        }
    }
    let rules =
        std::fs::read_to_string(repo_path("deploy/monitoring/prometheusrule.yaml")).unwrap();
    let rules: Value = serde_yaml_ng::from_str(&rules).unwrap();
    let mut alerts = Vec::new();
    for rule in rules["spec"]["groups"][0]["rules"].as_array().unwrap() {
        let expr = rule["expr"].as_str().unwrap();
        alerts.push(rule["alert"].as_str().unwrap().to_owned());
        // Remote-discovery metrics exist only on a server with discovery: the two-cluster
        // suite checks them (`check_remote_monitoring_against`).
        for name in metric_names(expr)
            .into_iter()
            .filter(|n| !n.starts_with(REMOTE_METRIC_PREFIX))
        {
            assert!(
                exposed.contains(&name),
                "alert {} uses {name}, which the server does not expose",
                rule["alert"]
            );
        }
    }
    for wanted in [
        "FailoverGuardDown",
        "FailoverGuardNotReady",
        "FailoverGuardDenialRateJump",
        "FailoverGuardCertificateExpiring",
        "FailoverGuardConfigReloadFailing",
        "FailoverGuardWorldNotSynced",
    ] {
        assert!(alerts.iter().any(|a| a == wanted), "no alert {wanted}");
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("deploy/monitoring/dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut used = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            for name in metric_names(target["expr"].as_str().unwrap()) {
                assert!(
                    exposed.contains(&name),
                    "panel {} uses {name}, which the server does not expose",
                    panel["title"]
                );
                used += 1;
            }
        }
    }
    assert!(used >= 8, "the dashboard shows {used} metrics");
}

/// Writes a certificate pair the way the kubelet updates a mounted Secret: files in a
/// timestamped folder, `..data` pointing at it, and `tls.crt` / `tls.key` pointing through
/// `..data`; an update swaps `..data` atomically.
pub fn write_secret_volume(dir: &Path, generation: u32, cert_pem: &str, key_pem: &str) {
    let folder = dir.join(format!("..2026_11_29_{generation}"));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("tls.crt"), cert_pem).unwrap();
    std::fs::write(folder.join("tls.key"), key_pem).unwrap();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(folder.file_name().unwrap(), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for file in ["tls.crt", "tls.key"] {
        let link = dir.join(file);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{file}"), &link).unwrap();
        }
    }
}
