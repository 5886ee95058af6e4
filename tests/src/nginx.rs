//! nginx from Debian as a real static-file backend: TLS (a certificate for `localhost` signed by a
//! throw-away CA, so the server needs `--ca-cert` / `Config::ca_cert_pem`) and HTTP/2, `Range` and
//! ETags as nginx does them for static files, the media types HLS players expect, extra exact
//! locations answered with `return` (redirects, refusals), and an access log the tests read.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::programs::require_tool;
use crate::wait::wait_until;

/// A free loopback port (bound and released; the caller binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// One line of nginx's access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxRequest {
    /// HTTP method.
    pub method: String,
    /// The path as requested, with its query string.
    pub path: String,
    /// `HTTP/1.1`, `HTTP/2.0`, ...
    pub protocol: String,
    /// The response status.
    pub status: u16,
    /// Body bytes sent.
    pub body_bytes: u64,
}

/// nginx over the `www` directory of a temporary directory, listening on `https://localhost:PORT`
/// (HTTP/2 offered by ALPN). Killed on drop.
pub struct Nginx {
    child: Child,
    dir: TempDir,
    port: u16,
}

impl Nginx {
    /// Starts nginx with extra exact locations, each `(path, return arguments)`: `("/old",
    /// "302 /new")` redirects `/old` to `/new` on the same origin, `("/expired", "403")` refuses.
    /// Panics (never skips) when nginx or openssl is missing.
    pub fn start(locations: &[(&str, &str)]) -> Nginx {
        let nginx = require_tool("nginx");
        require_tool("openssl");
        let dir = tempfile::tempdir().expect("nginx dir");
        let d = dir.path();
        for sub in ["www", "logs", "tmp"] {
            std::fs::create_dir_all(d.join(sub)).expect("nginx subdirectory");
        }
        make_certs(d);
        let port = free_port();
        let locations: String = locations
            .iter()
            .map(|(path, ret)| format!("        location = {path} {{ return {ret}; }}\n"))
            .collect();
        // The log fields are space-separated and none can contain a space: nginx escapes them.
        let conf = format!(
            r#"
user root;
# One process: killing it (also on a failed test) leaves no orphaned worker behind.
master_process off;
error_log {d}/logs/error.log;
pid {d}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    types {{
        audio/mpeg mp3;
        application/octet-stream bin;
        application/vnd.apple.mpegurl m3u8;
        video/mp2t ts;
        video/iso.segment m4s;
        video/mp4 mp4;
    }}
    default_type application/octet-stream;
    log_format proto '$request_method $uri $server_protocol $status $body_bytes_sent $request_uri';
    access_log {d}/logs/access.log proto;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp;
    scgi_temp_path {d}/tmp;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        server_name localhost;
        ssl_certificate {d}/server.pem;
        ssl_certificate_key {d}/server.key;
        root {d}/www;
{locations}    }}
}}
"#,
            d = d.display()
        );
        std::fs::write(d.join("nginx.conf"), conf).expect("nginx.conf");
        let child = Command::new(nginx)
            .args([
                "-p",
                &d.display().to_string(),
                "-c",
                &d.join("nginx.conf").display().to_string(),
            ])
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nginx");
        let mut n = Nginx { child, dir, port };
        wait_until(Duration::from_secs(10), "nginx listens", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() || n.child.try_wait().ok().flatten().is_some()
        });
        assert!(
            n.child.try_wait().ok().flatten().is_none(),
            "nginx exited: {}",
            n.error_log()
        );
        n
    }

    /// The directory nginx serves.
    pub fn www(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    /// `https://localhost:PORT` (no trailing slash), for `--origin` / `Config::origins`.
    pub fn origin(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// `localhost:PORT`, as it appears in the server's `stream/https/HOST:PORT/...` route.
    pub fn host_port(&self) -> String {
        format!("localhost:{}", self.port)
    }

    /// The CA certificate (PEM) that signed nginx's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The raw access log: one line per completed request,
    /// `METHOD URI PROTOCOL STATUS BODY_BYTES REQUEST_URI`.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/access.log")).unwrap_or_default()
    }

    /// The access log, parsed. A request is logged when nginx has finished answering it.
    pub fn requests(&self) -> Vec<NginxRequest> {
        self.access_log()
            .lines()
            .map(|line| {
                let f: Vec<&str> = line.split(' ').collect();
                let [method, _uri, protocol, status, bytes, path] = f[..] else {
                    panic!("unexpected nginx access log line {line:?}");
                };
                NginxRequest {
                    method: method.to_string(),
                    path: path.to_string(),
                    protocol: protocol.to_string(),
                    status: status.parse().unwrap_or_else(|_| panic!("bad status in {line:?}")),
                    body_bytes: bytes.parse().unwrap_or_else(|_| panic!("bad byte count in {line:?}")),
                }
            })
            .collect()
    }

    /// The error log (for failure messages).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- nginx access log ----\n{}---- nginx error log ----\n{}",
                self.access_log(),
                self.error_log()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `openssl ARGS` in `dir` and returns its standard output; panics if it fails.
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A self-signed CA valid for two days: `STEM.key` and `STEM.pem` in `dir`.
pub fn make_ca(dir: &Path, stem: &str, common_name: &str) {
    let (key, pem, subject) = (
        format!("{stem}.key"),
        format!("{stem}.pem"),
        format!("/CN={common_name}"),
    );
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &pem, "-days", "2", "-subj",
            &subject,
        ],
    );
}

/// A CA and a server certificate for `localhost` / 127.0.0.1 signed by it, with openssl.
fn make_certs(d: &Path) {
    let run = |args: &[&str]| {
        openssl(d, args);
    };
    make_ca(d, "ca", "test CA");
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(d.join("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}
