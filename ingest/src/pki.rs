//! `geoward pki`: a device CA and certificates, so operators need no openssl recipe.
//!
//! Device certificates carry the device id as Organization (and common name): with
//! rumqttd's `validate-tenant-prefix`, the broker confines the connection to topics
//! under `/tenants/<device id>/`. Files are PEM; private keys are written with mode
//! 0600.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// File names inside a PKI directory.
pub const CA_CERT: &str = "ca.pem";
/// CA private key.
pub const CA_KEY: &str = "ca.key";
/// Server certificate for the TLS listener.
pub const SERVER_CERT: &str = "server.pem";
/// Server private key.
pub const SERVER_KEY: &str = "server.key";

/// The CA's parameters. Deterministic, so the issuer can be rebuilt from the key
/// alone when issuing later (no certificate parser needed).
fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Geoward device CA");
    dn.push(DnType::OrganizationName, "Geoward");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2044, 1, 1);
    Ok(p)
}

fn write_key(path: &Path, pem: &str) -> anyhow::Result<()> {
    std::fs::write(path, pem).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

fn issuer(dir: &Path) -> anyhow::Result<Issuer<'static, KeyPair>> {
    let key_pem = std::fs::read_to_string(dir.join(CA_KEY)).with_context(|| {
        format!(
            "reading {} (run `geoward pki init` first)",
            dir.join(CA_KEY).display()
        )
    })?;
    let key = KeyPair::from_pem(&key_pem).context("parsing the CA key")?;
    Ok(Issuer::new(ca_params()?, key))
}

/// Creates the CA and a server certificate for `server_names` (DNS names or IPs).
/// Refuses to overwrite an existing CA.
pub fn init(dir: &Path, server_names: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    anyhow::ensure!(
        !dir.join(CA_KEY).exists(),
        "{} already exists; refusing to replace the CA",
        dir.join(CA_KEY).display()
    );
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params()?.self_signed(&ca_key)?;
    std::fs::write(dir.join(CA_CERT), ca_cert.pem())?;
    write_key(&dir.join(CA_KEY), &ca_key.serialize_pem())?;

    let mut names: Vec<String> = server_names.to_vec();
    if names.is_empty() {
        names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    }
    let mut p = CertificateParams::new(names.clone())?;
    p.distinguished_name
        .push(DnType::CommonName, names[0].clone());
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &issuer(dir)?)?;
    std::fs::write(dir.join(SERVER_CERT), cert.pem())?;
    write_key(&dir.join(SERVER_KEY), &key.serialize_pem())?;
    Ok([CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY]
        .iter()
        .map(|f| dir.join(f))
        .collect())
}

/// Issues a client certificate for a device: `<device>.pem` and `<device>.key`.
pub fn issue_device(dir: &Path, device_id: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    geoward_proto::TenantId::new(device_id).with_context(|| {
        format!("device id {device_id:?} must be letters and digits only (it is the tenant)")
    })?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, device_id);
    p.distinguished_name
        .push(DnType::OrganizationName, device_id);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &issuer(dir)?)?;
    let cert_path = dir.join(format!("{device_id}.pem"));
    let key_path = dir.join(format!("{device_id}.key"));
    std::fs::write(&cert_path, cert.pem())?;
    write_key(&key_path, &key.serialize_pem())?;
    Ok((cert_path, key_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_issue_writes_pem_files_and_refuses_a_second_ca() {
        let dir = tempfile::tempdir().unwrap();
        let files = init(dir.path(), &[]).unwrap();
        for f in &files {
            assert!(
                std::fs::read_to_string(f)
                    .unwrap()
                    .starts_with("-----BEGIN"),
                "{}",
                f.display()
            );
        }
        let (c, k) = issue_device(dir.path(), "dev42").unwrap();
        assert!(
            std::fs::read_to_string(c)
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
        assert!(std::fs::read_to_string(k).unwrap().contains("PRIVATE KEY"));
        assert!(init(dir.path(), &[]).is_err());
        assert!(issue_device(dir.path(), "dev/../x").is_err());
    }
}
