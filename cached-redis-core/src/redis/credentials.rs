//! What a connection authenticates and encrypts with: a username and
//! password that win over the URL's, and for `rediss://` URLs the CA to
//! trust and a client certificate. Files are read and parsed when the
//! configuration is built, so a bad path or PEM is a configuration error
//! naming its variable, never a failure at connect time. None of it is ever
//! printed: `Debug` shows `***` for every secret.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::{
    Client, ClientTlsConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, ProtocolVersion,
    TlsCertificates,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ConfigError;

/// A value that is never shown.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret<T>(pub(crate) T);

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Credentials and TLS settings, as configured.
#[derive(Clone, Default, Debug)]
pub(crate) struct Credentials {
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Secret<String>>,
    pub(crate) ca_cert: Option<PathBuf>,
    pub(crate) client_cert: Option<PathBuf>,
    pub(crate) client_key: Option<PathBuf>,
    /// The files' contents, once [`Credentials::load`]ed.
    loaded: Option<Loaded>,
}

#[derive(Clone, Debug)]
struct Loaded {
    root_cert: Option<Vec<u8>>,
    client: Option<(Vec<u8>, Secret<Vec<u8>>)>,
}

/// Environment variable names, for errors.
pub(crate) const CA_CERT: &str = "REDIS_CA_CERT";
pub(crate) const CLIENT_CERT: &str = "REDIS_CLIENT_CERT";
pub(crate) const CLIENT_KEY: &str = "REDIS_CLIENT_KEY";

impl Credentials {
    /// Reads and checks the TLS files against the URLs they will be used
    /// with (one node's, or every seed's or sentinel's).
    pub(crate) fn load(
        &mut self,
        urls: &[String],
        url_name: &'static str,
    ) -> Result<(), ConfigError> {
        let mut schemes = Vec::with_capacity(urls.len());
        for url in urls {
            let info = url.as_str().into_connection_info().map_err(|err| {
                ConfigError::InvalidRedisUrl {
                    name: url_name,
                    reason: err.to_string(),
                }
            })?;
            if matches!(info.addr(), ConnectionAddr::TcpTls { insecure: true, .. }) {
                return Err(ConfigError::InvalidRedisUrl {
                    name: url_name,
                    reason: "#insecure (no certificate verification) is not supported; \
                             give the server's CA in REDIS_CA_CERT instead"
                        .to_owned(),
                });
            }
            schemes.push(is_tls(&info));
        }
        let tls = schemes.first().copied().unwrap_or(false);
        if schemes.iter().any(|&each| each != tls) {
            return Err(ConfigError::InvalidRedisUrl {
                name: url_name,
                reason: "mixes rediss:// and redis:// URLs; use one scheme for all".to_owned(),
            });
        }
        let files = [&self.ca_cert, &self.client_cert, &self.client_key];
        if !tls && files.iter().any(|file| file.is_some()) {
            return Err(ConfigError::InvalidSetting {
                name: CA_CERT,
                expected: "TLS files only with a rediss:// URL",
            });
        }
        let root_cert = self
            .ca_cert
            .as_deref()
            .map(read_certs(CA_CERT))
            .transpose()?;
        let client = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some((read_certs(CLIENT_CERT)(cert)?, read_key(key)?)),
            (None, None) => None,
            (Some(_), None) => return Err(missing(CLIENT_KEY, CLIENT_CERT)),
            (None, Some(_)) => return Err(missing(CLIENT_CERT, CLIENT_KEY)),
        };
        self.loaded = Some(Loaded { root_cert, client });
        Ok(())
    }

    /// The same TLS settings without the username and password, for
    /// Sentinels: they authenticate with what their own URLs say.
    pub(crate) fn tls_only(&self) -> Credentials {
        Credentials {
            username: None,
            password: None,
            ..self.clone()
        }
    }

    /// A client for `target` (a URL, or an address) with these credentials
    /// and TLS settings.
    pub(crate) fn client(&self, target: impl IntoConnectionInfo) -> redis::RedisResult<Client> {
        self.client_speaking(target, None)
    }

    /// [`client`](Self::client), speaking RESP3: what the redis crate's
    /// client-side cache (the near-cache) needs, for the server's
    /// invalidation pushes.
    pub(crate) fn resp3_client(
        &self,
        target: impl IntoConnectionInfo,
    ) -> redis::RedisResult<Client> {
        self.client_speaking(target, Some(ProtocolVersion::RESP3))
    }

    /// A client with these credentials, speaking `protocol` (`None`: as the
    /// URL says).
    fn client_speaking(
        &self,
        target: impl IntoConnectionInfo,
        protocol: Option<ProtocolVersion>,
    ) -> redis::RedisResult<Client> {
        let info = target.into_connection_info()?;
        let mut settings = info.redis_settings().clone();
        if let Some(protocol) = protocol {
            settings = settings.set_protocol(protocol);
        }
        if let Some(username) = &self.username {
            settings = settings.set_username(username);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(&password.0);
        }
        let info = info.set_redis_settings(settings);
        if !is_tls(&info) {
            return Client::open(info);
        }
        Client::build_with_tls(info, self.certificates())
    }

    /// A cluster client for these seed nodes, with these credentials and
    /// TLS settings. Each node's replies are bounded by `response_timeout`
    /// inside the client's driver (on the cache's I/O thread); the whole
    /// operation's deadline is the caller's (see `Redis::run`). A few
    /// retries with millisecond waits are enough to follow `MOVED` and
    /// `ASK` and to reconnect to a restarted node: the client's defaults
    /// (16 retries, waits from 1.28 s) would hold a dead node's keys until
    /// our deadline every time.
    pub(crate) fn cluster_client(
        &self,
        seeds: &[String],
        response_timeout: Duration,
        connect_timeout: Duration,
    ) -> redis::RedisResult<ClusterClient> {
        let seeds = seeds
            .iter()
            .map(|url| url.as_str().into_connection_info())
            .collect::<Result<Vec<_>, _>>()?;
        let tls = seeds.iter().any(is_tls);
        let mut builder = ClusterClientBuilder::new(seeds)
            .retries(3)
            .min_retry_wait(1)
            .max_retry_wait(20)
            .response_timeout(response_timeout)
            // The caller's deadline bounds the operation; the client's own
            // overall timer would run on the caller's executor, which may have none.
            .overall_response_timeout(None)
            .connection_timeout(connect_timeout);
        if let Some(username) = &self.username {
            builder = builder.username(username);
        }
        if let Some(password) = &self.password {
            builder = builder.password(&password.0);
        }
        if tls {
            builder = builder.certs(self.certificates());
        }
        builder.build()
    }

    fn certificates(&self) -> TlsCertificates {
        install_crypto_provider();
        let loaded = self.loaded.as_ref();
        TlsCertificates {
            root_cert: loaded.and_then(|l| l.root_cert.clone()),
            client_tls: loaded
                .and_then(|l| l.client.clone())
                .map(|(cert, key)| ClientTlsConfig {
                    client_cert: cert,
                    client_key: key.0,
                }),
        }
    }
}

/// Whether connections to `info` use TLS (`rediss://`).
pub(crate) fn is_tls(info: &ConnectionInfo) -> bool {
    matches!(info.addr(), ConnectionAddr::TcpTls { .. })
}

/// rustls panics at connect time unless exactly one crypto provider is
/// chosen; with several enabled in one build it cannot choose, so one is
/// installed here. One installed by the application first is kept.
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // `ring` is deprecated in rustls only for lacking post-quantum key
        // exchange, which no Redis server offers.
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        let _ = provider.install_default();
    });
}

fn read_certs(name: &'static str) -> impl Fn(&Path) -> Result<Vec<u8>, ConfigError> {
    move |path| {
        let bytes = read(name, path)?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| invalid(name, path, &err.to_string()))?;
        if certs.is_empty() {
            return Err(invalid(name, path, "no PEM certificate in it"));
        }
        Ok(bytes)
    }
}

fn read_key(path: &Path) -> Result<Secret<Vec<u8>>, ConfigError> {
    let bytes = read(CLIENT_KEY, path)?;
    // The parser's message could quote the key: name only what was wrong.
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|_| invalid(CLIENT_KEY, path, "no PEM private key in it"))?;
    Ok(Secret(bytes))
}

fn read(name: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|err| invalid(name, path, &err.to_string()))
}

fn invalid(name: &'static str, path: &Path, reason: &str) -> ConfigError {
    ConfigError::InvalidFile {
        name,
        path: path.display().to_string(),
        reason: reason.to_owned(),
    }
}

fn missing(absent: &'static str, given: &'static str) -> ConfigError {
    ConfigError::InvalidSetting {
        name: absent,
        expected: if given == CLIENT_CERT {
            "a client key with the client certificate"
        } else {
            "a client certificate with the client key"
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn the_environment_credentials_win_over_the_urls() {
        let config = Config::from_lookup(|name| {
            Some(match name {
                "REDIS_URL" => "redis://url-user:url-pw@127.0.0.1:6379/2".to_owned(),
                "REDIS_USERNAME" => "env-user".to_owned(),
                "REDIS_PASSWORD" => " env pw ".to_owned(),
                _ => return None,
            })
        })
        .unwrap();
        let client = config
            .credentials
            .client(config.redis_url.as_str())
            .unwrap();
        let settings = client.get_connection_info().redis_settings();
        assert_eq!(settings.username(), Some("env-user"));
        assert_eq!(settings.password(), Some(" env pw "), "taken as given");
        assert_eq!(settings.db(), 2, "the rest of the URL is kept");

        let url_only = Config::builder()
            .redis_url("redis://url-user:url-pw@127.0.0.1:6379")
            .build()
            .unwrap();
        let client = url_only
            .credentials
            .client(url_only.redis_url.as_str())
            .unwrap();
        assert_eq!(
            client.get_connection_info().redis_settings().password(),
            Some("url-pw")
        );
    }
}
