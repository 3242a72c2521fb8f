//! Finding the master through Sentinel, on every connection attempt.
//!
//! The address is never cached past a connection: a connection that drops,
//! refuses, times out or answers `READONLY` is discarded (see `Redis::run`),
//! and the next attempt asks Sentinel again — after a failover that is the
//! promoted replica. The address Sentinel gives is checked with `ROLE`
//! before it is used, so a Sentinel that has not yet seen the failover
//! cannot point writes at the demoted master.

use std::sync::atomic::{AtomicUsize, Ordering};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, ErrorKind, RedisError, RedisResult};

use super::Credentials;

pub(super) struct Sentinel {
    /// One client per Sentinel, authenticating as its URL says.
    sentinels: Vec<Client>,
    master: String,
    /// How the master is reached once found.
    credentials: Credentials,
    tls: bool,
    /// The Sentinel asked first: the last one that answered.
    first: AtomicUsize,
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
            .map(|url| own_auth.client(url))
            .collect::<RedisResult<Vec<_>>>()?;
        let tls = sentinels.iter().any(|client| {
            matches!(
                client.get_connection_info().addr(),
                ConnectionAddr::TcpTls { .. }
            )
        });
        Ok(Sentinel {
            sentinels,
            master: master.to_owned(),
            credentials: credentials.clone(),
            tls,
            first: AtomicUsize::new(0),
        })
    }

    /// Asks the Sentinels in turn where the master is, connects to it, and
    /// checks it is a master.
    pub(super) async fn connect(
        &self,
        config: &AsyncConnectionConfig,
    ) -> RedisResult<MultiplexedConnection> {
        let count = self.sentinels.len();
        let first = self.first.load(Ordering::Relaxed);
        let mut last = None;
        for index in (0..count).map(|i| (first + i) % count) {
            match self.ask(&self.sentinels[index], config).await {
                Ok((host, port)) => {
                    self.first.store(index, Ordering::Relaxed);
                    return self.master_at(&host, port, config).await;
                }
                Err(err) => {
                    tracing::debug!(error = %err, sentinel = index, "sentinel did not answer");
                    last = Some(err);
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            RedisError::from((ErrorKind::EmptySentinelList, "no Sentinel configured"))
        }))
    }

    async fn ask(
        &self,
        sentinel: &Client,
        config: &AsyncConnectionConfig,
    ) -> RedisResult<(String, u16)> {
        let mut conn = sentinel
            .get_multiplexed_async_connection_with_config(config)
            .await?;
        let address: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.master)
            .query_async(&mut conn)
            .await?;
        address.ok_or_else(|| {
            RedisError::from((
                ErrorKind::MasterNameNotFoundBySentinel,
                "Sentinel does not monitor a master of that name",
                self.master.clone(),
            ))
        })
    }

    async fn master_at(
        &self,
        host: &str,
        port: u16,
        config: &AsyncConnectionConfig,
    ) -> RedisResult<MultiplexedConnection> {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let url = if host.contains(':') {
            format!("{scheme}://[{host}]:{port}")
        } else {
            format!("{scheme}://{host}:{port}")
        };
        let mut conn = self
            .credentials
            .client(&url)?
            .get_multiplexed_async_connection_with_config(config)
            .await?;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
        match role.first().map(redis::from_redis_value_ref::<String>) {
            Some(Ok(role)) if role == "master" => Ok(conn),
            _ => Err(RedisError::from((
                ErrorKind::Io,
                "the node Sentinel named is not a master (a failover in progress)",
                format!("{host}:{port}"),
            ))),
        }
    }
}
