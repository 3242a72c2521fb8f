//! The configuration a command runs with: the runtime's, read from the
//! same environment variables, with the command line's overrides.

use std::time::Duration;

use cached_redis_core::Config;
use cached_redis_core::admin::Admin;

use crate::error::CliError;

/// What the command line may override.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub url: Option<String>,
    pub namespace: Option<String>,
    pub timeout: Duration,
}

/// Two readings of one environment: as the service's runtime sees it
/// (its deadlines are what `doctor` judges latency against), and as this
/// tool connects — with `--timeout` for every deadline, because a walk of
/// a large key space is not a cached call that must give up in 100 ms.
pub struct Context {
    pub runtime: Config,
    pub config: Config,
}

impl Context {
    pub fn from_env(overrides: &Overrides) -> Result<Context, CliError> {
        Context::from_lookup(overrides, |name| std::env::var(name).ok())
    }

    pub fn from_lookup(
        overrides: &Overrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Context, CliError> {
        let lookup = |name: &str| match name {
            "REDIS_URL" if overrides.url.is_some() => overrides.url.clone(),
            // `--url` names one node: the deployment it replaces goes too.
            "REDIS_CLUSTER_URLS" | "REDIS_SENTINEL_URLS" | "REDIS_SENTINEL_MASTER"
                if overrides.url.is_some() =>
            {
                None
            }
            "CACHE_NAMESPACE" if overrides.namespace.is_some() => overrides.namespace.clone(),
            _ => env(name),
        };
        let runtime = Config::from_lookup(lookup)?;
        let timeout = format!("{}ms", overrides.timeout.as_millis());
        let config = Config::from_lookup(|name| match name {
            "CACHE_REDIS_TIMEOUT" | "CACHE_REDIS_CONNECT_TIMEOUT" => Some(timeout.clone()),
            _ => lookup(name),
        })?;
        Ok(Context { runtime, config })
    }

    pub fn connect(&self) -> Result<Admin, CliError> {
        Ok(Admin::connect(&self.config).wait()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        Some(
            match name {
                "REDIS_URL" => "redis://10.0.0.1:6379",
                "REDIS_CLUSTER_URLS" => "redis://10.0.0.2:7000",
                "CACHE_NAMESPACE" => "shop",
                "CACHE_REDIS_TIMEOUT" => "100ms",
                _ => return None,
            }
            .to_owned(),
        )
    }

    #[test]
    fn the_command_line_wins_and_the_runtime_keeps_its_deadline() {
        let overrides = Overrides {
            url: Some("redis://127.0.0.1:7391".to_owned()),
            namespace: Some("meridian".to_owned()),
            timeout: Duration::from_secs(5),
        };
        let context = Context::from_lookup(&overrides, env).unwrap();
        assert_eq!(
            context.config.redis_target_redacted(),
            "redis://127.0.0.1:7391"
        );
        assert_eq!(context.config.namespace(), "meridian");
        assert_eq!(context.config.redis_timeout(), Duration::from_secs(5));
        assert_eq!(context.runtime.redis_timeout(), Duration::from_millis(100));
    }

    #[test]
    fn without_overrides_the_environment_decides() {
        let overrides = Overrides {
            timeout: Duration::from_secs(5),
            ..Overrides::default()
        };
        let context = Context::from_lookup(&overrides, env).unwrap();
        assert!(
            context
                .config
                .redis_target_redacted()
                .starts_with("the cluster of")
        );
        assert_eq!(context.config.namespace(), "shop");
    }
}
