//! A TCP relay a test can cut: a server seen through it goes away (every connection dropped,
//! new ones closed at once) and comes back, while the real server keeps running for the other
//! tests. An outage of the records' PostgreSQL, without stopping PostgreSQL.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A relay from a loopback port to `target`.
pub struct Relay {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    /// Listens on 127.0.0.1 (an ephemeral port) and relays to `target`.
    pub fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("relay port");
        let relay = Relay {
            addr: listener.local_addr().expect("relay addr"),
            up: Arc::new(AtomicBool::new(true)),
            stop: Arc::new(AtomicBool::new(false)),
            open: Arc::default(),
        };
        let (up, stop, open) = (relay.up.clone(), relay.stop.clone(), relay.open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                if !up.load(Ordering::SeqCst) {
                    continue; // dropped: the client reads an EOF at once
                }
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let mut held = open.lock().unwrap_or_else(PoisonError::into_inner);
                for s in [&client, &server] {
                    if let Ok(c) = s.try_clone() {
                        held.push(c);
                    }
                }
                pump(&client, &server);
                pump(&server, &client);
            }
        });
        relay
    }

    /// Where to connect instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The outage: every relayed connection is cut, and new ones are closed at once.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let mut held = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        for s in held.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// The end of the outage: new connections are relayed again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
    }
}

/// Copies `from` to `to` on a thread of its own until either side closes.
fn pump(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
