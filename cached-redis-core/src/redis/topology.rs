//! Which Redis deployment a runtime talks to: one node (`REDIS_URL`), a
//! Redis Cluster (`REDIS_CLUSTER_URLS`), or a master found through
//! Sentinel (`REDIS_SENTINEL_URLS` + `REDIS_SENTINEL_MASTER`).

use std::fmt;

use crate::config::{ConfigError, redact_url};

/// Environment variable names, for errors.
pub(crate) const CLUSTER_URLS: &str = "REDIS_CLUSTER_URLS";
pub(crate) const SENTINEL_URLS: &str = "REDIS_SENTINEL_URLS";
pub(crate) const SENTINEL_MASTER: &str = "REDIS_SENTINEL_MASTER";

/// The deployment, as configured.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) enum Topology {
    /// One node at `Config::redis_url`.
    #[default]
    Single,
    /// A Redis Cluster, found through any of these seed nodes.
    Cluster { seeds: Vec<String> },
    /// The master Sentinel knows as `master`, asked of these Sentinels.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
}

impl Topology {
    /// Splits a comma-separated list of URLs, ignoring blanks.
    pub(crate) fn url_list(value: &str) -> Vec<String> {
        value
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The URLs connections are made from, with the setting that names
    /// them, for checking when the configuration is built.
    pub(crate) fn urls<'a>(
        &'a self,
        redis_url: &'a String,
        url_name: &'static str,
    ) -> Result<(&'a [String], &'static str), ConfigError> {
        match self {
            Topology::Single => Ok((std::slice::from_ref(redis_url), url_name)),
            Topology::Cluster { seeds } if seeds.is_empty() => Err(ConfigError::InvalidSetting {
                name: CLUSTER_URLS,
                expected: "at least one seed node URL",
            }),
            Topology::Cluster { seeds } => Ok((seeds, CLUSTER_URLS)),
            Topology::Sentinel { sentinels, .. } if sentinels.is_empty() => {
                Err(ConfigError::InvalidSetting {
                    name: SENTINEL_URLS,
                    expected: "at least one Sentinel URL",
                })
            }
            Topology::Sentinel { master, .. } if !is_master_name(master) => {
                Err(ConfigError::InvalidSetting {
                    name: SENTINEL_MASTER,
                    expected: "the master's name as Sentinel monitors it (no spaces)",
                })
            }
            Topology::Sentinel { sentinels, .. } => Ok((sentinels, SENTINEL_URLS)),
        }
    }
}

impl Topology {
    /// Where connections go, for people: passwords replaced by `***`.
    pub(crate) fn describe(&self, redis_url: &str) -> String {
        let redacted = |urls: &[String]| {
            urls.iter()
                .map(|url| redact_url(url))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Topology::Single => redact_url(redis_url),
            Topology::Cluster { seeds } => format!("the cluster of {}", redacted(seeds)),
            Topology::Sentinel { sentinels, master } => {
                format!("master '{master}' of Sentinel {}", redacted(sentinels))
            }
        }
    }
}

fn is_master_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(char::is_whitespace)
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |urls: &[String]| urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>();
        match self {
            Topology::Single => f.write_str("Single"),
            Topology::Cluster { seeds } => f
                .debug_struct("Cluster")
                .field("seeds", &redacted(seeds))
                .finish(),
            Topology::Sentinel { sentinels, master } => f
                .debug_struct("Sentinel")
                .field("sentinels", &redacted(sentinels))
                .field("master", master)
                .finish(),
        }
    }
}
