//! The collector's TLS material: a private certificate authority made once per
//! installation, and a server certificate it signs for the names and addresses
//! agents use. Agents are enrolled with the CA certificate (`ca.pem`) and pin it.
//!
//! Files, in `<data dir>/tls/`: `ca.pem`, `ca.key` (keep offline if you can),
//! `server.pem`, `server.key`. Keys are written readable by their owner only.
//! Re-running `tls init` with new names keeps the CA, so enrolled agents keep
//! trusting the collector.

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The TLS directory inside the data dir.
pub const TLS_DIR: &str = "tls";

/// Where the TLS files are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl TlsFiles {
    pub fn in_data_dir(data_dir: &Path) -> TlsFiles {
        let dir = data_dir.join(TLS_DIR);
        TlsFiles {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        }
    }

    /// True when a server certificate is in place.
    pub fn present(&self) -> bool {
        self.server_cert.exists() && self.server_key.exists()
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = jiff::Timestamp::now();
    let ymd = |t: jiff::Timestamp| {
        let d = t.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
        (i32::from(d.year()), d.month() as u8, d.day() as u8)
    };
    let (y, m, d) = ymd(now - jiff::SignedDuration::from_hours(24));
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = ymd(now + jiff::SignedDuration::from_hours(24 * days));
    params.not_after = rcgen::date_time_ymd(y, m, d);
}

/// Creates the CA (unless it exists) and a server certificate for `names`
/// (DNS names or IP addresses). Returns the files.
pub fn init(data_dir: &Path, names: &[String], server_days: i64) -> anyhow::Result<TlsFiles> {
    anyhow::ensure!(
        !names.is_empty(),
        "give at least one --name: the host name or address agents use to reach the collector"
    );
    let files = TlsFiles::in_data_dir(data_dir);
    let dir = data_dir.join(TLS_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let issuer = if files.ca_cert.exists() && files.ca_key.exists() {
        let key_pem = std::fs::read_to_string(&files.ca_key)?;
        let key = KeyPair::from_pem(&key_pem)
            .with_context(|| format!("{}: not a private key", files.ca_key.display()))?;
        let cert_pem = std::fs::read_to_string(&files.ca_cert)?;
        Issuer::from_ca_cert_pem(&cert_pem, key)
            .with_context(|| format!("{}: not a CA certificate", files.ca_cert.display()))?
    } else {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "kaoqin private CA");
        dn.push(DnType::OrganizationName, "kaoqin");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params, 3650);
        let cert = params.self_signed(&key)?;
        write_private(&files.ca_key, &key.serialize_pem())?;
        std::fs::write(&files.ca_cert, cert.pem())?;
        Issuer::new(params, key)
    };

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())
        .context("a --name is neither a DNS name nor an IP address")?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names[0].clone());
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    validity(&mut params, server_days);
    let cert = params.signed_by(&key, &issuer)?;
    write_private(&files.server_key, &key.serialize_pem())?;
    std::fs::write(&files.server_cert, cert.pem())?;
    Ok(files)
}

/// The server certificate and key (PEM) `tls init` made, for the web pages.
pub fn server_pem(data_dir: &Path) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let files = TlsFiles::in_data_dir(data_dir);
    let cert = std::fs::read(&files.server_cert)
        .with_context(|| format!("cannot read {}", files.server_cert.display()))?;
    let key = std::fs::read(&files.server_key)
        .with_context(|| format!("cannot read {}", files.server_key.display()))?;
    Ok((cert, key))
}

/// Sessions the server remembers for clients that resume without a ticket
/// (TLS 1.2 session ids); ticket-holding clients need no memory here.
const SESSION_CACHE: usize = 4096;

/// The gRPC server's TLS configuration, if a certificate is in place: HTTP/2
/// only, and sessions resumed from tickets. An agent opens a connection per
/// Report (`close_when_idle`), so a province would otherwise pay a full
/// handshake (a signature and the certificate sent) per PC per minute. Tickets
/// are encrypted with keys that live in this process's memory and rotate every
/// few hours (rustls' ticketer): a restart costs each agent one full handshake,
/// and nothing about a session is written to disk.
pub fn server_config(data_dir: &Path) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let files = TlsFiles::in_data_dir(data_dir);
    if !files.present() {
        return Ok(None);
    }
    let (cert, key) = server_pem(data_dir)?;
    let chain = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not a PEM certificate", files.server_cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "{}: no certificate in it; run `kaoqin-collector tls init` again",
        files.server_cert.display()
    );
    let key = PrivateKeyDer::from_pem_slice(&key)
        .with_context(|| format!("{}: not a PEM private key", files.server_key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "{} and {} do not make a usable certificate and key",
                files.server_cert.display(),
                files.server_key.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
    Ok(Some(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_makes_a_ca_once_and_reissues_the_server_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let f = init(
            dir.path(),
            &["collector.local".into(), "127.0.0.1".into()],
            825,
        )
        .unwrap();
        let ca = std::fs::read_to_string(&f.ca_cert).unwrap();
        let server = std::fs::read_to_string(&f.server_cert).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for k in [&f.ca_key, &f.server_key] {
                assert_eq!(
                    std::fs::metadata(k).unwrap().permissions().mode() & 0o077,
                    0
                );
            }
        }
        let f2 = init(dir.path(), &["other.local".into()], 825).unwrap();
        assert_eq!(
            std::fs::read_to_string(&f2.ca_cert).unwrap(),
            ca,
            "the CA is kept"
        );
        assert_ne!(std::fs::read_to_string(&f2.server_cert).unwrap(), server);
        let config = server_config(dir.path())
            .unwrap()
            .expect("a certificate is in place");
        assert!(
            config.ticketer.enabled(),
            "sessions resume from tickets, however many agents"
        );
        assert_eq!(config.alpn_protocols, [b"h2".to_vec()]);
        assert!(init(dir.path(), &[], 825).is_err());
    }
}
