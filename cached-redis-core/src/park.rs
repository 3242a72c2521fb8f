//! Drives a future to completion on the calling thread, for sync callers.
//!
//! Sync and async callers share one implementation of every operation: the
//! sync entry points run the async one here. That is safe anywhere — a
//! plain thread, inside a current-thread runtime where `block_on` would
//! panic — because nothing the cache awaits needs the caller's executor:
//! Redis I/O and timers complete on the cache's own threads (see `io`), which
//! wakes this one.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

thread_local! {
    // One waker per thread, made once: parking costs no allocation per call.
    static WAKER: Waker = Waker::from(Arc::new(Unpark(thread::current())));
}

/// Polls `future` until it is ready, parking the thread in between.
#[inline]
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = waker();
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        // A wake before this point leaves the token set: no lost wake-up.
        // A spurious return only costs one more poll.
        thread::park();
    }
}

/// [`block_on`], giving up at `deadline`: `None` then, and the future is
/// dropped where it stood.
pub(crate) fn block_on_until<F: Future>(future: F, deadline: Instant) -> Option<F::Output> {
    let mut future = pin!(future);
    let waker = waker();
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        thread::park_timeout(left);
    }
}

fn waker() -> Waker {
    // During thread teardown the thread-local may be gone: make one then.
    WAKER
        .try_with(Waker::clone)
        .unwrap_or_else(|_| Waker::from(Arc::new(Unpark(thread::current()))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ready_futures_complete_without_parking() {
        assert_eq!(block_on(async { 7 }), 7);
    }

    #[test]
    fn wakes_from_another_thread() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sender = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            tx.send(42).unwrap();
        });
        assert_eq!(block_on(rx), Ok(42));
        sender.join().unwrap();
    }

    #[test]
    fn gives_up_at_the_deadline() {
        let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
        let started = Instant::now();
        let deadline = started + Duration::from_millis(30);
        assert_eq!(block_on_until(rx, deadline), None);
        assert!(Instant::now() >= deadline);
        assert_eq!(block_on_until(async { 3 }, deadline), Some(3));
    }

    #[test]
    fn works_inside_a_current_thread_runtime() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let value = runtime.block_on(async {
            let (tx, rx) = tokio::sync::oneshot::channel();
            thread::spawn(move || tx.send(5).unwrap());
            block_on(rx)
        });
        assert_eq!(value, Ok(5));
    }
}
