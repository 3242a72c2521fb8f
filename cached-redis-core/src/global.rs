//! The process-wide default runtime used by `#[redis_cached]` functions
//! that do not name one.

use std::sync::OnceLock;

use crate::config::{Config, ConfigError};
use crate::runtime::Runtime;

static DEFAULT: OnceLock<Runtime> = OnceLock::new();

/// The process-wide runtime, built from the environment on first use.
///
/// A variable with an invalid value does not stop the program: the error is
/// logged and the embedded default (Redis off, memory cache on) serves, since
/// a cache must never take an application down. Call [`init_from_env`] at
/// start-up to fail fast instead.
///
/// ```
/// let runtime = cached_redis_core::runtime();
/// println!("redis enabled: {}", runtime.config().redis_enabled());
/// ```
pub fn runtime() -> &'static Runtime {
    DEFAULT.get_or_init(|| {
        let config = Config::from_env().unwrap_or_else(|err| {
            tracing::error!(error = %err, "invalid cache configuration; using the embedded default (Redis off)");
            Config::default()
        });
        Runtime::new(config)
    })
}

/// Builds the process-wide runtime from the environment now, reporting an
/// invalid variable instead of logging it.
///
/// Returns [`InitError::AlreadyInitialized`] if a default runtime already exists.
///
/// ```
/// fn main() -> Result<(), cached_redis_core::InitError> {
///     cached_redis_core::init_from_env()?;
///     Ok(())
/// }
/// ```
pub fn init_from_env() -> Result<&'static Runtime, InitError> {
    install(Runtime::new(Config::from_env()?))
}

/// Makes `runtime` the process-wide default. Fails if one is already in use.
///
/// ```
/// use cached_redis_core::{Config, Runtime, install};
///
/// let config = Config::builder().namespace("tests").build()?;
/// install(Runtime::new(config))?;
/// assert_eq!(cached_redis_core::runtime().config().namespace(), "tests");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn install(runtime: Runtime) -> Result<&'static Runtime, InitError> {
    let mut fresh = Some(runtime);
    let installed = DEFAULT.get_or_init(|| {
        fresh
            .take()
            .unwrap_or_else(|| Runtime::new(Config::default()))
    });
    if fresh.is_some() {
        Err(InitError::AlreadyInitialized)
    } else {
        Ok(installed)
    }
}

/// Why the default runtime could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The environment holds an invalid value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A default runtime was already built or installed.
    #[error("a default cache runtime is already in use")]
    AlreadyInitialized,
}
