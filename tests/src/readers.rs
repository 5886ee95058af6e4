//! Clients that hold a response open while the test watches the server: [`BackgroundRead`] reads
//! on a thread and counts the bytes as they arrive; [`SlowReader`] keeps a tiny receive buffer
//! and does not read, so the server really waits on it.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::data::KIB;
use crate::http::{agent, ureq_head, Head, Resp};

/// A body being read on a background thread, with a live count of bytes received.
pub struct BackgroundRead {
    received: Arc<AtomicU64>,
    head: mpsc::Receiver<Result<Head, String>>,
    handle: JoinHandle<Result<Resp, String>>,
}

impl BackgroundRead {
    /// Starts `GET url` with `headers` on a new thread, reading the body in 16 KiB chunks.
    pub fn start(url: &str, headers: &[(&str, &str)]) -> BackgroundRead {
        let received = Arc::new(AtomicU64::new(0));
        let (tx, head) = mpsc::channel();
        let url = url.to_string();
        let headers: Vec<(String, String)> = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        let count = Arc::clone(&received);
        let handle = thread::spawn(move || {
            let mut req = agent().get(&url);
            for (n, v) in &headers {
                req = req.set(n, v);
            }
            let resp = match req.call() {
                Ok(r) => r,
                Err(ureq::Error::Status(_, r)) => r,
                Err(e) => {
                    let msg = format!("GET {url}: {e}");
                    let _ = tx.send(Err(msg.clone()));
                    return Err(msg);
                }
            };
            let (status, hdrs) = ureq_head(&resp);
            let _ = tx.send(Ok((status, hdrs.clone())));
            let mut reader = resp.into_reader();
            let mut body = Vec::new();
            let mut buf = vec![0u8; 16 * KIB];
            let mut body_error = None;
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        body.extend_from_slice(&buf[..n]);
                        count.fetch_add(n as u64, Ordering::SeqCst);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        body_error = Some(e.to_string());
                        break;
                    }
                }
            }
            Ok(Resp {
                status,
                headers: hdrs,
                body,
                body_error,
            })
        });
        BackgroundRead { received, head, handle }
    }

    /// Body bytes received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }

    /// Waits (bounded) for the response head: status and headers.
    #[track_caller]
    pub fn head(&self, timeout: Duration) -> Head {
        match self.head.recv_timeout(timeout) {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => panic!("background GET failed before the response head: {e}"),
            Err(_) => panic!("no response head within {timeout:?}"),
        }
    }

    /// Waits for the thread and returns the response (or the transport error before its head).
    pub fn join(self) -> Result<Resp, String> {
        self.handle.join().expect("reader thread panicked")
    }
}

/// A GET whose client keeps its receive buffer tiny (64 KiB, which also turns off the kernel's
/// buffer autotuning) and does not read: the server cannot park the body in socket buffers and
/// really waits on this client. Loopback autotuning can otherwise absorb tens of MiB.
pub struct SlowReader {
    stream: std::net::TcpStream,
    /// Status code of the response.
    pub status: u16,
    /// `Content-Length` of the response.
    pub content_length: u64,
    /// Body bytes received with the head.
    body: Vec<u8>,
}

impl SlowReader {
    /// Sends `GET url` and reads the response head (and whatever body bytes came with it).
    pub fn open(url: &str) -> SlowReader {
        let rest = url.strip_prefix("http://").expect("http URL");
        let (host, path) = rest.split_once('/').expect("URL with a path");
        let addr: std::net::SocketAddr = host.parse().expect("IP:PORT host");
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        socket.set_recv_buffer_size(64 * 1024).expect("SO_RCVBUF");
        socket.connect(&addr.into()).expect("connect");
        let mut stream: std::net::TcpStream = socket.into();
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        write!(stream, "GET /{path} HTTP/1.1\r\nHost: {host}\r\n\r\n").expect("send request");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            let n = stream.read(&mut chunk).expect("read head");
            assert!(n > 0, "connection closed before the response head");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let content_length = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .expect("Content-Length");
        SlowReader {
            stream,
            status,
            content_length,
            body: buf[head_end..].to_vec(),
        }
    }

    /// Reads the rest of the body and returns all of it.
    pub fn read_rest(mut self) -> Vec<u8> {
        let want = self.content_length as usize;
        let mut chunk = vec![0u8; 65536];
        while self.body.len() < want {
            let n = self.stream.read(&mut chunk).expect("read body");
            assert!(
                n > 0,
                "connection closed after {} of {want} body bytes",
                self.body.len()
            );
            self.body.extend_from_slice(&chunk[..n]);
        }
        self.body
    }

    /// Reads and discards until the server closes the connection; false if it stays open
    /// (no EOF, no error) for `timeout`.
    pub fn closed_by_server(&mut self, timeout: Duration) -> bool {
        self.stream.set_read_timeout(Some(timeout)).expect("timeout");
        let mut chunk = vec![0u8; 65536];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return false
                }
                Err(_) => return true,
            }
        }
    }
}
