//! The product server as the tests see it: [`Server`] runs `streamer serve` over a cache directory,
//! waits until it answers, and builds the URLs of its routes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::http::{http, http_with_body, try_http};
use crate::origin::Origin;
use crate::process::{parse_loopback_url, Proc};
use crate::programs::streamer_bin;
use crate::wait::wait_until;

/// A running `streamer serve`.
pub struct Server {
    proc: Proc,
    _owned_cache: Option<TempDir>,
    cache_dir: PathBuf,
    /// `http://127.0.0.1:PORT/TOKEN/`.
    pub base: String,
    /// The secret path token.
    pub token: String,
    /// The bound port.
    pub port: u16,
}

impl Server {
    /// `streamer serve` over a fresh cache directory, allowed to fetch from `origins`.
    pub fn start(origins: &[&Origin]) -> Server {
        let list: Vec<String> = origins.iter().map(|o| o.origin_arg()).collect();
        Server::start_with(None, &list, &[])
    }

    /// `streamer serve` with no `--origin`: the built-in demo backend and catalog.
    pub fn demo() -> Server {
        Server::start_with(None, &[], &[])
    }

    /// `streamer serve --cache-dir DIR --port 0 [--origin O]... EXTRA...`; a fresh temporary cache
    /// directory (owned by the returned value) when `cache_dir` is `None`.
    pub fn start_with(cache_dir: Option<&Path>, origins: &[String], extra: &[&str]) -> Server {
        Server::start_with_env(cache_dir, origins, extra, &[])
    }

    /// Like [`Server::start_with`], with extra environment variables for the child.
    pub fn start_with_env(
        cache_dir: Option<&Path>,
        origins: &[String],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        Server::start_wrapped(&[], cache_dir, origins, extra, env)
    }

    /// Like [`Server::start_with_env`], run by `wrapper` (see [`Proc::spawn_wrapped`]).
    pub fn start_wrapped(
        wrapper: &[String],
        cache_dir: Option<&Path>,
        origins: &[String],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        Server::start_program(&streamer_bin(), wrapper, cache_dir, origins, extra, env)
    }

    /// Like [`Server::start_wrapped`], running the `streamer` binary at `bin`.
    pub fn start_program(
        bin: &Path,
        wrapper: &[String],
        cache_dir: Option<&Path>,
        origins: &[String],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let (owned, dir) = match cache_dir {
            Some(d) => (None, d.to_path_buf()),
            None => {
                let t = tempfile::tempdir().expect("cache tempdir");
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let mut argv: Vec<String> = vec![
            "serve".into(),
            "--cache-dir".into(),
            dir.display().to_string(),
            "--port".into(),
            "0".into(),
        ];
        for o in origins {
            argv.push("--origin".into());
            argv.push(o.clone());
        }
        argv.extend(extra.iter().map(|s| s.to_string()));
        let proc = Proc::spawn_program(bin, "streamer serve", wrapper, &argv, env);
        let (port, rest) = parse_loopback_url("streamer serve", proc.first_line());
        let token = rest.strip_suffix('/').unwrap_or_else(|| {
            panic!(
                "streamer serve: first line must be exactly http://127.0.0.1:PORT/TOKEN/, got {:?}",
                proc.first_line()
            )
        });
        assert!(
            !token.is_empty() && !token.contains('/'),
            "streamer serve: bad token in first line {:?}",
            proc.first_line()
        );
        let token = token.to_string();
        let base = proc.first_line().to_string();
        let server = Server {
            proc,
            _owned_cache: owned,
            cache_dir: dir,
            base,
            token,
            port,
        };
        // The URL is printed after binding, but be tolerant of a short gap before accepting.
        wait_until(Duration::from_secs(10), "the server answers /healthz", || {
            try_http("GET", &format!("{}healthz", server.root_url()), &[], None).is_ok()
        });
        server
    }

    /// `http://127.0.0.1:PORT/` (no token).
    pub fn root_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The cache directory in use.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// `BASE/stream/http/127.0.0.1:PORT/PATH` for a path (with optional query, no leading slash)
    /// on `origin`.
    pub fn stream_url(&self, origin: &Origin, path: &str) -> String {
        format!("{}stream/http/{}/{}", self.base, origin.host_port(), path)
    }

    /// `BASE/tracks/ID`.
    pub fn track_url(&self, id: &str) -> String {
        format!("{}tracks/{id}", self.base)
    }

    /// `BASE/api/REST`.
    pub fn api_url(&self, rest: &str) -> String {
        format!("{}api/{rest}", self.base)
    }

    /// `GET BASE/api/REST` expecting 200 and JSON.
    pub fn api_get(&self, rest: &str) -> Value {
        let r = http("GET", &self.api_url(rest), &[]);
        assert_eq!(r.status, 200, "GET api/{rest}: {}", r.text());
        r.json()
    }

    /// `PUT BASE/api/tracks/ID` with `body`, expecting 2xx.
    pub fn put_track(&self, id: &str, body: &Value) {
        let r = http_with_body("PUT", &self.api_url(&format!("tracks/{id}")), &[], &body.to_string());
        assert!(
            (200..300).contains(&r.status),
            "PUT api/tracks/{id}: {} {}",
            r.status,
            r.text()
        );
    }

    /// `POST BASE/api/downloads` of `url`, then waits (at most 30 s) until that download is
    /// completed, failing the test if it fails; returns its ID.
    pub fn download_url(&self, url: &str) -> String {
        let body = serde_json::json!({ "url": url }).to_string();
        let r = http_with_body("POST", &self.api_url("downloads"), &[], &body);
        assert_eq!(r.status, 202, "POST downloads: {}", r.text());
        let id = r.json()["id"].as_str().expect("the download's id").to_string();
        self.wait_download_completed(&id);
        id
    }

    /// Waits (at most 30 s) until download `id` is completed, failing the test if it fails.
    pub fn wait_download_completed(&self, id: &str) {
        wait_until(Duration::from_secs(30), "the download completes", || {
            let d = self.api_get(&format!("downloads/{id}"));
            assert_ne!(d["state"], "failed", "{d}");
            d["state"] == "completed"
        });
    }

    /// `GET BASE/api/stats`.
    pub fn stats(&self) -> Value {
        self.api_get("stats")
    }

    /// The process (for `kill -9`, stderr).
    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }

    /// `kill -9` the server and reap it.
    pub fn kill9(&mut self) {
        self.proc.kill9();
    }
}
