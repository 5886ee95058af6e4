//! Request limits that keep slow or idle clients from holding the server: the header/idle
//! timeout, the connection cap, and the stall timeout that releases a response whose client
//! stopped reading (so it no longer pins its resource against eviction).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use embedded_server::{BlockingServer, Config};
use integration_tests::{get, seeded_bytes, wait_until, Origin, SlowReader, MIB};

fn server(origin: &Origin, adjust: impl FnOnce(&mut Config)) -> (BlockingServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("cache dir");
    let mut config = Config::new(dir.path());
    config.origins = vec![origin.origin_arg()];
    adjust(&mut config);
    (BlockingServer::start(config).expect("server starts"), dir)
}

/// `127.0.0.1:PORT` of a base URL.
fn addr_of(base: &str) -> String {
    base.trim_start_matches("http://")
        .split('/')
        .next()
        .expect("host:port")
        .to_string()
}

/// Reads until EOF or error; true if the peer closed the connection within the read timeout.
fn closed_by_peer(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let origin = Origin::start(&[]);
    let (srv, _dir) = server(&origin, |c| c.client_header_timeout = Duration::from_millis(500));
    let mut stream = TcpStream::connect(addr_of(&srv.base_url().expect("base"))).expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("partial head");
    assert!(
        closed_by_peer(&mut stream),
        "the server must drop a connection stuck in its headers"
    );
}

#[test]
fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let origin = Origin::start(&[]);
    let (srv, _dir) = server(&origin, |c| {
        c.max_connections = 2;
        c.client_header_timeout = Duration::from_secs(30);
    });
    let addr = addr_of(&srv.base_url().expect("base"));
    let mut held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(&addr).expect("connect")).collect();
    // Both slots are taken by idle connections: a third client is not served while they stay.
    let mut third = TcpStream::connect(&addr).expect("the kernel still accepts the TCP handshake");
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("request");
    third
        .set_read_timeout(Some(Duration::from_millis(700)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    let early = third.read(&mut buf);
    assert!(
        matches!(&early, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "a third connection must wait while the cap is reached: {early:?}"
    );
    // Freeing a slot lets it through.
    drop(held.pop());
    third.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut answer = Vec::new();
    third.read_to_end(&mut answer).expect("answer after a slot frees up");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[test]
fn a_client_that_stops_reading_is_released_after_the_stall_timeout() {
    let origin = Origin::start(&[]);
    origin.put_file("big.bin", &seeded_bytes(61, 24 * MIB));
    let (srv, _dir) = server(&origin, |c| c.client_stall_timeout = Duration::from_millis(500));
    let url = srv.stream_url(&format!("{}big.bin", origin.url)).expect("url");
    assert_eq!(get(&url).status, 200, "cache it first");
    let mut stalled = SlowReader::open(&url);
    assert_eq!(stalled.status, 200);
    wait_until(Duration::from_secs(10), "the stalled response is released", || {
        srv.stats().expect("stats").active_streams == 0
    });
    assert!(
        stalled.closed_by_server(Duration::from_secs(10)),
        "the stalled connection is closed"
    );
}
