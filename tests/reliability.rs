//! Reliability and hostile clients, against the real binary over real TLS: certificate
//! rotation (Kubernetes Secret symlink swap) under load, draining with requests in flight,
//! slow and idle clients, plaintext and old TLS, load shedding, a battery of bad inputs, and
//! configuration reload.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::{Server, Tls, client_config, connect, review_for, yaml};
use rustls_pki_types::{CertificateDer, pem::PemObject};
use serde_json::{Value, json};

/// The leaf certificate the server presents on a new handshake.
fn presented_leaf(port: u16, ca_pem: &str) -> Vec<u8> {
    let tls = connect(port, client_config(ca_pem, &[&rustls::version::TLS13])).expect("handshake");
    tls.conn.peer_certificates().unwrap()[0].to_vec()
}

fn leaf_der(pem: &str) -> Vec<u8> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

fn dr() -> Value {
    yaml(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec: {host: reviews}\n",
    )
}

#[test]
fn certificate_rotation_by_symlink_swap_under_load() {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let first = failover_guard::certs::generate(&names).unwrap();
    let volume = tempfile::tempdir().unwrap();
    // Start with a chain (leaf, then CA): accepted.
    common::write_secret_volume(
        volume.path(),
        1,
        &format!("{}{}", first.cert_pem, first.ca_cert_pem),
        &first.key_pem,
    );
    let server = Server::start_with(
        None,
        &[],
        Some((
            volume.path().join("tls.crt"),
            volume.path().join("tls.key"),
            first.ca_cert_pem.clone(),
        )),
    );
    let ca = first.ca_cert_pem.clone();
    assert_eq!(presented_leaf(server.port, &ca), leaf_der(&first.cert_pem));

    // Continuous load on new and kept-alive connections while the certificate rotates.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let body = review_for("load", "CREATE", &dr()).to_string();
    let load: Vec<_> = (0..2)
        .map(|i| {
            let (stop, ok, failed, ca, body, port) = (
                stop.clone(),
                ok.clone(),
                failed.clone(),
                ca.clone(),
                body.clone(),
                server.port,
            );
            std::thread::spawn(move || {
                let mut agent = common::agent_trusting(&ca);
                while !stop.load(Ordering::Relaxed) {
                    if i == 0 {
                        agent = common::agent_trusting(&ca); // a new connection every time
                    }
                    let result = agent
                        .post(&format!("https://localhost:{port}/mutate"))
                        .header("content-type", "application/json")
                        .send(body.as_bytes());
                    match result {
                        Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    let second =
        failover_guard::certs::issue(&names, &first.ca_cert_pem, &first.ca_key_pem).unwrap();
    common::write_secret_volume(volume.path(), 2, &second.cert_pem, &second.key_pem);
    let rotated = Instant::now();
    while presented_leaf(server.port, &ca) != leaf_der(&second.cert_pem) {
        assert!(
            rotated.elapsed() < Duration::from_secs(10),
            "new certificate not served within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A broken new pair keeps the current one, and is counted.
    common::write_secret_volume(
        volume.path(),
        3,
        "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n",
        &second.key_pem,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = server.probe("/metrics");
        if metrics.contains(r#"failover_guard_reloads_total{what="certificate",result="error"} 1"#)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "broken certificate not counted:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(presented_leaf(server.port, &ca), leaf_der(&second.cert_pem));

    stop.store(true, Ordering::Relaxed);
    for thread in load {
        thread.join().unwrap();
    }
    assert!(ok.load(Ordering::Relaxed) > 20, "too little load: {ok:?}");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during rotation"
    );
    let (_, metrics) = server.probe("/metrics");
    assert!(
        metrics.contains(r#"failover_guard_reloads_total{what="certificate",result="success"} 1"#),
        "{metrics}"
    );
}

/// Sends a POST whose body trickles in over `spread`, then returns the raw response.
fn slow_post(
    port: u16,
    ca: &str,
    path: &str,
    body: &[u8],
    spread: Duration,
) -> std::io::Result<String> {
    let mut tls = connect(port, client_config(ca, &[&rustls::version::TLS13]))?;
    write!(
        tls,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    let chunks: Vec<&[u8]> = body.chunks(body.len().div_ceil(10)).collect();
    for chunk in &chunks {
        tls.write_all(chunk)?;
        tls.flush()?;
        std::thread::sleep(spread / chunks.len() as u32);
    }
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response);
    Ok(String::from_utf8_lossy(&response).into_owned())
}

/// A /mutate whose body trickles in over 2 s, on its own thread: a request held in flight.
fn slow_mutate_in_background(
    server: &Server,
    uid: &str,
) -> std::thread::JoinHandle<std::io::Result<String>> {
    let (port, ca) = (server.port, server.ca_pem.clone());
    let body = review_for(uid, "CREATE", &dr()).to_string();
    std::thread::spawn(move || {
        slow_post(
            port,
            &ca,
            "/mutate",
            body.as_bytes(),
            Duration::from_secs(2),
        )
    })
}

#[test]
fn sigterm_finishes_requests_in_flight() {
    let mut server = Server::start(None, &["--grace-period", "10s"]);
    let port = server.port;
    let in_flight = slow_mutate_in_background(&server, "in-flight");
    std::thread::sleep(Duration::from_millis(500));
    let child = server.child.as_ref().unwrap();
    common::signal(child, "TERM");
    let response = in_flight.join().unwrap().expect("in-flight request");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"uid\":\"in-flight\""), "{response}");
    let mut child = server.child.take().unwrap();
    let status = common::wait_timeout(&mut child, Duration::from_secs(15)).expect("exited");
    assert!(status.success(), "{status}");
    // Nothing listens any more.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn slow_idle_plaintext_and_old_tls_clients() {
    let server = Server::start(None, &["--header-timeout", "1s"]);
    let config = client_config(&server.ca_pem, &[&rustls::version::TLS13]);

    // Headers sent byte by byte: cut off by the header timeout.
    let mut tls = connect(server.port, config.clone()).unwrap();
    let started = Instant::now();
    let mut cut = false;
    for byte in b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa" {
        if tls.write_all(&[*byte]).and_then(|_| tls.flush()).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if !cut {
        let mut buf = [0u8; 256];
        let read = tls.read(&mut buf);
        cut = matches!(read, Ok(0) | Err(_)) || String::from_utf8_lossy(&buf).contains("408");
    }
    assert!(cut, "slow client was not cut off");
    assert!(started.elapsed() < Duration::from_secs(8));

    // A TCP connection that never starts TLS is closed after the timeout too.
    let mut raw = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    assert!(matches!(raw.read(&mut buf), Ok(0) | Err(_)));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "idle TCP not closed: {:?}",
        started.elapsed()
    );

    // Many idle connections do not starve a real request.
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(("127.0.0.1", server.port)).unwrap())
        .collect();
    let idle_tls: Vec<Tls> = (0..30)
        .map(|_| connect(server.port, config.clone()).unwrap())
        .collect();
    let started = Instant::now();
    let answer = server.review("/mutate", &review_for("real", "CREATE", &dr()));
    assert_eq!(answer["response"]["uid"], "real");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "real request took {:?}",
        started.elapsed()
    );
    drop((idle, idle_tls));

    // Plaintext HTTP on the admission port gets no HTTP answer.
    let mut plain = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}")
        .unwrap();
    let mut response = Vec::new();
    let _ = plain.read_to_end(&mut response);
    assert!(
        !response.starts_with(b"HTTP/"),
        "plaintext was answered: {:?}",
        String::from_utf8_lossy(&response)
    );

    // TLS 1.2 works; TLS 1.1 and 1.0 are refused by the server (openssl speaks them, at
    // security level 0, so the refusal is the server's alert and not the client's policy).
    assert!(
        connect(
            server.port,
            client_config(&server.ca_pem, &[&rustls::version::TLS12])
        )
        .is_ok()
    );
    let openssl = |version: &str| {
        std::process::Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{}", server.port),
                version,
            ])
            .args(["-cipher", "DEFAULT@SECLEVEL=0"])
            .stdin(std::process::Stdio::null())
            .output()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
    };
    let Ok(modern) = openssl("-tls1_2") else {
        eprintln!("openssl not installed: TLS < 1.2 refusal not checked");
        return;
    };
    assert!(
        modern.contains("TLSv1.2, Cipher is"),
        "openssl control: {modern}"
    );
    for old in ["-tls1_1", "-tls1"] {
        let text = openssl(old).unwrap();
        assert!(
            text.contains("Cipher is (NONE)"),
            "{old} was accepted:\n{text}"
        );
        assert!(
            text.contains("alert") || text.contains("no protocols available"),
            "{old}:\n{text}"
        );
    }
}

#[test]
fn overload_is_shed_fast() {
    let server = Server::start(None, &["--max-in-flight", "1"]);
    let slow = slow_mutate_in_background(&server, "slow");
    std::thread::sleep(Duration::from_millis(400));
    let started = Instant::now();
    let (status, text) = server.post(
        "/mutate",
        review_for("shed", "CREATE", &dr()).to_string().as_bytes(),
    );
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("overloaded"), "{text}");
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(slow.join().unwrap().unwrap().starts_with("HTTP/1.1 200"));
    let (_, metrics) = server.probe("/metrics");
    assert!(
        metrics.contains(r#"failover_guard_bad_requests_total{rule="overloaded"} 1"#),
        "{metrics}"
    );
}

#[test]
fn bad_input_battery() {
    let server = Server::start(None, &[]);
    let post = |body: &[u8]| server.post("/validate", body);
    let valid = review_for("uid-ok", "CREATE", &dr());

    // Not an AdmissionReview at all: 400 with a JSON error.
    let mut deep = "[".repeat(10_000);
    deep.push_str(&"]".repeat(10_000));
    let mut wrong_version = valid.clone();
    wrong_version["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let mut no_uid = valid.clone();
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    for (what, body) in [
        ("empty", Vec::new()),
        ("not JSON", b"hello".to_vec()),
        ("nested 10,000 deep", deep.into_bytes()),
        ("wrong version", wrong_version.to_string().into_bytes()),
        ("missing uid", no_uid.to_string().into_bytes()),
        ("invalid UTF-8", vec![b'{', 0xff, 0xfe, b'}']),
        (
            "no request",
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"})
                .to_string()
                .into_bytes(),
        ),
    ] {
        let (status, text) = post(&body);
        assert_eq!(status, 400, "{what}: {text}");
        let error: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: not JSON: {text}"));
        assert!(error["error"].is_string(), "{what}");
        assert!(
            text.len() < 1_000,
            "{what}: error echoes input ({} bytes)",
            text.len()
        );
    }

    // AdmissionReviews with odd objects: answered with their uid, never a panic.
    let pod = yaml("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: bookinfo}");
    let mut wrong_kind = review_for("uid-kind", "CREATE", &pod);
    wrong_kind["request"]["kind"] =
        json!({"group": "networking.istio.io", "version": "v1", "kind": "DestinationRule"});
    let answer = server.review("/validate", &wrong_kind);
    assert_eq!(answer["response"]["uid"], "uid-kind");
    assert_eq!(answer["response"]["allowed"], true);

    let mut string_spec = dr();
    string_spec["spec"] = json!("a string");
    let answer = server.review("/mutate", &review_for("uid-spec", "CREATE", &string_spec));
    assert_eq!(answer["response"]["uid"], "uid-spec");
    assert_eq!(answer["response"]["allowed"], true);

    let mut numbers = dr();
    numbers["metadata"]["name"] = json!(12345);
    numbers["spec"]["host"] = json!(42);
    let answer = server.review("/validate", &review_for("uid-numbers", "CREATE", &numbers));
    assert_eq!(answer["response"]["uid"], "uid-numbers");

    // A huge string where a string does not belong: denied with the uid, message bounded.
    let mut huge = dr();
    huge["metadata"]["labels"] = json!({"a": ["x".repeat(1 << 20)]});
    let answer = server.review("/validate", &review_for("uid-huge", "CREATE", &huge));
    assert_eq!(answer["response"]["uid"], "uid-huge");
    assert_eq!(answer["response"]["allowed"], false);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.len() < 1_000,
        "denial echoes input: {} bytes",
        message.len()
    );

    // A valid 6 MiB object (just under the limit) is evaluated; 7 MiB is refused.
    let mut big = dr();
    big["metadata"]["annotations"] = json!({"big": "y".repeat(6 * 1024 * 1024 - 2048)});
    let answer = server.review("/mutate", &review_for("uid-big", "CREATE", &big));
    assert_eq!(answer["response"]["uid"], "uid-big");
    assert!(
        answer["response"]["patch"].is_string(),
        "the big object still gets its fix"
    );
    let response = server.announce("/validate", 7 * 1024 * 1024);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(
        response.contains(r#"{"error":"the request body is larger than the limit"#),
        "{response}"
    );

    // Still healthy.
    assert_eq!(server.probe("/readyz").0, 200);
    assert_eq!(
        server.review("/validate", &valid)["response"]["uid"],
        "uid-ok"
    );
}

#[test]
fn config_reload_applies_valid_and_keeps_invalid() {
    let server = Server::start(None, &[]);
    let review = review_for("cfg", "CREATE", &dr());
    assert!(server.review("/mutate", &review)["response"]["patch"].is_string());

    let config_path = server.path("config.yaml");
    let off = format!(
        "{}\nrules: {{FG101: off}}\n",
        failover_guard::config::EXAMPLE.replace("rules: {}", "")
    );
    std::fs::write(&config_path, off).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.review("/mutate", &review)["response"]
        .get("patch")
        .is_some()
    {
        assert!(Instant::now() < deadline, "config change not applied");
        std::thread::sleep(Duration::from_millis(50));
    }

    std::fs::write(&config_path, "cluster: {name: a, network: n}\nbogus: 1\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = server.probe("/metrics");
        if metrics.contains(r#"failover_guard_reloads_total{what="config",result="error"} 1"#) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bad config not counted: {metrics}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The previous (valid) configuration is still in force: FG101 stays off.
    assert!(
        server.review("/mutate", &review)["response"]
            .get("patch")
            .is_none()
    );
}
