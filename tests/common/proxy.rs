//! A TCP proxy in front of an API server that answers slowly, or not at all: every chunk the
//! server sends is held for a delay (or until the proxy is told to let it through). TLS passes
//! through untouched, so the client still verifies the real server.

use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

/// Held: nothing passes until the delay is set to something else.
const HANG: u64 = u64::MAX;

pub struct SlowProxy {
    pub port: u16,
    delay_ms: Arc<AtomicU64>,
}

impl SlowProxy {
    /// A proxy to `127.0.0.1:target` that holds every answer until told otherwise.
    pub fn hanging(target: u16) -> SlowProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let delay_ms = Arc::new(AtomicU64::new(HANG));
        let delay = delay_ms.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let (client_in, server_out) = (client.try_clone(), server.try_clone());
                let (Ok(client_in), Ok(server_out)) = (client_in, server_out) else {
                    continue;
                };
                std::thread::spawn(move || pump(client_in, server_out, None));
                let delay = delay.clone();
                std::thread::spawn(move || pump(server, client, Some(delay)));
            }
        });
        SlowProxy { port, delay_ms }
    }

    /// From now on every chunk of every answer waits `delay`.
    pub fn slow(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(HANG - 1);
        self.delay_ms.store(ms, Ordering::SeqCst);
    }
}

/// Copies `from` to `to`, each chunk after the current delay.
fn pump(mut from: TcpStream, mut to: TcpStream, delay: Option<Arc<AtomicU64>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(delay) = &delay {
            while delay.load(Ordering::SeqCst) == HANG {
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_millis(delay.load(Ordering::SeqCst)));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}
