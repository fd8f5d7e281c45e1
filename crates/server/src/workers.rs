//! The worker threads, each accepting its own connections: no accept thread hands connections
//! over (actix-server's design cost 1.7 context switches per handshake against nginx's 0.6).
//!
//! Every worker has its own listening socket on the same port (`SO_REUSEPORT`), so the kernel
//! spreads connections over them and each worker's event loop accepts and serves in place.
//! `SO_REUSEPORT` would let a second copy of this server join the port unseen; a lock (an
//! abstract Unix socket named after the port, gone with the process) makes it fail as a
//! second bind always did. (By port, not address: `0.0.0.0:P` and `127.0.0.1:P` may both be
//! bound under `SO_REUSEPORT`, and one would take the other's loopback clients.) Programs that do not set `SO_REUSEPORT` get "address in use" anyway.
//!
//! [`Serving`] and [`Handle`] keep actix-server's shape: await the one to serve, stop with the
//! other, gracefully (in-flight requests finish, up to the shutdown timeout) or at once.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_service::boxed::{BoxService, BoxServiceFactory};
use actix_service::{Service, ServiceFactory};
use actix_web::rt::net::TcpStream;
use tokio::sync::{watch, Semaphore};

/// A connection pipeline, errors dropped (each connection logs and counts its own).
pub(crate) type Pipeline = BoxServiceFactory<(), TcpStream, (), (), ()>;

/// Builds a worker's pipeline, once per worker thread (actix services are thread-local).
pub(crate) type MakePipeline = Arc<dyn Fn() -> Pipeline + Send + Sync>;

/// Boxes a pipeline, its errors dropped.
pub(crate) fn pipeline<F>(factory: F) -> Pipeline
where
    F: ServiceFactory<TcpStream, Config = (), Response = (), InitError = ()> + 'static,
    F::Service: 'static,
    F::Error: 'static,
{
    actix_service::boxed::factory(actix_service::ServiceFactoryExt::map_err(factory, |_| ()))
}

/// One port and what serves it: `sockets[i]` is worker i's (a port served by worker 0 alone
/// has one socket).
pub(crate) struct Port {
    /// The listening sockets, one per worker that serves the port.
    pub sockets: Vec<std::net::TcpListener>,
    /// The pipeline each of those workers builds.
    pub make: MakePipeline,
}

/// What the workers are asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    /// Stop accepting; let connections end (keep-alive ones are closed after their answer).
    Graceful,
    /// Stop now.
    Now,
}

/// A signal that fires when the workers are asked to stop, for the HTTP layer's graceful
/// shutdown (it closes keep-alive connections after the answer in flight).
#[derive(Clone)]
pub(crate) struct StopSignal(watch::Receiver<State>);

impl StopSignal {
    /// Resolves once a stop was asked for.
    pub async fn stopping(mut self) {
        let _ = self.0.wait_for(|s| *s != State::Running).await;
    }
}

/// The stop switch, made before the workers so their pipelines can watch it.
pub(crate) struct Switch(watch::Sender<State>);

impl Switch {
    /// A switch at "running".
    pub fn new() -> Switch {
        Switch(watch::channel(State::Running).0)
    }

    /// What the HTTP layer waits on.
    pub fn signal(&self) -> StopSignal {
        StopSignal(self.0.subscribe())
    }
}

/// Stops the workers; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Handle {
    state: Arc<watch::Sender<State>>,
    alive: watch::Receiver<usize>,
}

impl Handle {
    /// Asks every worker to stop (`graceful`: in-flight connections finish first, up to the
    /// shutdown timeout); the future resolves when they all have.
    pub fn stop(&self, graceful: bool) -> impl Future<Output = ()> + Send + 'static {
        let want = if graceful {
            State::Graceful
        } else {
            State::Now
        };
        // A forced stop may follow a graceful one, never the reverse.
        self.state.send_if_modified(|s| {
            let changes = *s == State::Running || want == State::Now && *s != State::Now;
            if changes {
                *s = want;
            }
            changes
        });
        let mut alive = self.alive.clone();
        async move {
            let _ = alive.wait_for(|n| *n == 0).await;
        }
    }
}

/// The running workers: await it to serve until they stop; [`Serving::handle`] stops them.
pub struct Serving {
    handle: Handle,
    done: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Serving {
    /// A handle that stops the workers.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }
}

impl Future for Serving {
    type Output = std::io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.done.as_mut().poll(cx).map(Ok)
    }
}

/// How the workers run.
pub(crate) struct Settings {
    /// Worker threads.
    pub workers: usize,
    /// Connections each worker serves at once; past it, it stops accepting until one ends.
    pub max_connections: usize,
    /// How long a graceful stop waits for connections to end.
    pub shutdown_timeout: Duration,
}

/// Starts `settings.workers` threads serving `ports`; returns once each has built its
/// pipelines (an error if one could not). `lock` is held until the last worker ends.
pub(crate) fn start(
    settings: &Settings,
    ports: Vec<Port>,
    lock: PortLock,
    switch: Switch,
) -> std::io::Result<Serving> {
    let state_rx = switch.signal().0;
    let state = switch.0;
    let (alive_tx, alive) = watch::channel(settings.workers);
    let alive_tx = Arc::new(alive_tx);
    let lock = Arc::new(lock);
    let mut per_worker: Vec<Vec<(std::net::TcpListener, MakePipeline)>> =
        (0..settings.workers).map(|_| Vec::new()).collect();
    for port in ports {
        for (i, socket) in port.sockets.into_iter().enumerate() {
            per_worker[i].push((socket, port.make.clone()));
        }
    }
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    for (i, ports) in per_worker.into_iter().enumerate() {
        let worker = Worker {
            ports,
            state: state_rx.clone(),
            max_connections: settings.max_connections.max(1),
            shutdown_timeout: settings.shutdown_timeout,
            alive: Alive(alive_tx.clone(), lock.clone()),
        };
        let ready = ready_tx.clone();
        std::thread::Builder::new()
            .name(format!("https-worker-{i}"))
            .spawn(move || worker.run(ready))?;
    }
    drop(ready_tx);
    let handle = Handle {
        state: Arc::new(state),
        alive: alive.clone(),
    };
    for _ in 0..settings.workers {
        if let Err(e) = ready_rx.recv().unwrap_or_else(|_| Err(worker_died())) {
            drop(handle.stop(false));
            return Err(e);
        }
    }
    let mut alive = alive;
    let done = Box::pin(async move {
        let _ = alive.wait_for(|n| *n == 0).await;
    });
    Ok(Serving { handle, done })
}

fn worker_died() -> std::io::Error {
    std::io::Error::other("a worker thread ended while starting")
}

/// Counts a worker out when its thread ends, however it ends.
struct Alive(Arc<watch::Sender<usize>>, #[allow(dead_code)] Arc<PortLock>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// One worker thread: its own actix runtime, its sockets, its connections.
struct Worker {
    ports: Vec<(std::net::TcpListener, MakePipeline)>,
    state: watch::Receiver<State>,
    max_connections: usize,
    shutdown_timeout: Duration,
    alive: Alive,
}

impl Worker {
    fn run(self, ready: std::sync::mpsc::Sender<std::io::Result<()>>) {
        let Worker {
            ports,
            mut state,
            max_connections,
            shutdown_timeout,
            alive,
        } = self;
        actix_web::rt::System::new().block_on(async move {
            let slots = Arc::new(Semaphore::new(max_connections));
            let mut loops = Vec::new();
            for (socket, make) in ports {
                let accepting = make().new_service(()).await.map_err(|()| {
                    std::io::Error::other("a worker could not build its connection pipeline")
                });
                let listener = socket
                    .set_nonblocking(true)
                    .and_then(|()| actix_web::rt::net::TcpListener::from_std(socket));
                match (accepting, listener) {
                    (Ok(service), Ok(listener)) => loops.push(actix_web::rt::spawn(accept(
                        listener,
                        std::rc::Rc::new(service),
                        slots.clone(),
                    ))),
                    (Err(e), _) | (_, Err(e)) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                }
            }
            let _ = ready.send(Ok(()));
            let asked = state
                .wait_for(|s| *s != State::Running)
                .await
                .map_or(State::Now, |s| *s);
            // Closing the sockets: the kernel sends what it still queued for them elsewhere
            // or resets it.
            loops.iter().for_each(|l| l.abort());
            if asked == State::Graceful {
                let all_done = async {
                    let n = u32::try_from(max_connections).unwrap_or(u32::MAX);
                    let _ = slots.acquire_many(n).await;
                };
                let forced = async {
                    let _ = state.wait_for(|s| *s == State::Now).await;
                };
                tokio::select! {
                    () = all_done => {}
                    () = forced => {}
                    () = tokio::time::sleep(shutdown_timeout) => {}
                }
            }
            drop(alive);
        });
    }
}

/// Accepts connections on one socket and serves each on this worker, within its slots.
async fn accept(
    listener: actix_web::rt::net::TcpListener,
    service: std::rc::Rc<BoxService<TcpStream, (), ()>>,
    slots: Arc<Semaphore>,
) {
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                pause_after(&e).await;
                continue;
            }
        };
        // Small answers leave at once rather than waiting for the client's ACK (Nagle).
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        actix_web::rt::spawn(async move {
            if std::future::poll_fn(|cx| service.poll_ready(cx))
                .await
                .is_ok()
            {
                let _ = service.call(stream).await;
            }
            drop(slot);
        });
    }
}

/// After a failed accept: at once when only that connection was lost, else (out of file
/// descriptors, say) a pause, as actix-server and nginx make.
async fn pause_after(e: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted};
    if !matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted) {
        tracing::warn!(error = %e, "accept failed; pausing 100 ms");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Held while this process serves a port: another copy of the server binding it fails.
#[derive(Debug)]
pub(crate) struct PortLock(#[allow(dead_code)] std::os::unix::net::UnixListener);

impl PortLock {
    /// Takes the lock for `addr`'s (real) port, or says who holds it.
    fn take(addr: SocketAddr) -> std::io::Result<PortLock> {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("rust-https-server tcp port {}", addr.port());
        let at = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        match std::os::unix::net::UnixListener::bind_addr(&at) {
            Ok(l) => Ok(PortLock(l)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!(
                    "port {} is already served by another copy of this server",
                    addr.port()
                ),
            )),
            Err(e) => Err(e),
        }
    }
}

/// `n` listening sockets on `addr` (the first one picks the port when it is 0), with
/// `SO_REUSEADDR` and `SO_REUSEPORT`, and the lock that keeps other copies of us off it.
pub(crate) fn listen_shared(
    addr: SocketAddr,
    n: usize,
    backlog: u32,
) -> std::io::Result<(Vec<std::net::TcpListener>, PortLock)> {
    let first = socket(addr, backlog, true)?;
    let real = first.local_addr()?;
    let lock = PortLock::take(real)?;
    let mut sockets = vec![first];
    for _ in 1..n.max(1) {
        sockets.push(socket(real, backlog, true)?);
    }
    Ok((sockets, lock))
}

/// One listening socket with `SO_REUSEADDR` (a restart need not wait for TIME_WAIT to pass)
/// and, when `shared`, `SO_REUSEPORT`.
pub(crate) fn socket(
    addr: SocketAddr,
    backlog: u32,
    shared: bool,
) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if shared {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_copy_on_the_same_port_fails_loudly() {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let (sockets, _lock) = listen_shared(any, 2, 16).expect("first");
        let port = sockets[0].local_addr().expect("addr");
        assert_eq!(sockets[1].local_addr().expect("addr"), port);
        let second = listen_shared(port, 2, 16).expect_err("the port is taken");
        assert_eq!(second.kind(), std::io::ErrorKind::AddrInUse);
        assert!(second.to_string().contains("another copy"), "{second}");
        // A program that does not share ports is refused by the kernel, as before.
        let plain = socket(port, 16, false).expect_err("the port is taken");
        assert_eq!(plain.kind(), std::io::ErrorKind::AddrInUse);
    }
}
