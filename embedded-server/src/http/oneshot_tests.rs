//! The HTTP handler driven in-process, one request at a time, without sockets: routing, the
//! token, methods, JSON errors and body limits, and media errors that need no backend answer.
//! The process-level tests (`tests/tests/`) drive the same handler through real connections.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::{handle, RequestBody};
use crate::config::Config;
use crate::shared::Inner;

const TOKEN: &str = "tok";

/// A server's shared state over a fresh cache, allowing only `http://127.0.0.1:9` (where nothing
/// listens), one attempt per upstream request.
async fn inner(dir: &tempfile::TempDir) -> Arc<Inner> {
    let mut config = Config::new(dir.path());
    config.token = Some(TOKEN.into());
    config.origins = vec!["http://127.0.0.1:9".into()];
    config.upstream_attempts = 1;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
    Inner::open(config, addr).await.expect("open")
}

fn body(bytes: impl Into<Bytes>) -> RequestBody {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// Answers `method path` with `content` as the body.
async fn call(
    inner: &Arc<Inner>,
    method: Method,
    path: &str,
    content: impl Into<Bytes>,
) -> (StatusCode, Response<()>, Bytes) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(body(content))
        .expect("request");
    let response = handle(inner.clone(), req).await;
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (parts.status, Response::from_parts(parts, ()), bytes)
}

/// The `error` field of a JSON error body.
fn error_of(bytes: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(bytes).expect("a JSON error body");
    v["error"].as_str().expect("an error field").to_string()
}

#[tokio::test]
async fn health_token_and_unknown_routes() {
    let dir = tempfile::tempdir().unwrap();
    let inner = inner(&dir).await;
    let (status, _, bytes) = call(&inner, Method::GET, "/healthz", "").await;
    assert_eq!((status, &bytes[..]), (StatusCode::OK, &b"ok"[..]));
    // A wrong token reveals nothing about the path.
    let (status, _, bytes) = call(&inner, Method::GET, "/nottok/api/stats", "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!String::from_utf8_lossy(&bytes).contains("api"));
    let (status, _, bytes) = call(&inner, Method::GET, "/tok/a/../api/stats", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&bytes).contains("dot segments"));
    let (status, _, bytes) = call(&inner, Method::GET, "/tok/nope", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error_of(&bytes).contains("no such route"));
}

#[tokio::test]
async fn api_methods_and_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let inner = inner(&dir).await;
    let (status, _, bytes) = call(&inner, Method::GET, "/tok/api/stats", "").await;
    assert_eq!(status, StatusCode::OK);
    let stats: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(stats["cache_bytes"], 0);
    let (status, head, _) = call(&inner, Method::POST, "/tok/api/stats", "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(head.headers()[http::header::ALLOW], "GET");
    let (status, _, bytes) = call(&inner, Method::PUT, "/tok/api/tracks/t1", "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&bytes).contains("bad JSON"), "{}", error_of(&bytes));
    let huge = format!("{{\"url\": \"http://127.0.0.1:9/{}\"}}", "a".repeat(70 * 1024));
    let (status, _, bytes) = call(&inner, Method::PUT, "/tok/api/tracks/t1", huge).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&bytes).contains("at most 65536 bytes"), "{}", error_of(&bytes));
    let (status, _, bytes) = call(
        &inner,
        Method::PUT,
        "/tok/api/tracks/t1",
        r#"{"url": "http://evil.example/a.mp3"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{}", error_of(&bytes));
    let (status, _, bytes) = call(&inner, Method::GET, "/tok/api/resources", "").await;
    assert_eq!((status, &bytes[..]), (StatusCode::OK, &b"[]"[..]));
}

#[tokio::test]
async fn media_errors_need_no_backend_answer() {
    let dir = tempfile::tempdir().unwrap();
    let inner = inner(&dir).await;
    let (status, _, bytes) = call(&inner, Method::GET, "/tok/tracks/missing", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{}", error_of(&bytes));
    let (status, _, _) = call(&inner, Method::GET, "/tok/stream/http/evil.example/a.mp3", "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = call(&inner, Method::DELETE, "/tok/stream/http/127.0.0.1:9/a.mp3", "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    // Nothing listens at the allowed origin: a JSON 502 before any byte, for GET and HEAD.
    for method in [Method::GET, Method::HEAD] {
        let (status, _, bytes) = call(&inner, method.clone(), "/tok/stream/http/127.0.0.1:9/a.mp3", "").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{method}");
        if method == Method::GET {
            assert!(error_of(&bytes).contains("unreachable"), "{}", error_of(&bytes));
        }
    }
    let (status, _, bytes) = call(&inner, Method::GET, "/tok/api/stats", "").await;
    assert_eq!(status, StatusCode::OK);
    let stats: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(stats["cache_bytes"], 0, "nothing cached from a failed fetch");
}
