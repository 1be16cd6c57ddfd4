//! Certificates for the admission listener: a private CA and a serving certificate for the
//! webhook Service (`failover-guard certs`, `serve --dev`), generated with rcgen.

use std::{
    fs,
    path::{Path, PathBuf},
};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// File names written into the output folder (the names of a kubernetes.io/tls Secret).
pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const TLS_CERT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot generate certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A generated CA and serving certificate, PEM encoded.
pub struct Generated {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Generated {
    /// The base64 of the CA certificate, as a webhook configuration's `caBundle`.
    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.ca_cert_pem.as_bytes())
    }

    /// Writes the four files into `dir` (keys readable by the owner only).
    pub fn write(&self, dir: &Path) -> Result<(), CertError> {
        let write = |name: &str, text: &str, private: bool| {
            let path = dir.join(name);
            fs::create_dir_all(dir)
                .and_then(|_| fs::write(&path, text))
                .and_then(|_| restrict(&path, private))
                .map_err(|source| CertError::Write { path, source })
        };
        write(CA_CERT, &self.ca_cert_pem, false)?;
        write(CA_KEY, &self.ca_key_pem, true)?;
        write(TLS_CERT, &self.cert_pem, false)?;
        write(TLS_KEY, &self.key_pem, true)
    }
}

#[cfg(unix)]
fn restrict(path: &Path, private: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if private {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_: &Path, _: bool) -> std::io::Result<()> {
    Ok(())
}

/// The DNS names the API server uses for a webhook Service.
pub fn service_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
        service.to_owned(),
    ]
}

/// A new CA and a serving certificate for `names` (DNS names or IP addresses), valid for
/// about ten years: rotation is the job of cert-manager in production.
pub fn generate(names: &[String]) -> Result<Generated, CertError> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.distinguished_name = name("failover-guard CA");
    validity(&mut ca_params);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, &ca_key);
    let (cert_pem, key_pem) = serving(names, &issuer)?;
    Ok(Generated {
        ca_cert_pem: ca_cert.pem(),
        ca_key_pem: ca_key.serialize_pem(),
        cert_pem,
        key_pem,
    })
}

/// A new serving certificate for `names` from an existing CA: rotation keeps the CA, so the
/// API server's caBundle stays valid.
pub fn issue(
    names: &[String],
    ca_cert_pem: &str,
    ca_key_pem: &str,
) -> Result<Generated, CertError> {
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, &ca_key)?;
    let (cert_pem, key_pem) = serving(names, &issuer)?;
    Ok(Generated {
        ca_cert_pem: ca_cert_pem.to_owned(),
        ca_key_pem: ca_key_pem.to_owned(),
        cert_pem,
        key_pem,
    })
}

fn serving(names: &[String], issuer: &Issuer<'_, &KeyPair>) -> Result<(String, String), CertError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name = name(names.first().map_or("failover-guard", String::as_str));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut params);
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn validity(params: &mut CertificateParams) {
    let now = std::time::SystemTime::now();
    let day = std::time::Duration::from_secs(86_400);
    params.not_before = (now - day).into();
    params.not_after = (now + day * 3650).into();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_chain_with_the_service_names() {
        let names = service_names("failover-guard", "failover-guard");
        let generated = generate(&names).unwrap();
        assert!(
            generated
                .ca_cert_pem
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert!(generated.key_pem.contains("PRIVATE KEY"));
        let bundle = base64::engine::general_purpose::STANDARD
            .decode(generated.ca_bundle())
            .unwrap();
        assert_eq!(bundle, generated.ca_cert_pem.as_bytes());
        let dir = tempfile::tempdir().unwrap();
        generated.write(dir.path()).unwrap();
        for file in [CA_CERT, CA_KEY, TLS_CERT, TLS_KEY] {
            assert!(dir.path().join(file).exists());
        }
    }
}
