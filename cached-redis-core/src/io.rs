//! The process's two background threads, and deadlines that hold on any
//! executor.
//!
//! A cached function may be called from a plain thread, from inside a
//! current-thread runtime that must not be blocked on, from a runtime built
//! without the I/O or time driver, or from a `#[tokio::test]` runtime that
//! ends with its test. So nothing the cache depends on runs on the caller's
//! executor:
//!
//! - the **I/O thread** makes and drives the Redis connections and runs the
//!   background work (writes behind the caller, purges). Callers await the
//!   connection's replies directly — a Redis hit costs the client's own
//!   hand-off to its driver and back, nothing more;
//! - the **timer thread** runs nothing but timers: every deadline a caller
//!   waits under. Background work on the I/O thread reports to the
//!   application's `tracing` subscriber and metrics recorder; if one of
//!   those blocks, the I/O thread stalls, but no caller's deadline does.

use std::future::Future;
use std::sync::{LazyLock, mpsc};
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::time::{Sleep, Timeout};

/// Both threads; `None` if either could not start.
static IO: LazyLock<Option<Io>> = LazyLock::new(|| {
    Io::start()
        .map_err(|err| tracing::error!(error = %err, "cannot start the cache's background threads; Redis is unused and waits are not bounded"))
        .ok()
});

/// The background threads, started on first use (building a runtime never starts them).
pub(crate) fn io() -> Option<&'static Io> {
    IO.as_ref()
}

pub(crate) struct Io {
    io: Handle,
    timer: Handle,
}

impl Io {
    fn start() -> std::io::Result<Io> {
        let io = thread("cached-redis-io", || {
            Builder::new_current_thread().enable_all().build()
        })?;
        let timer = thread("cached-redis-timer", || {
            Builder::new_current_thread().enable_time().build()
        })?;
        Ok(Io { io, timer })
    }

    /// Runs `future` on the I/O thread; nobody waits for it.
    pub(crate) fn spawn<F: Future<Output = ()> + Send + 'static>(&self, future: F) {
        drop(self.io.spawn(future));
    }

    /// A timer, usable from any executor.
    pub(crate) fn sleep(&self, duration: Duration) -> Sleep {
        let _context = self.timer.enter();
        tokio::time::sleep(duration)
    }

    /// `future`, bounded by `deadline` (an `Err` once it passes). Taken from
    /// the std clock, so a caller's paused tokio test clock cannot make it
    /// fire early or never.
    pub(crate) fn timeout<F: Future>(&self, deadline: Instant, future: F) -> Timeout<F> {
        let _context = self.timer.enter();
        tokio::time::timeout_at(deadline.into(), future)
    }
}

/// Starts a thread that builds a runtime with `build` and runs it for as
/// long as the process lives; returns the runtime's handle. The runtime is
/// built and dropped on its own thread only: dropping one inside a
/// caller's async context would panic.
fn thread(
    name: &str,
    build: impl FnOnce() -> std::io::Result<Runtime> + Send + 'static,
) -> std::io::Result<Handle> {
    let (handle_tx, handle_rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || match build() {
            Ok(runtime) => {
                let _ = handle_tx.send(Ok(runtime.handle().clone()));
                runtime.block_on(std::future::pending::<()>());
            }
            Err(err) => {
                let _ = handle_tx.send(Err(err));
            }
        })?;
    handle_rx
        .recv()
        .map_err(|_| std::io::Error::other("a cache thread exited during start-up"))?
}
