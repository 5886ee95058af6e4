//! The origin over real sockets: files with ranges and validators, each fault, the throttle and
//! the control API, as a client on the wire sees them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Faults, Origin};

/// A running origin over a temp dir holding `data.bin` (1000 patterned bytes).
struct Running {
    addr: SocketAddr,
    origin: Arc<Origin>,
    data: Vec<u8>,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(faults: Faults) -> Running {
    let dir = tempfile::tempdir().expect("temp dir");
    let data: Vec<u8> = (0..1000_u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.path().join("data.bin"), &data).expect("fixture");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let origin = Origin::new(dir.path().to_path_buf(), faults);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(Arc::clone(&origin).run(listener, async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        origin,
        data,
        _dir: dir,
        _stop: stop,
    }
}

struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// One request on a fresh connection with `Connection: close`; the body is whatever arrived
/// before the connection ended (chunked bodies are decoded as far as they go).
async fn send(addr: SocketAddr, method: &str, path: &str, extra: &[(&str, &str)], body: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (name, value) in extra {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await; // an aborted response may end in a reset
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.get("transfer-encoding").is_some_and(|v| v == "chunked") {
        body = dechunk(&body);
    }
    Reply { status, headers, body }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap_or("0"), 16).unwrap_or(0);
        raw = &raw[line_end + 2..];
        if size == 0 {
            break;
        }
        out.extend_from_slice(&raw[..size.min(raw.len())]);
        raw = &raw[(size + 2).min(raw.len())..];
    }
    out
}

async fn get(addr: SocketAddr, path: &str, extra: &[(&str, &str)]) -> Reply {
    send(addr, "GET", path, extra, "").await
}

async fn put_faults(addr: SocketAddr, json: &str) -> Reply {
    send(
        addr,
        "PUT",
        "/_control/faults",
        &[("Content-Type", "application/json")],
        json,
    )
    .await
}

#[tokio::test]
async fn serves_files_with_ranges_and_validators() {
    let o = start(Faults::default()).await;
    let full = get(o.addr, "/data.bin?sig=1", &[]).await;
    assert_eq!(full.status, 200);
    assert_eq!(full.body, o.data);
    assert_eq!(full.headers["content-length"], "1000");
    assert_eq!(full.headers["accept-ranges"], "bytes");
    assert_eq!(full.headers["content-type"], "application/octet-stream");
    assert!(full.headers.contains_key("last-modified"));
    let etag = full.headers["etag"].clone();
    assert!(etag.starts_with('"') && etag.ends_with('"'));

    let part = get(o.addr, "/data.bin", &[("Range", "bytes=10-19")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.headers["content-range"], "bytes 10-19/1000");
    assert_eq!(part.body, &o.data[10..20]);

    let suffix = get(o.addr, "/data.bin", &[("Range", "bytes=-5")]).await;
    assert_eq!((suffix.status, suffix.body.as_slice()), (206, &o.data[995..]));

    let past = get(o.addr, "/data.bin", &[("Range", "bytes=1000-")]).await;
    assert_eq!(past.status, 416);
    assert_eq!(past.headers["content-range"], "bytes */1000");

    let same = get(o.addr, "/data.bin", &[("Range", "bytes=0-0"), ("If-Range", &etag)]).await;
    assert_eq!((same.status, same.body.len()), (206, 1));
    let stale = get(o.addr, "/data.bin", &[("Range", "bytes=0-0"), ("If-Range", "\"old\"")]).await;
    assert_eq!((stale.status, stale.body.len()), (200, 1000));
    let cached = get(o.addr, "/data.bin", &[("If-None-Match", &etag)]).await;
    assert_eq!((cached.status, cached.body.len()), (304, 0));

    let head = send(o.addr, "HEAD", "/data.bin", &[("Range", "bytes=0-99")], "").await;
    assert_eq!(head.status, 206);
    assert_eq!(head.headers["content-length"], "100");
    assert!(head.body.is_empty());

    assert_eq!(get(o.addr, "/missing.bin", &[]).await.status, 404);
    assert_eq!(get(o.addr, "/../data.bin", &[]).await.status, 404);
    assert_eq!(send(o.addr, "POST", "/data.bin", &[], "").await.status, 405);

    // Rewriting the file changes the ETag.
    tokio::time::sleep(Duration::from_millis(20)).await;
    std::fs::write(o._dir.path().join("data.bin"), b"new bytes").expect("rewrite");
    let rewritten = get(o.addr, "/data.bin", &[]).await;
    assert_ne!(rewritten.headers["etag"], etag);
    assert_eq!(rewritten.body, b"new bytes");
}

#[tokio::test]
async fn faults_fail_drop_and_reshape_responses() {
    let o = start(Faults {
        fail_first: 1,
        drop_after: Some(100),
        drop_times: 1,
        ..Faults::default()
    })
    .await;
    assert_eq!(get(o.addr, "/data.bin", &[]).await.status, 503);
    let cut = get(o.addr, "/data.bin", &[]).await;
    assert_eq!((cut.status, cut.headers["content-length"].as_str()), (200, "1000"));
    assert_eq!(cut.body, &o.data[..100]);
    let short = get(o.addr, "/data.bin", &[("Range", "bytes=0-9")]).await;
    assert_eq!(short.body, &o.data[..10], "short bodies are not cut and cost no drop");
    assert_eq!(get(o.addr, "/data.bin", &[]).await.body, o.data);

    o.origin.switches.set(Faults {
        no_content_length: true,
        changing_etag: true,
        ..Faults::default()
    });
    let first = get(o.addr, "/data.bin", &[("Range", "bytes=0-9")]).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.headers.get("transfer-encoding").map(String::as_str),
        Some("chunked")
    );
    assert!(!first.headers.contains_key("content-length"));
    assert!(!first.headers.contains_key("accept-ranges"));
    assert_eq!(first.body, o.data);
    let second = get(o.addr, "/data.bin", &[]).await;
    assert_ne!(first.headers["etag"], second.headers["etag"]);

    o.origin.switches.set(Faults {
        ignore_range: true,
        require_auth: Some("Bearer s3cret".into()),
        ..Faults::default()
    });
    let denied = get(o.addr, "/data.bin", &[("Authorization", "Bearer wrong")]).await;
    assert_eq!(denied.status, 401);
    assert!(denied.headers.contains_key("www-authenticate"));
    let allowed = get(
        o.addr,
        "/data.bin",
        &[("Authorization", "Bearer s3cret"), ("Range", "bytes=0-9")],
    )
    .await;
    assert_eq!((allowed.status, allowed.body.len()), (200, 1000));
}

#[tokio::test]
async fn throttled_bodies_take_their_time() {
    let o = start(Faults {
        throttle_bps: Some(4_000),
        ..Faults::default()
    })
    .await;
    let started = std::time::Instant::now();
    let reply = get(o.addr, "/data.bin", &[]).await;
    let elapsed = started.elapsed();
    assert_eq!(reply.body, o.data);
    // 1000 bytes at 4000 B/s in 200-byte chunks: the last chunk leaves after 0.2 s.
    assert!(elapsed >= Duration::from_millis(180), "took {elapsed:?}");
}

#[tokio::test]
async fn control_api_reports_and_replaces() {
    let o = start(Faults::default()).await;
    let faults: Faults = serde_json::from_slice(&get(o.addr, "/_control/faults", &[]).await.body).expect("faults JSON");
    assert_eq!(faults, Faults::default());
    assert_eq!(put_faults(o.addr, "{\"fail_first\": 1}").await.status, 204);
    assert_eq!(o.origin.switches.get().fail_first, 1);
    let bad = put_faults(o.addr, "{\"fail_frist\": 1}").await;
    assert_eq!(bad.status, 400);
    assert!(String::from_utf8_lossy(&bad.body).contains("\"error\""));
    assert_eq!(put_faults(o.addr, "{}").await.status, 204);

    get(
        o.addr,
        "/data.bin?x=1",
        &[("Range", "bytes=0-"), ("Authorization", "secret")],
    )
    .await;
    get(o.addr, "/missing", &[]).await;
    let log: serde_json::Value =
        serde_json::from_slice(&get(o.addr, "/_control/log", &[]).await.body).expect("log JSON");
    assert_eq!(
        log,
        serde_json::json!([
            {"method": "GET", "path": "/data.bin?x=1", "range": "bytes=0-", "if_range": null,
             "status": 206, "authorization": true, "body_bytes": 1000, "complete": true},
            {"method": "GET", "path": "/missing", "range": null, "if_range": null,
             "status": 404, "authorization": false, "body_bytes": 10, "complete": true},
        ])
    );
    assert_eq!(send(o.addr, "DELETE", "/_control/log", &[], "").await.status, 204);
    let log = get(o.addr, "/_control/log", &[]).await;
    assert_eq!(log.body, b"[]");
    assert_eq!(send(o.addr, "POST", "/_control/log", &[], "").await.status, 405);
    assert_eq!(get(o.addr, "/_control/nope", &[]).await.status, 404);
}
