//! Finding the master through Sentinel, on every connection attempt.
//!
//! The address is never cached past a connection: a connection that drops,
//! refuses, times out or answers `READONLY` is discarded (see `Redis::run`),
//! and the next attempt asks Sentinel again — after a failover that is the
//! promoted replica. The address Sentinel gives is checked with `ROLE`
//! before it is used, so a Sentinel that has not yet seen the failover
//! cannot point writes at the demoted master.

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, ErrorKind, RedisError, RedisResult};
use tokio::task::JoinSet;

use super::Credentials;
use super::credentials::is_tls;

/// Where the master is, and how to reach it once found.
pub(crate) struct Sentinel {
    /// One client per Sentinel, authenticating as its URL says.
    sentinels: Vec<Client>,
    master: String,
    /// How the master is reached: the configured username, password and TLS.
    credentials: Credentials,
    tls: bool,
}

impl Sentinel {
    pub(super) fn new(
        urls: &[String],
        master: &str,
        credentials: &Credentials,
    ) -> RedisResult<Sentinel> {
        let own_auth = credentials.tls_only();
        let sentinels = urls
            .iter()
            .map(|url| own_auth.client(url.as_str()))
            .collect::<RedisResult<Vec<_>>>()?;
        let tls = sentinels
            .iter()
            .any(|client| is_tls(client.get_connection_info()));
        Ok(Sentinel {
            sentinels,
            master: master.to_owned(),
            credentials: credentials.clone(),
            tls,
        })
    }

    /// Asks every Sentinel at once where the master is, and connects to the
    /// first address given that turns out to be a master. All at once, so
    /// a Sentinel that hangs (a paused process, a dropped route) costs
    /// nothing while another answers; the connect timeout bounds the whole.
    /// Must run inside a tokio runtime (the cache's I/O thread).
    pub(super) async fn connect(
        &self,
        config: &AsyncConnectionConfig,
    ) -> RedisResult<MultiplexedConnection> {
        let mut answers = JoinSet::new();
        for sentinel in &self.sentinels {
            let (sentinel, master, config) =
                (sentinel.clone(), self.master.clone(), config.clone());
            answers.spawn(async move { ask(&sentinel, &master, &config).await });
        }
        let mut last = RedisError::from((ErrorKind::EmptySentinelList, "no Sentinel configured"));
        while let Some(answer) = answers.join_next().await {
            let attempt = match answer {
                Ok(Ok((host, port))) => self.master_at(host, port, config).await,
                Ok(Err(err)) => Err(err),
                Err(_) => continue,
            };
            match attempt {
                Ok(conn) => return Ok(conn),
                Err(err) => {
                    tracing::debug!(error = %err, "no master from this Sentinel's answer");
                    last = err;
                }
            }
        }
        Err(last)
    }

    /// Connects to `host:port` and checks with `ROLE` that it is a master:
    /// a Sentinel that has not yet seen a failover names the old one.
    async fn master_at(
        &self,
        host: String,
        port: u16,
        config: &AsyncConnectionConfig,
    ) -> RedisResult<MultiplexedConnection> {
        let address = format!("{host}:{port}");
        let addr = if self.tls {
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host, port)
        };
        let mut conn = self
            .credentials
            .client(addr)?
            .get_multiplexed_async_connection_with_config(config)
            .await?;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
        match role.first().map(redis::from_redis_value_ref::<String>) {
            Some(Ok(role)) if role == "master" => Ok(conn),
            // Counted as a failed connection, like a refused one: the next
            // attempt asks the Sentinels again.
            _ => Err(RedisError::from((
                ErrorKind::Io,
                "the node Sentinel named is not a master (a failover in progress)",
                address,
            ))),
        }
    }
}

/// Asks one Sentinel for the master's address.
async fn ask(
    sentinel: &Client,
    master: &str,
    config: &AsyncConnectionConfig,
) -> RedisResult<(String, u16)> {
    let mut conn = sentinel
        .get_multiplexed_async_connection_with_config(config)
        .await?;
    let address: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(master)
        .query_async(&mut conn)
        .await?;
    address.ok_or_else(|| {
        RedisError::from((
            ErrorKind::MasterNameNotFoundBySentinel,
            "Sentinel does not monitor a master of that name",
            master.to_owned(),
        ))
    })
}
