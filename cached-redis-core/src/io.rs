//! The runtime's own I/O thread.
//!
//! Redis connections are tied to the tokio runtime that created them, and a
//! cached function may be called from any context: a plain thread, a
//! current-thread runtime that must not be blocked on, another executor, or
//! a `#[tokio::test]` runtime that ends with the test. Running every Redis
//! operation on one long-lived thread of our own makes the connection
//! outlive all of them and lets sync callers wait without `block_on`.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::{LazyLock, mpsc};
use std::task::Poll;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

pub(crate) struct IoThread {
    handle: Handle,
    // Dropping the sender ends the thread's `block_on`.
    _stop: oneshot::Sender<()>,
}

impl IoThread {
    pub(crate) fn start(name: &str) -> std::io::Result<IoThread> {
        let (handle_tx, handle_rx) = mpsc::sync_channel(1);
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(name.into())
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
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })?;
        let handle = handle_rx
            .recv()
            .map_err(|_| std::io::Error::other("the cache I/O thread exited during start-up"))??;
        Ok(IoThread {
            handle,
            _stop: stop,
        })
    }

    /// A timer of this thread's runtime, usable from any executor.
    pub(crate) fn sleep(&self, duration: Duration) -> tokio::time::Sleep {
        let _context = self.handle.enter();
        tokio::time::sleep(duration)
    }

    /// Runs `future` on the I/O thread and awaits it from any executor.
    pub(crate) async fn run<F>(&self, future: F) -> Option<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future).await.ok()
    }

    /// Runs `future` on the I/O thread, blocking this thread at most `wait`.
    pub(crate) fn run_blocking<F>(&self, future: F, wait: Duration) -> Option<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv_timeout(wait).ok()
    }

    /// Starts `future` on the I/O thread without waiting for it.
    pub(crate) fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(self.handle.spawn(future));
    }
}

/// A thread of its own whose only job is to fire deadlines for async
/// callers, so a deadline holds whatever executor the caller runs on and
/// however busy the runtime's I/O thread is.
static TIMER: LazyLock<Option<IoThread>> = LazyLock::new(|| {
    IoThread::start("cached-redis-timer")
        .map_err(|err| tracing::error!(error = %err, "cannot start the cache timer thread; waits are unbounded"))
        .ok()
});

/// Awaits `future` for at most `limit`; `None` if the deadline came first.
pub(crate) async fn within<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    let Some(timer) = TIMER.as_ref() else {
        return Some(future.await);
    };
    let mut future = pin!(future);
    let mut deadline = pin!(timer.sleep(limit));
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        deadline.as_mut().poll(cx).map(|()| None)
    })
    .await
}
