//! The benchmarks' webhook client: the server's own TLS and HTTP stack on the client side
//! (rustls + hyper, HTTP/1.1 keep-alive), so that the generator costs much less than the server
//! it measures.

use std::sync::Arc;

use anyhow::bail;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, client::conn::http1};
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, RootCertStore, pki_types::ServerName};
use rustls_pki_types::{CertificateDer, pem::PemObject};
use tokio_rustls::TlsConnector;

pub type Sender = http1::SendRequest<Full<Bytes>>;

/// A TLS connector trusting every CA in these PEM texts.
pub fn connector(cas: &[String]) -> anyhow::Result<TlsConnector> {
    let mut roots = RootCertStore::empty();
    for pem in cas {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert?)?;
        }
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// One keep-alive connection to the server on loopback.
pub async fn connect(connector: &TlsConnector, port: u16) -> anyhow::Result<Sender> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let tls = connector
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let (sender, connection) = http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends one request and reads the whole answer; an answer other than 200 with an
/// AdmissionReview response is an error (a benchmark must not measure failures).
pub async fn send(sender: &mut Sender, path: &str, body: &Bytes) -> anyhow::Result<()> {
    sender.ready().await?;
    let request = Request::post(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let answer = response.into_body().collect().await?.to_bytes();
    if status != 200 || !answer.starts_with(b"{") {
        bail!(
            "{path}: HTTP {status}: {}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        );
    }
    Ok(())
}
