//! A real Kubernetes control plane on loopback for the end-to-end tests: etcd and
//! kube-apiserver built from the Go module proxy (tests/controlplane/build.sh, cached outside
//! the checkout), a kubeconfig, Istio's CRDs, and the real `kubectl` of the machine.
//!
//! `FG_E2E=skip` skips on purpose; `FG_E2E=required` (set by .ci/run) turns a missing control
//! plane into a failure; otherwise a machine without Go skips with the reason printed.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use super::{free_port, repo_path, shared_dir, wait_timeout};

/// A command's stdout and stderr together, for assertion messages and searches.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// How the e2e suite was asked to behave.
fn policy() -> String {
    std::env::var("FG_E2E").unwrap_or_default()
}

/// The folder holding kube-apiserver and etcd, building them on first use.
fn binaries() -> Result<PathBuf, String> {
    if Command::new("go").arg("version").output().is_err() {
        return Err("Go is not installed, so kube-apiserver and etcd cannot be built".into());
    }
    eprintln!("e2e: locating the control plane (the first build takes 10-20 minutes on 2 cores)");
    let dir = super::run_build_script("tests/controlplane/build.sh")?;
    if dir.join("kube-apiserver").exists() && dir.join("etcd").exists() {
        Ok(dir)
    } else {
        Err(format!(
            "build.sh printed {} without binaries in it",
            dir.display()
        ))
    }
}

/// A second static identity without any group: what RBAC grants it is all it may do (the
/// remote-discovery test binds it to deploy/remote/rbac.yaml's read-only role).
pub const READER_TOKEN: &str = "failover-guard-e2e-reader-token";

/// A running etcd + kube-apiserver pair, torn down on drop (also when a test fails).
pub struct ControlPlane {
    pub dir: tempfile::TempDir,
    children: Vec<Child>,
    pub kubeconfig: PathBuf,
    pub port: u16,
    bin: PathBuf,
    etcd_client: u16,
}

impl ControlPlane {
    /// Starts the control plane, or returns `None` when the e2e suite is skipped.
    pub fn start() -> Option<ControlPlane> {
        let required = policy() == "required";
        if policy() == "skip" {
            eprintln!("e2e: skipped (FG_E2E=skip)");
            return None;
        }
        let bin = match binaries() {
            Ok(bin) => bin,
            Err(reason) if required => panic!("e2e required (FG_E2E=required) but: {reason}"),
            Err(reason) => {
                eprintln!("e2e: skipped: {reason} (set FG_E2E=required to make this a failure)");
                return None;
            }
        };
        if Command::new("kubectl")
            .arg("version")
            .arg("--client")
            .output()
            .is_err()
        {
            let reason = "kubectl is not installed";
            assert!(!required, "e2e required but {reason}");
            eprintln!("e2e: skipped: {reason}");
            return None;
        }
        // A port picked free can be taken by another test's process before etcd or the API
        // server binds it: start again on new ports, a few times.
        for attempt in 1..=3 {
            match Self::start_with(&bin) {
                Ok(plane) => return Some(plane),
                Err(taken) if attempt < 3 => eprintln!("e2e: {taken}; starting again"),
                Err(taken) => panic!("kube-apiserver did not start: {taken}"),
            }
        }
        None
    }

    fn start_with(bin: &Path) -> Result<ControlPlane, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = dir.path().join("pki");
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        failover_guard::certs::generate(&names)
            .expect("certs")
            .write(&pki)
            .expect("write pki");
        let sa_key = rcgen_sa_key();
        std::fs::write(pki.join("sa.key"), &sa_key.0).expect("sa key");
        std::fs::write(pki.join("sa.pub"), &sa_key.1).expect("sa pub");
        let token = "failover-guard-e2e-admin-token";
        std::fs::write(
            dir.path().join("tokens.csv"),
            format!("{token},admin,admin,system:masters\n{READER_TOKEN},reader,reader\n"),
        )
        .expect("tokens");

        let (client, peer, port) = (free_port(), free_port(), free_port());
        let logs = dir.path().to_owned();
        let log = |name: &str| std::fs::File::create(logs.join(name)).expect("log file");
        let etcd = Command::new(bin.join("etcd"))
            .args(["--data-dir", &dir.path().join("etcd").display().to_string()])
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{client}"),
            ])
            .args([
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{client}"),
            ])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
            ])
            .args([
                "--initial-cluster",
                &format!("default=http://127.0.0.1:{peer}"),
            ])
            .arg("--unsafe-no-fsync")
            .stdout(log("etcd.log"))
            .stderr(log("etcd.err"))
            .spawn()
            .expect("start etcd");
        let mut plane = ControlPlane {
            kubeconfig: dir.path().join("kubeconfig"),
            children: vec![etcd],
            port,
            dir,
            bin: bin.to_owned(),
            etcd_client: client,
        };
        let p = |name: &str| pki.join(name).display().to_string();
        let apiserver = plane
            .apiserver_command()
            .spawn()
            .expect("start kube-apiserver");
        plane.children.push(apiserver);
        std::fs::write(
            &plane.kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: e2e, cluster: {{server: \"https://127.0.0.1:{port}\", certificate-authority: \"{}\"}}}}]\nusers: [{{name: admin, user: {{token: {token}}}}}]\ncontexts: [{{name: e2e, context: {{cluster: e2e, user: admin}}}}]\ncurrent-context: e2e\n",
                p("ca.crt")
            ),
        )
        .expect("kubeconfig");
        plane.wait_ready()?;
        Ok(plane)
    }

    /// kube-apiserver on this plane's port, etcd and certificates.
    fn apiserver_command(&self) -> Command {
        let pki = self.dir.path().join("pki");
        let p = |name: &str| pki.join(name).display().to_string();
        let log = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.path().join(name))
                .expect("log file")
        };
        let (client, port) = (self.etcd_client, self.port);
        let mut command = Command::new(self.bin.join("kube-apiserver"));
        command
            .arg(format!("--etcd-servers=http://127.0.0.1:{client}"))
            .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"])
            .arg(format!("--secure-port={port}"))
            .arg(format!("--tls-cert-file={}", p("tls.crt")))
            .arg(format!("--tls-private-key-file={}", p("tls.key")))
            .arg(format!("--client-ca-file={}", p("ca.crt")))
            .arg(format!(
                "--token-auth-file={}",
                self.dir.path().join("tokens.csv").display()
            ))
            .arg(format!("--service-account-key-file={}", p("sa.pub")))
            .arg(format!(
                "--service-account-signing-key-file={}",
                p("sa.key")
            ))
            .arg("--service-account-issuer=https://kubernetes.default.svc")
            .arg("--service-cluster-ip-range=10.96.0.0/24")
            .arg("--authorization-mode=RBAC")
            .arg("--endpoint-reconciler-type=none")
            .arg(format!(
                "--cert-dir={}",
                self.dir.path().join("certdir").display()
            ))
            .stdout(log("apiserver.log"))
            .stderr(log("apiserver.err"));
        command
    }

    /// Waits for /readyz; a port taken by another process is an error to start again on.
    fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if self.kubectl(&["get", "--raw", "/readyz"]).status.success() {
                break;
            }
            let exited = self
                .children
                .iter_mut()
                .any(|c| c.try_wait().ok().flatten().is_some());
            let etcd =
                std::fs::read_to_string(self.dir.path().join("etcd.err")).unwrap_or_default();
            let tail = format!("{etcd}\n{}", self.log_tail());
            if exited && tail.contains("address already in use") {
                return Err(format!(
                    "a port was taken: {}",
                    tail.lines().last().unwrap_or("")
                ));
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "kube-apiserver not ready:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        eprintln!("e2e: kube-apiserver ready in {:?}", started.elapsed());
        Ok(())
    }

    /// Stops the API server (etcd keeps the state), as a control-plane restart does.
    pub fn stop_apiserver(&mut self) {
        if let Some(mut apiserver) = self.children.pop() {
            let _ = apiserver.kill();
            let _ = apiserver.wait();
        }
    }

    /// Starts the API server again on the same port and state.
    pub fn start_apiserver(&mut self) {
        let apiserver = self
            .apiserver_command()
            .spawn()
            .expect("start kube-apiserver");
        self.children.push(apiserver);
        self.wait_ready().expect("kube-apiserver ready again");
    }

    fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("apiserver.err")).unwrap_or_default();
        text.lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Runs the machine's kubectl against this API server.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    /// Runs kubectl with `input` on standard input.
    pub fn kubectl_stdin(&self, args: &[&str], input: Option<&str>) -> Output {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--request-timeout=30s")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        if let Some(input) = input {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        drop(child.stdin.take());
        // Drain stdout and stderr while waiting: a large answer (/metrics) fills the pipe, and
        // kubectl would block on it forever.
        let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut buf);
                }
                buf
            })
        };
        let stdout = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        );
        let stderr = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        );
        let deadline = Duration::from_secs(60);
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Output {
                    status,
                    stdout: stdout.join().unwrap_or_default(),
                    stderr: stderr.join().unwrap_or_default(),
                };
            }
            if started.elapsed() > deadline {
                let _ = child.kill();
                panic!("kubectl {args:?} hung for {deadline:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kubectl apply -f -` of YAML text, returning the output.
    pub fn apply(&self, yaml: &str, extra: &[&str]) -> Output {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        self.kubectl_stdin(&args, Some(yaml))
    }

    /// The stored object as JSON, or `None` when it does not exist.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let output = self.kubectl(&["get", kind, name, "-n", namespace, "-o", "json"]);
        output
            .status
            .success()
            .then(|| serde_json::from_slice(&output.stdout).expect("kubectl JSON"))
    }

    /// Installs Istio's CRDs from ../shared/istio and waits until they are served.
    pub fn install_istio_crds(&self) {
        let path = shared_dir().join("istio/crd-all.gen.yaml");
        let out = self.kubectl(&["apply", "--server-side", "-f", &path.display().to_string()]);
        assert!(
            out.status.success(),
            "CRDs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = self.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "--all",
        ]);
        assert!(
            out.status.success(),
            "CRDs not established: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Registers the webhooks of deploy/base/webhooks.yaml, pointed at a server on loopback.
    pub fn register_webhooks(&self, port: u16, ca_pem: &str) {
        use base64::Engine as _;
        let text =
            std::fs::read_to_string(repo_path("deploy/base/webhooks.yaml")).expect("webhooks.yaml");
        let bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
        let mut items = Vec::new();
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let mut config: Value =
                serde::Deserialize::deserialize(document).expect("webhook YAML");
            for webhook in config["webhooks"].as_array_mut().expect("webhooks") {
                let path = webhook["clientConfig"]["service"]["path"]
                    .as_str()
                    .expect("path")
                    .to_owned();
                webhook["clientConfig"] = json!({
                    "url": format!("https://127.0.0.1:{port}{path}"),
                    "caBundle": bundle,
                });
            }
            items.push(config);
        }
        let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
        let out = self.apply(&list.to_string(), &[]);
        assert!(
            out.status.success(),
            "webhooks: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            super::signal(child, "TERM");
            if wait_timeout(child, Duration::from_secs(10)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// A service-account signing key pair (private PKCS#8 PEM, public PEM).
fn rcgen_sa_key() -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    (key.serialize_pem(), key.public_key_pem())
}
