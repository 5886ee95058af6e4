//! `streamer download`: downloads tracks or URLs for offline use and shows their progress.
//!
//! Everything goes through the server's HTTP download API (SPEC §4.2, §6): `POST api/downloads`
//! queues each item, then `GET api/downloads` is polled about every 200 ms and drawn as one
//! `indicatif` bar per download. There are two modes but only one client: with `--server BASE` it
//! talks to a running `streamer serve`; with `--cache-dir DIR` it first starts the library server
//! in-process on 127.0.0.1:0 and talks to that over loopback, so the standalone mode exercises the
//! very API a player or the dashboard uses, and what it leaves pinned in `DIR` is what a later
//! `streamer serve --cache-dir DIR` serves offline. The client is blocking (ureq) because the
//! work is a simple poll loop; the tokio runtime exists only for the in-process server and for the
//! signal handler. Ctrl-C stops waiting without cancelling anything: the downloads stay queued in
//! the server's persistent queue and resume next time. Every failure is a message on stderr and a
//! non-zero exit code, never a panic.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{ArgGroup, Args};
use embedded_server::{Config, DownloadState, Server};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use tracing_subscriber::EnvFilter;

/// How often the download objects are fetched.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How long the server may stay unreachable while downloads are in flight before we give up.
const LOST_SERVER_AFTER: Duration = Duration::from_secs(10);
/// Exit code after Ctrl-C / SIGTERM (128 + SIGINT, the shell convention).
const INTERRUPTED: u8 = 130;

/// Flags of `streamer download`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("mode").required(true).args(["server", "cache_dir"])))]
#[command(group(ArgGroup::new("items").required(true).multiple(true).args(["track", "url"])))]
pub(crate) struct DownloadArgs {
    /// Base URL of a running `streamer serve` (its first stdout line, http://127.0.0.1:PORT/TOKEN/).
    #[arg(long, value_name = "BASE")]
    server: Option<String>,

    /// Standalone: run the server in-process on this cache directory and pin the downloads there.
    #[arg(long, value_name = "DIR", requires = "origin")]
    cache_dir: Option<PathBuf>,

    /// Standalone: keep the downloads (and the index) here instead of in --cache-dir.
    #[arg(long, value_name = "DIR", conflicts_with = "server")]
    downloads_dir: Option<PathBuf>,

    /// Standalone: downloads that run at once (default 2).
    #[arg(long, value_name = "N", conflicts_with = "server", value_parser = clap::value_parser!(u16).range(1..=16))]
    download_workers: Option<u16>,

    /// Standalone: a backend the server may fetch from, as scheme://host[:port]; repeatable.
    #[arg(long = "origin", value_name = "URL", conflicts_with = "server")]
    origin: Vec<String>,

    /// Standalone: an extra request header sent to backends, as "Name: value"; repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE", conflicts_with = "server")]
    header: Vec<String>,

    /// Download catalog track ID; repeatable.
    #[arg(long = "track", value_name = "ID")]
    track: Vec<String>,

    /// Download this remote URL (an HLS playlist downloads a whole rendition); repeatable.
    #[arg(long = "url", value_name = "URL")]
    url: Vec<String>,

    /// Queue priority of these downloads; higher runs first.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    priority: Option<i64>,
}

/// How a run ended, when it got as far as waiting on downloads.
enum Outcome {
    /// Every download completed.
    Completed,
    /// At least one download failed; the reasons are already on stderr.
    Failed,
    /// Ctrl-C or SIGTERM; the downloads are left queued.
    Interrupted,
}

/// Runs `streamer download`; the exit code says whether every download completed.
pub(crate) fn run(args: DownloadArgs) -> ExitCode {
    let multi = MultiProgress::new();
    init_tracing(&multi);
    match download(args, &multi) {
        Ok(Outcome::Completed) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::FAILURE,
        Ok(Outcome::Interrupted) => {
            eprintln!("streamer download: interrupted; unfinished downloads stay queued and resume next time");
            ExitCode::from(INTERRUPTED)
        }
        Err(message) => {
            eprintln!("streamer download: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Library logs (standalone mode) go to stderr like `serve`'s, but above the bars rather than
/// through them, and only warnings unless `RUST_LOG` says otherwise.
fn init_tracing(multi: &MultiProgress) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let multi = multi.clone();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || AboveBars(multi.clone()))
        .with_ansi(io::stderr().is_terminal())
        .try_init();
}

/// A stderr writer that lifts the progress bars out of the way while it writes.
struct AboveBars(MultiProgress);

impl Write for AboveBars {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.suspend(|| io::stderr().write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// Validates the flags, starts the in-process server when asked, and drives the downloads.
fn download(args: DownloadArgs, multi: &MultiProgress) -> Result<Outcome, String> {
    let requests = requests(&args);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the async runtime: {err}"))?;
    let interrupted = Arc::new(AtomicBool::new(false));
    watch_signals(&runtime, interrupted.clone())?;

    if let Some(server) = &args.server {
        let client = Client::new(server)?;
        return drive(&client, &requests, multi, &interrupted);
    }
    let Some(cache_dir) = args.cache_dir else {
        return Err("give --server BASE or --cache-dir DIR".into()); // clap's group already says so
    };
    let mut config = Config::new(&cache_dir);
    config.downloads_dir = args.downloads_dir.clone();
    if let Some(workers) = args.download_workers {
        config.download_workers = usize::from(workers);
    }
    config.origins = args.origin;
    config.upstream_headers = crate::serve::parse_headers(&args.header)?;
    let server = runtime
        .block_on(Server::start(config))
        .map_err(|err| format!("cannot start the server on {}: {err}", cache_dir.display()))?;
    // The poll loop blocks this thread; the runtime's worker threads serve our requests meanwhile.
    let outcome = Client::new(server.base_url()).and_then(|client| drive(&client, &requests, multi, &interrupted));
    let stopped = runtime
        .block_on(server.shutdown())
        .map_err(|err| format!("stopping the in-process server: {err}"));
    match (outcome, stopped) {
        (Err(message), _) | (Ok(_), Err(message)) => Err(message),
        (Ok(outcome), Ok(())) => {
            if matches!(outcome, Outcome::Completed) {
                let serve = match &args.downloads_dir {
                    Some(d) => format!("--cache-dir {} --downloads-dir {}", cache_dir.display(), d.display()),
                    None => format!("--cache-dir {}", cache_dir.display()),
                };
                let pinned_in = args.downloads_dir.as_ref().unwrap_or(&cache_dir).display();
                note(
                    multi,
                    &format!("pinned in {pinned_in}; play offline with `streamer serve {serve}`"),
                );
            }
            Ok(outcome)
        }
    }
}

/// The `POST api/downloads` bodies, tracks first, in the order given.
fn requests(args: &DownloadArgs) -> Vec<Value> {
    let tracks = args.track.iter().map(|id| json!({ "track": id }));
    let urls = args.url.iter().map(|url| json!({ "url": url }));
    tracks
        .chain(urls)
        .map(|mut body| {
            if let (Some(priority), Some(object)) = (args.priority, body.as_object_mut()) {
                object.insert("priority".into(), json!(priority));
            }
            body
        })
        .collect()
}

/// Sets `flag` on the first Ctrl-C or SIGTERM; a second one exits at once, for when stopping
/// cleanly hangs.
fn watch_signals(runtime: &tokio::runtime::Runtime, flag: Arc<AtomicBool>) -> Result<(), String> {
    let _entered = runtime.enter();
    let first = crate::shutdown_signal().map_err(|err| format!("cannot install signal handlers: {err}"))?;
    runtime.spawn(async move {
        first.await;
        flag.store(true, Ordering::SeqCst);
        if let Ok(second) = crate::shutdown_signal() {
            second.await;
            eprintln!("streamer download: interrupted twice; exiting without a clean stop");
            std::process::exit(i32::from(INTERRUPTED));
        }
    });
    Ok(())
}

/// Queues every request, then polls until each download has completed or failed.
fn drive(
    client: &Client,
    requests: &[Value],
    multi: &MultiProgress,
    interrupted: &AtomicBool,
) -> Result<Outcome, String> {
    // One cheap call first, so a wrong URL, a wrong token or a server without the download API is
    // reported as such rather than as a failure of the first download.
    client.list().map_err(|err| err.explain_probe())?;

    let mut tracked: Vec<Tracked> = Vec::new();
    let mut seen = HashSet::new();
    for body in requests {
        if interrupted.load(Ordering::SeqCst) {
            return Ok(Outcome::Interrupted);
        }
        let download = client.add(body).map_err(|err| format!("{}: {err}", describe(body)))?;
        // Posting the same track or URL twice answers the same download; show it once.
        if seen.insert(download.id.clone()) {
            tracked.push(Tracked::new(multi, label(body), &download));
        }
    }

    let mut last_contact = Instant::now();
    loop {
        if tracked.iter().all(Tracked::is_done) {
            break;
        }
        if interrupted.load(Ordering::SeqCst) {
            for t in &tracked {
                t.bar.abandon();
            }
            return Ok(Outcome::Interrupted);
        }
        std::thread::sleep(POLL_INTERVAL);
        let downloads = match client.list() {
            Ok(list) => {
                last_contact = Instant::now();
                list
            }
            Err(err) if last_contact.elapsed() < LOST_SERVER_AFTER => {
                tracing::debug!("polling downloads: {err}");
                continue;
            }
            Err(err) => return Err(format!("lost the server while downloading: {err}")),
        };
        for t in tracked.iter_mut().filter(|t| !t.is_done()) {
            match downloads.iter().find(|d| d.id == t.id) {
                Some(download) => t.update(multi, download),
                None => t.vanish(multi),
            }
        }
    }

    let failed: Vec<&Tracked> = tracked
        .iter()
        .filter(|t| t.state == Some(DownloadState::Failed))
        .collect();
    let total: u64 = tracked.iter().map(|t| t.bar.position()).sum();
    note(
        multi,
        &format!(
            "{} of {} downloads completed ({})",
            tracked.len() - failed.len(),
            tracked.len(),
            indicatif::BinaryBytes(total)
        ),
    );
    if failed.is_empty() {
        return Ok(Outcome::Completed);
    }
    for t in failed {
        let reason = t.error.as_deref().unwrap_or("no reason given");
        eprintln!("streamer download: {} failed: {reason}", t.label);
    }
    Ok(Outcome::Failed)
}

/// One download as the server reports it (SPEC §4.2). Fields beyond `id` are optional so that an
/// answer carrying only `{"id": ...}` (as `POST` may) still parses; the next poll fills them in.
#[derive(Debug, Clone, Deserialize)]
struct Download {
    id: String,
    /// `None`: a state this client does not know (a newer server's); missing means queued.
    #[serde(default = "queued", deserialize_with = "known_state")]
    state: Option<DownloadState>,
    /// Bytes downloaded so far.
    #[serde(default)]
    bytes_done: u64,
    /// The full size in bytes, when the server knows it.
    #[serde(default)]
    bytes_total: Option<u64>,
    /// Why it failed (or last went wrong), in words for people.
    #[serde(default)]
    error: Option<String>,
}

/// The state of a download object that carries none.
fn queued() -> Option<DownloadState> {
    Some(DownloadState::Queued)
}

/// The library's state names (SPEC §4.2); an unknown newer state is `None` rather than an error
/// that would break the client.
fn known_state<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<DownloadState>, D::Error> {
    let name = String::deserialize(deserializer)?;
    Ok(name.parse().ok())
}

/// A download this run asked for, with its bar.
struct Tracked {
    id: String,
    label: String,
    bar: ProgressBar,
    /// `None` until the first update, and while the server reports a state this client does not know.
    state: Option<DownloadState>,
    /// Whether the bar is currently drawn with a known length.
    sized: bool,
    error: Option<String>,
    /// When it was first seen running (else when it was queued), for the summary line.
    started: Option<Instant>,
    queued: Instant,
}

impl Tracked {
    fn new(multi: &MultiProgress, label: String, download: &Download) -> Self {
        // Styled by the first update before it is shown, so no default-styled frame flashes by.
        let bar = ProgressBar::hidden().with_message(label.clone());
        let mut tracked = Self {
            id: download.id.clone(),
            label,
            bar,
            state: None,
            sized: false,
            error: None,
            started: None,
            queued: Instant::now(),
        };
        tracked.update(multi, download);
        if !tracked.is_done() {
            tracked.bar = multi.add(tracked.bar.clone());
        }
        tracked
    }

    fn is_done(&self) -> bool {
        matches!(self.state, Some(DownloadState::Completed | DownloadState::Failed))
    }

    /// Applies one fresh download object to the bar.
    fn update(&mut self, multi: &MultiProgress, download: &Download) {
        if let Some(total) = download.bytes_total {
            self.bar.set_length(total);
        }
        self.bar.set_position(download.bytes_done);
        self.error.clone_from(&download.error);
        let sized = download.bytes_total.is_some();
        if download.state == self.state && sized == self.sized {
            return;
        }
        let previous = std::mem::replace(&mut self.state, download.state);
        self.sized = sized;
        if download.state == Some(DownloadState::Running) && previous != Some(DownloadState::Running) {
            // Bytes fetched before this run (a resume) must not count toward the rate or ETA.
            self.bar.reset_eta();
            if self.started.is_none() {
                self.bar.reset_elapsed();
                self.started = Some(Instant::now());
            }
        }
        match download.state {
            Some(DownloadState::Completed) => {
                let took = self.started.unwrap_or(self.queued).elapsed().as_secs_f64();
                let how = if previous.is_none() {
                    "already downloaded".to_string()
                } else {
                    format!("in {took:.1} s")
                };
                self.bar.finish_and_clear();
                multi.remove(&self.bar);
                let size = indicatif::BinaryBytes(download.bytes_done);
                note(multi, &format!("done    {}  {size} {how}", self.label));
            }
            Some(DownloadState::Failed) => {
                self.bar.set_style(style("{prefix:>8.red} {msg}"));
                self.bar.set_prefix("failed");
                let reason = download.error.as_deref().unwrap_or("no reason given");
                self.bar.abandon_with_message(format!("{}: {reason}", self.label));
                if self.bar.is_hidden() {
                    note(multi, &format!("failed  {}: {reason}", self.label));
                }
            }
            state => {
                let (prefix, template) = template(state, sized);
                self.bar.set_style(style(&template));
                self.bar.set_prefix(prefix);
                if state == Some(DownloadState::Running) && !sized {
                    self.bar.enable_steady_tick(Duration::from_millis(120));
                } else {
                    self.bar.disable_steady_tick();
                }
                if multi.is_hidden() && matches!(state, Some(DownloadState::WaitingForNetwork | DownloadState::Paused))
                {
                    note(multi, &format!("{prefix}  {}", self.label));
                }
            }
        }
    }

    /// The download left the server's list: someone cancelled it (`DELETE`).
    fn vanish(&mut self, multi: &MultiProgress) {
        let gone = Download {
            id: self.id.clone(),
            state: Some(DownloadState::Failed),
            bytes_done: self.bar.position(),
            bytes_total: self.bar.length(),
            error: Some("cancelled: the download is no longer on the server".into()),
        };
        self.update(multi, &gone);
    }
}

/// The state word shown before the bar, and the bar's template, for a download not yet finished.
fn template(state: Option<DownloadState>, sized: bool) -> (&'static str, String) {
    let prefix = match state {
        Some(DownloadState::Queued) => "queued",
        Some(DownloadState::Running) => "",
        Some(DownloadState::WaitingForNetwork) => "waiting for network",
        Some(DownloadState::Paused) => "paused",
        _ => "?",
    };
    let mut template = String::from("{prefix:>8.yellow} {msg:30!} ");
    let _ = match (state, sized) {
        (Some(DownloadState::Running), true) => write!(
            template,
            "[{{bar:25.cyan/blue}}] {{binary_bytes:>10}}/{{binary_total_bytes:<10}} \
             {{binary_bytes_per_sec:>12}}  ETA {{eta}}"
        ),
        (Some(DownloadState::Running), false) => write!(
            template,
            "{{spinner:.cyan}} {{binary_bytes:>10}} {{binary_bytes_per_sec:>12}}  {{elapsed}}"
        ),
        (_, true) => write!(
            template,
            "[{{bar:25.dim}}] {{binary_bytes:>10}}/{{binary_total_bytes:<10}}"
        ),
        (_, false) => write!(template, "  {{binary_bytes:>10}}"),
    };
    // A state too long for the prefix column goes after the bar instead.
    if prefix.len() > 8 {
        template = template.replacen("{prefix:>8.yellow}", "        ", 1) + "  {prefix:.yellow}";
    }
    (prefix, template)
}

/// A style from a template of this file; they are constants, so the fallback is only a guard.
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// A line above the bars, or on stderr as-is when no bars are drawn (not a terminal).
fn note(multi: &MultiProgress, line: &str) {
    if multi.is_hidden() {
        eprintln!("{line}");
    } else {
        let _ = multi.println(line);
    }
}

/// What a person calls one request: `track ID`, or the URL's file name.
fn label(body: &Value) -> String {
    if let Some(track) = body.get("track").and_then(Value::as_str) {
        return format!("track {track}");
    }
    let url = body.get("url").and_then(Value::as_str).unwrap_or_default();
    let without_query = url.split(['?', '#']).next().unwrap_or(url);
    let path = without_query
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map_or("", |(_, path)| path);
    match path.rsplit('/').find(|s| !s.is_empty()) {
        Some(name) => name.to_string(),
        None => url.to_string(),
    }
}

/// The request in full, for error messages.
fn describe(body: &Value) -> String {
    match (body.get("track"), body.get("url")) {
        (Some(Value::String(track)), _) => format!("--track {track}"),
        (_, Some(Value::String(url))) => format!("--url {url}"),
        _ => body.to_string(),
    }
}

/// A blocking client of one server's download API.
struct Client {
    agent: ureq::Agent,
    /// `http://127.0.0.1:PORT/TOKEN/`, with the trailing slash.
    base: String,
}

/// A failed API call: the server's answer, or why there was none.
#[derive(Debug)]
enum ApiError {
    /// A 4xx/5xx answer, with the `error` of its JSON body (or the raw body).
    Status { call: String, status: u16, message: String },
    /// No answer at all: refused, timed out, reset.
    Transport { call: String, message: String },
    /// A 2xx answer that is not the JSON we expect.
    Body { call: String, message: String },
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status { call, status, message } => write!(f, "{call}: HTTP {status}: {message}"),
            Self::Transport { call, message } => write!(f, "{call}: {message}"),
            Self::Body { call, message } => write!(f, "{call}: unexpected answer: {message}"),
        }
    }
}

impl ApiError {
    /// The message for the first call, which tells whether we found a server with the API at all.
    fn explain_probe(self) -> String {
        let hint = match &self {
            Self::Transport { .. } => "is the server running, and is BASE its first stdout line?",
            Self::Status { status: 403, .. } => "the token in BASE is wrong (copy the server's first stdout line)",
            Self::Status {
                status: 404 | 405 | 501,
                ..
            } => "this server has no download API (a build from before the downloader?)",
            Self::Status { .. } | Self::Body { .. } => return self.to_string(),
        };
        format!("{self}\n  {hint}")
    }
}

impl Client {
    fn new(base: &str) -> Result<Self, String> {
        let base = base.trim();
        if !base.starts_with("http://") {
            return Err(format!(
                "--server {base:?}: expected http://127.0.0.1:PORT/TOKEN/ (the first line `streamer serve` prints)"
            ));
        }
        let base = if base.ends_with('/') {
            base.to_string()
        } else {
            format!("{base}/")
        };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("streamer-download/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Self { agent, base })
    }

    /// `POST api/downloads`: queues one download, or answers the existing one for the same item.
    fn add(&self, body: &Value) -> Result<Download, ApiError> {
        let call = "POST api/downloads".to_string();
        let request = self
            .agent
            .post(&format!("{}api/downloads", self.base))
            .set("Content-Type", "application/json");
        let text = finish(&call, request.send_string(&body.to_string()))?;
        serde_json::from_str(&text).map_err(|err| ApiError::Body {
            call,
            message: format!("{err} in {}", snippet(&text)),
        })
    }

    /// `GET api/downloads`: every download the server knows.
    fn list(&self) -> Result<Vec<Download>, ApiError> {
        let call = "GET api/downloads".to_string();
        let text = finish(&call, self.agent.get(&format!("{}api/downloads", self.base)).call())?;
        serde_json::from_str(&text).map_err(|err| ApiError::Body {
            call,
            message: format!("{err} in {}", snippet(&text)),
        })
    }
}

/// Reads a response body, turning 4xx/5xx answers into their `{"error": ...}` message.
fn finish(call: &str, result: Result<ureq::Response, ureq::Error>) -> Result<String, ApiError> {
    match result {
        Ok(response) => response.into_string().map_err(|err| ApiError::Transport {
            call: call.to_string(),
            message: format!("reading the answer: {err}"),
        }),
        Err(ureq::Error::Status(status, response)) => {
            let text = response.into_string().unwrap_or_default();
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| snippet(&text));
            Err(ApiError::Status {
                call: call.to_string(),
                status,
                message,
            })
        }
        Err(ureq::Error::Transport(err)) => Err(ApiError::Transport {
            call: call.to_string(),
            message: transport_message(&err),
        }),
    }
}

/// ureq's transport error without the URL, which carries the secret token.
fn transport_message(err: &ureq::Transport) -> String {
    let mut message = err.kind().to_string();
    if let Some(detail) = err.message() {
        message = format!("{message}: {detail}");
    }
    if let Some(source) = std::error::Error::source(err) {
        message = format!("{message}: {source}");
    }
    message
}

/// At most 200 characters of a body, for error messages.
fn snippet(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None if text.is_empty() => "an empty body".into(),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_download_object_and_a_bare_id() {
        let full = r#"{"id": "d1", "track": null, "url": "http://o/a.mp3", "state": "waiting_for_network",
            "bytes_done": 10, "bytes_total": null, "error": null, "priority": 0, "pinned": true}"#;
        let d: Download = serde_json::from_str(full).unwrap();
        assert_eq!(
            (d.state, d.bytes_done, d.bytes_total),
            (Some(DownloadState::WaitingForNetwork), 10, None)
        );
        let bare: Download = serde_json::from_str(r#"{"id": "d2"}"#).unwrap();
        assert_eq!((bare.id.as_str(), bare.state), ("d2", Some(DownloadState::Queued)));
        let newer: Download = serde_json::from_str(r#"{"id": "d3", "state": "verifying"}"#).unwrap();
        assert_eq!(newer.state, None);
        let broken = serde_json::from_str::<Download>(r#"{"id": "d4", "state": 3}"#);
        assert!(broken.is_err());
    }

    #[test]
    fn labels_are_short() {
        assert_eq!(label(&json!({"track": "t1"})), "track t1");
        assert_eq!(label(&json!({"url": "http://h:1/a/b/song.mp3?sig=x"})), "song.mp3");
        assert_eq!(label(&json!({"url": "http://h:1/"})), "http://h:1/");
    }

    #[test]
    fn templates_parse() {
        use DownloadState::*;
        for state in [Queued, Running, WaitingForNetwork, Paused].map(Some) {
            for sized in [true, false] {
                let (_, template) = template(state, sized);
                assert!(ProgressStyle::with_template(&template).is_ok(), "{template}");
            }
        }
    }

    #[test]
    fn priority_goes_into_every_request() {
        let args = DownloadArgs {
            server: Some("http://127.0.0.1:1/t/".into()),
            cache_dir: None,
            downloads_dir: None,
            download_workers: None,
            origin: vec![],
            header: vec![],
            track: vec!["a".into()],
            url: vec!["http://o/x".into()],
            priority: Some(-3),
        };
        assert_eq!(
            requests(&args),
            vec![
                json!({"track": "a", "priority": -3}),
                json!({"url": "http://o/x", "priority": -3})
            ]
        );
    }
}
