//! Fake TCP endpoints: one that hangs up at once and one that never answers.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How long the background thread sleeps when no connection is pending.
/// Short, because a client waiting on the recorder should see its connection
/// closed promptly.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// A loopback TCP listener that accepts every connection, counts it and
/// closes it immediately.
///
/// Point code at [`url`](Self::url) and check [`connections`](Self::connections)
/// to prove that a code path never even tried to connect to Redis. A client
/// that does connect sees the connection closed before any reply.
///
/// The background thread stops when the recorder is dropped.
pub struct ConnectionRecorder {
    acceptor: Acceptor,
}

impl ConnectionRecorder {
    /// Starts listening on a free `127.0.0.1` port.
    pub fn start() -> Self {
        Self {
            acceptor: Acceptor::start(false),
        }
    }

    /// The port the recorder listens on.
    pub fn port(&self) -> u16 {
        self.acceptor.port
    }

    /// `redis://127.0.0.1:PORT/` for this recorder.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.acceptor.port)
    }

    /// How many connections have been made to the recorder so far.
    ///
    /// Any connection whose `connect` has returned before this call is
    /// counted, even if the background thread has not picked it up yet.
    pub fn connections(&self) -> usize {
        self.acceptor.count()
    }
}

/// A loopback TCP listener that accepts connections and never reads from or
/// writes to them.
///
/// Every accepted socket stays open until the blackhole is dropped, so a
/// client talking to it waits until its own timeout fires: use it to test
/// connect, read and write timeouts.
pub struct Blackhole {
    acceptor: Acceptor,
}

impl Blackhole {
    /// Starts listening on a free `127.0.0.1` port.
    pub fn start() -> Self {
        Self {
            acceptor: Acceptor::start(true),
        }
    }

    /// The port the blackhole listens on.
    pub fn port(&self) -> u16 {
        self.acceptor.port
    }

    /// `redis://127.0.0.1:PORT/` for this blackhole.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.acceptor.port)
    }

    /// How many connections have been accepted so far.
    ///
    /// Any connection whose `connect` has returned before this call is
    /// counted, even if the background thread has not picked it up yet.
    pub fn accepted(&self) -> usize {
        self.acceptor.count()
    }
}

/// What happens to accepted connections, shared between the background
/// thread and the owner.
struct Sink {
    count: AtomicUsize,
    /// `Some` keeps sockets open (blackhole); `None` drops, i.e. closes, them
    /// at once (recorder).
    kept: Option<Mutex<Vec<TcpStream>>>,
}

impl Sink {
    fn take(&self, stream: TcpStream) {
        self.count.fetch_add(1, Ordering::SeqCst);
        if let Some(kept) = &self.kept {
            // A poisoned lock only means another holder panicked; the vector
            // of sockets is still fine to push to.
            kept.lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(stream);
        }
    }
}

/// A nonblocking listener polled by a background thread.
///
/// Nonblocking, so that dropping needs only a flag rather than a wake-up
/// connection (which would be counted), and so that the counting methods can
/// drain pending connections themselves and never under-count a connection
/// that has already completed its handshake.
struct Acceptor {
    port: u16,
    listener: Arc<TcpListener>,
    sink: Arc<Sink>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    fn start(keep_connections: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind a loopback listener: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("cannot make a loopback listener nonblocking: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("cannot read the address of a loopback listener: {e}"))
            .port();
        let listener = Arc::new(listener);
        let sink = Arc::new(Sink {
            count: AtomicUsize::new(0),
            kept: keep_connections.then(|| Mutex::new(Vec::new())),
        });
        let stop = Arc::new(AtomicBool::new(false));

        let thread = {
            let (listener, sink, stop) = (listener.clone(), sink.clone(), stop.clone());
            thread::Builder::new()
                .name(format!("test-listener-{port}"))
                .spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        drain(&listener, &sink);
                        thread::sleep(POLL_INTERVAL);
                    }
                })
                .unwrap_or_else(|e| panic!("cannot spawn the listener thread: {e}"))
        };

        Self {
            port,
            listener,
            sink,
            stop,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        drain(&self.listener, &self.sink);
        self.sink.count.load(Ordering::SeqCst)
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            // The thread body cannot panic except on allocation failure;
            // nothing useful to do with that in a destructor.
            let _ = thread.join();
        }
    }
}

/// Accepts every connection that is pending right now.
fn drain(listener: &TcpListener, sink: &Sink) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => sink.take(stream),
            // A client that gave up before being accepted is not worth
            // counting, and must not stop us from accepting the others.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                ) => {}
            // WouldBlock means nothing is pending. Anything else (e.g. out of
            // file descriptors) is retried on the next poll.
            Err(_) => return,
        }
    }
}
