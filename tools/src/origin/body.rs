//! File bodies: a producer task reads the file in chunks into a bounded channel, paced by the live
//! throttle and the shared link and cut where a drop fault chose, and [`ChannelBody`] hands the chunks to hyper,
//! counting them into the request log. An error ends the body by aborting the connection, so a
//! client always learns that a body is incomplete and never receives padding.

use std::io::{self, SeekFrom};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::faults::Switchboard;
use super::log::LogSlot;

/// Largest body chunk read from disk and handed to hyper, in bytes.
const CHUNK: u64 = 64 * 1024;
/// Chunks a producer may run ahead of hyper; small so throttling tracks the wire.
const CHANNEL_CHUNKS: usize = 4;
/// A throttled body is sent in about this many chunks per second.
const THROTTLE_TICKS_PER_SEC: u64 = 20;

/// Starts the producer task for a file body and returns the body hyper polls.
pub(super) fn stream(
    switches: Arc<Switchboard>,
    file: File,
    start: u64,
    len: u64,
    cut_at: Option<u64>,
    slot: Arc<LogSlot>,
) -> ChannelBody {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    tokio::spawn(pump(switches, file, start, len, cut_at, tx));
    ChannelBody::new(rx, slot, len)
}

/// Producer of a file body: reads `len` bytes from `start`, paced by the live throttle and the
/// shared link, and cut at
/// `cut_at` bytes when a drop fault chose this response. An error sent down the channel makes
/// hyper abort the connection, which is how the client learns the body is incomplete.
async fn pump(
    switches: Arc<Switchboard>,
    mut file: File,
    start: u64,
    len: u64,
    cut_at: Option<u64>,
    tx: mpsc::Sender<io::Result<Bytes>>,
) {
    if let Err(err) = pump_chunks(&switches, &mut file, start, len, cut_at, &tx).await {
        // The receiver may be gone already; then nobody needs to hear about it.
        let _ = tx.send(Err(err)).await;
    }
}

async fn pump_chunks(
    switches: &Switchboard,
    file: &mut File,
    start: u64,
    len: u64,
    cut_at: Option<u64>,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) -> io::Result<()> {
    if start > 0 {
        file.seek(SeekFrom::Start(start)).await?;
    }
    let limit = cut_at.map_or(len, |cut| cut.min(len));
    let mut pacer = Pacer::new();
    let mut sent = 0;
    while sent < limit {
        let mut chunk = pacer.next_chunk(switches.throttle_bps()).await.min(limit - sent);
        // Room in the channel first: a body nobody reads must not hold the shared link.
        let Ok(permit) = tx.reserve().await else {
            return Ok(()); // the client went away
        };
        if let Some(bps) = switches.shared_link_bps() {
            chunk = chunk.min(chunk_at(bps));
            switches.cross_link(chunk, bps).await;
        }
        let mut buf = vec![0; usize::try_from(chunk).map_err(io::Error::other)?];
        // A file that shrank under us ends in an error (and an aborted response), never padding.
        file.read_exact(&mut buf).await?;
        permit.send(Ok(Bytes::from(buf)));
        pacer.sent(chunk);
        sent += chunk;
    }
    if sent < len {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!("origin fault: connection dropped after {sent} body bytes"),
        ));
    }
    Ok(())
}

/// The chunk size for a rate of `bps` bytes per second: about [`THROTTLE_TICKS_PER_SEC`] chunks a
/// second, so paced bytes flow smoothly and bodies sharing a link take short turns.
fn chunk_at(bps: u64) -> u64 {
    (bps / THROTTLE_TICKS_PER_SEC).clamp(1, CHUNK)
}

/// Spaces chunks so that bytes leave at the throttle rate; restarts its clock when the rate
/// changes, so a new rate applies from that moment on.
struct Pacer {
    rate: Option<u64>,
    since: Instant,
    bytes: u64,
}

impl Pacer {
    fn new() -> Self {
        Pacer {
            rate: None,
            since: Instant::now(),
            bytes: 0,
        }
    }

    /// Waits until the next chunk is due and returns its size in bytes.
    async fn next_chunk(&mut self, rate: Option<u64>) -> u64 {
        let Some(bps) = rate else {
            self.rate = None;
            return CHUNK;
        };
        if self.rate != Some(bps) {
            *self = Pacer {
                rate: Some(bps),
                since: Instant::now(),
                bytes: 0,
            };
        }
        let nanos = u128::from(self.bytes) * 1_000_000_000 / u128::from(bps);
        let offset = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        if let Some(due) = self.since.checked_add(offset) {
            tokio::time::sleep_until(due).await;
        }
        chunk_at(bps)
    }

    fn sent(&mut self, bytes: u64) {
        self.bytes += bytes;
    }
}

/// The body hyper polls for a file: chunks from the producer task, counted into the log entry as
/// they are handed over. `complete` is set when the last byte is handed over, before the client
/// can have read it, so a client that read a whole body always finds its entry complete.
///
/// An error from the producer aborts the connection. hyper drops what it has buffered but not yet
/// written when that happens, so the error is held back for one `Pending`: hyper flushes whenever
/// the body is pending, and the bytes before the cut really reach the client.
pub(super) struct ChannelBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    slot: Arc<LogSlot>,
    /// Body length in bytes that the response promised.
    expected: u64,
    /// Bytes handed to hyper so far.
    sent: u64,
    /// Data was handed over since hyper last saw `Pending` (it may still sit in hyper's buffer).
    unflushed: bool,
    /// An error waiting for hyper to flush first.
    held_error: Option<io::Error>,
}

impl ChannelBody {
    fn new(rx: mpsc::Receiver<io::Result<Bytes>>, slot: Arc<LogSlot>, expected: u64) -> Self {
        ChannelBody {
            rx,
            slot,
            expected,
            sent: 0,
            unflushed: false,
            held_error: None,
        }
    }

    /// Returns `err` now if hyper has flushed everything, else holds it for one `Pending`.
    fn fail(&mut self, err: io::Error, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if !self.unflushed {
            return Poll::Ready(Some(Err(err)));
        }
        self.unflushed = false;
        self.held_error = Some(err);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if let Some(err) = this.held_error.take() {
            return Poll::Ready(Some(Err(err)));
        }
        let polled = this.rx.poll_recv(cx);
        if polled.is_pending() {
            this.unflushed = false;
        }
        match ready!(polled) {
            Some(Ok(data)) => {
                this.sent += data.len() as u64;
                this.unflushed = true;
                this.slot.body_progress(this.sent, this.sent >= this.expected);
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Some(Err(err)) => this.fail(err, cx),
            // The producer stopped without saying why: still never end a body short silently.
            None if this.sent < this.expected => this.fail(
                io::Error::new(io::ErrorKind::UnexpectedEof, "body producer stopped early"),
                cx,
            ),
            None => Poll::Ready(None),
        }
    }
}
