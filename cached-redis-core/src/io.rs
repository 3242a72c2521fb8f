//! The process's one background thread, and deadlines that hold on any executor.
//!
//! A cached function may be called from a plain thread, from inside a
//! current-thread runtime that must not be blocked on, from a runtime built
//! without the I/O or time driver, or from a `#[tokio::test]` runtime that
//! ends with its test. So nothing the cache depends on runs on the caller's
//! executor: Redis connections are made and driven here, background writes
//! run here, and every deadline is a timer of this thread's runtime. Callers
//! await those directly — a Redis hit costs the client's own hand-off to the
//! connection's driver and back, nothing more.

use std::future::Future;
use std::sync::{LazyLock, mpsc};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::time::Timeout;

/// The background thread's runtime; `None` if the thread could not start.
static IO: LazyLock<Option<Io>> = LazyLock::new(|| {
    Io::start()
        .map_err(|err| tracing::error!(error = %err, "cannot start the cache's I/O thread; Redis is unused and waits are not bounded"))
        .ok()
});

/// The background thread, started on first use (building a runtime never starts it).
pub(crate) fn io() -> Option<&'static Io> {
    IO.as_ref()
}

pub(crate) struct Io {
    handle: Handle,
}

impl Io {
    fn start() -> std::io::Result<Io> {
        let (handle_tx, handle_rx) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("cached-redis-io".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = handle_tx.send(Err(err));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(runtime.handle().clone()));
                // Lives as long as the process: connections and writes of
                // every `Runtime` run here.
                runtime.block_on(std::future::pending::<()>());
            })?;
        let handle = handle_rx
            .recv()
            .map_err(|_| std::io::Error::other("the cache I/O thread exited during start-up"))??;
        Ok(Io { handle })
    }

    /// Runs `future` on the background thread; nobody waits for it.
    pub(crate) fn spawn<F: Future<Output = ()> + Send + 'static>(&self, future: F) {
        drop(self.handle.spawn(future));
    }

    /// A timer of the background thread, usable from any executor.
    pub(crate) fn sleep(&self, duration: Duration) -> tokio::time::Sleep {
        let _context = self.handle.enter();
        tokio::time::sleep(duration)
    }

    /// `future`, bounded by `deadline` (an `Err` once it passes). The timer
    /// is the background thread's, so this holds whatever executor the
    /// caller runs on; taken from the std clock, so a caller's paused tokio
    /// test clock cannot make it fire early or never.
    pub(crate) fn timeout<F: Future>(&self, deadline: Instant, future: F) -> Timeout<F> {
        let _context = self.handle.enter();
        tokio::time::timeout_at(deadline.into(), future)
    }
}
