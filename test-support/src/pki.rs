//! Certificates made at test time for TLS servers and clients: a CA, a
//! server certificate it signed, and a client certificate it signed. No
//! openssl CLI needed.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct Pem {
    /// The certificate.
    pub cert: String,
    /// Its private key (PKCS#8).
    pub key: String,
}

/// A throw-away CA with one server and one client certificate.
///
/// ```no_run
/// use cached_redis_test_support::Pki;
///
/// let pki = Pki::new(&["localhost", "127.0.0.1"]);
/// let files = pki.write(std::env::temp_dir().as_path());
/// assert!(files.ca.exists());
/// ```
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA's certificate (and key).
    pub ca: Pem,
    /// The server's certificate, valid for the names given to [`Pki::new`].
    pub server: Pem,
    /// A client certificate for mutual TLS.
    pub client: Pem,
}

/// Where [`Pki::write`] put the PEM files.
#[derive(Debug, Clone)]
pub struct PkiFiles {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The server certificate.
    pub server_cert: PathBuf,
    /// The server key.
    pub server_key: PathBuf,
    /// The client certificate.
    pub client_cert: PathBuf,
    /// The client key.
    pub client_key: PathBuf,
}

impl Pki {
    /// A new CA, and a server certificate for `server_names` (host names
    /// and IP addresses, e.g. `["localhost", "127.0.0.1"]`).
    ///
    /// # Panics
    ///
    /// If rcgen cannot make a certificate (it is test-only code).
    pub fn new(server_names: &[&str]) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "cached-redis test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("a CA key");
        let cert = params.self_signed(&key).expect("a CA certificate");
        let ca = Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        };
        let issuer = Issuer::new(params, key);
        let server = leaf(
            &issuer,
            server_names,
            "redis-server",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client = leaf(
            &issuer,
            &[],
            "cache-client",
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        Pki { ca, server, client }
    }

    /// Writes every certificate and key into `dir`, as PEM files.
    ///
    /// # Panics
    ///
    /// If a file cannot be written.
    pub fn write(&self, dir: &Path) -> PkiFiles {
        let put = |name: &str, text: &str| {
            let path = dir.join(name);
            fs::write(&path, text)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            path
        };
        PkiFiles {
            ca: put("ca.crt", &self.ca.cert),
            server_cert: put("server.crt", &self.server.cert),
            server_key: put("server.key", &self.server.key),
            client_cert: put("client.crt", &self.client.cert),
            client_key: put("client.key", &self.client.key),
        }
    }
}

fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    names: &[&str],
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> Pem {
    // rcgen reads an IP address as an IP SAN, anything else as a DNS name.
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    let mut params = CertificateParams::new(names).expect("certificate parameters");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("a key");
    let cert = params
        .signed_by(&key, issuer)
        .expect("a signed certificate");
    Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}
