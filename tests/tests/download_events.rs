//! The Rust API of downloads, driven in-process: the progress stream a UI (and the Kotlin Flow)
//! sits on reports increasing byte counts while a download runs and ends with it completed and
//! pinned; pause and resume through the facade; the network gate through `set_network`; a
//! blocking listener that falls far behind still gets every download's final state.

use std::collections::HashMap;
use std::time::Duration;

use embedded_server::{
    BlockingServer, Config, DownloadInfo, DownloadState, DownloadTarget, NetworkState, Server, TrackSpec,
};
use integration_tests::{seeded_bytes, sha256_hex, Origin, MIB};

/// Polls download `id` (bounded, 20 s) until it is in state `want`; returns it then.
async fn wait_state(server: &Server, id: &str, want: DownloadState) -> DownloadInfo {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let info = server.download_info(id).expect("info");
            if info.state == want {
                return info;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never reached {want:?}: {:?}", server.download_info(id)))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn progress_events_increase_and_end_completed_and_pinned() {
    // 1 MiB/s for 3 MiB: long enough for several progress events.
    let origin = Origin::start(&["--throttle", "1048576"]);
    let truth = seeded_bytes(71, 3 * MIB);
    origin.put_file("t.bin", &truth);
    let dir = tempfile::tempdir().expect("cache dir");
    runtime().block_on(async {
        let mut config = Config::new(dir.path());
        config.origins = vec![origin.origin_arg()];
        let server = Server::start(config).await.expect("start");
        let spec = TrackSpec {
            url: format!("{}t.bin", origin.url),
            sha256: Some(sha256_hex(&truth)),
            ..Default::default()
        };
        server.put_track("t", spec).await.expect("put");
        let mut events = server.download_events();
        let started = server
            .download(DownloadTarget::Track("t".into()), 0)
            .await
            .expect("download");
        let mut seen = Vec::new();
        let last = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match events.recv().await {
                    Ok(info) if info.id == started.id => {
                        seen.push(info.clone());
                        if matches!(info.state, DownloadState::Completed | DownloadState::Failed) {
                            return info;
                        }
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => panic!("event stream ended: {e}"),
                }
            }
        })
        .await
        .expect("the download finishes within 30 s");
        assert_eq!(last.state, DownloadState::Completed, "{last:?}");
        assert!(last.pinned, "{last:?}");
        assert_eq!(last.bytes_done, truth.len() as u64);
        assert_eq!(last.bytes_total, Some(truth.len() as u64));
        let running: Vec<u64> = seen
            .iter()
            .filter(|i| i.state == DownloadState::Running)
            .map(|i| i.bytes_done)
            .collect();
        assert!(
            running.iter().filter(|&&b| b > 0 && b < truth.len() as u64).count() >= 2,
            "expected several progress events while running: {running:?}"
        );
        assert!(
            running.windows(2).all(|w| w[0] <= w[1]),
            "progress must not go backwards: {running:?}"
        );
        server.shutdown().await.expect("shutdown");
    });
}

#[test]
fn pause_resume_and_the_network_gate_through_the_facade() {
    let origin = Origin::start(&["--throttle", "1048576"]);
    let truth = seeded_bytes(72, 2 * MIB);
    origin.put_file("u.bin", &truth);
    let dir = tempfile::tempdir().expect("cache dir");
    runtime().block_on(async {
        let mut config = Config::new(dir.path());
        config.origins = vec![origin.origin_arg()];
        let server = Server::start(config).await.expect("start");
        let url = format!("{}u.bin", origin.url);
        server.set_network(NetworkState {
            online: false,
            metered: false,
        });
        let d = server.download(DownloadTarget::Url(url), 0).await.expect("download");
        let parked = wait_state(&server, &d.id, DownloadState::WaitingForNetwork).await;
        assert_eq!(parked.bytes_done, 0, "nothing is fetched while offline");
        server.set_network(NetworkState {
            online: true,
            metered: false,
        });
        wait_state(&server, &d.id, DownloadState::Running).await;
        let paused = server.pause_download(&d.id).await.expect("pause");
        assert_eq!(paused.state, DownloadState::Paused);
        assert!(server.pause_download("nope").await.is_err(), "unknown IDs are errors");
        server.resume_download(&d.id).await.expect("resume");
        let done = wait_state(&server, &d.id, DownloadState::Completed).await;
        assert!(done.pinned && done.bytes_done == truth.len() as u64, "{done:?}");
        server.cancel_download(&d.id).await.expect("cancel");
        assert!(server.download_info(&d.id).is_err(), "a cancelled download is gone");
        assert_eq!(server.stats().pinned_bytes, 0);
        server.shutdown().await.expect("shutdown");
    });
}

#[test]
fn a_listener_that_fell_behind_gets_every_final_state() {
    const DOWNLOADS: usize = 300;
    let origin = Origin::start(&[]);
    for i in 0..DOWNLOADS {
        origin.put_file(&format!("f{i}.bin"), &seeded_bytes(900 + i as u64, 2_000 + i));
    }
    let dir = tempfile::tempdir().expect("cache dir");
    let mut config = Config::new(dir.path());
    config.origins = vec![origin.origin_arg()];
    config.download_workers = 4;
    let server = BlockingServer::start(config).expect("start");
    let mut events = server.download_events().expect("subscribe");
    // Nobody reads while 300 downloads are queued and run: far more updates than the channel
    // holds (256), so the listener is certain to fall behind.
    let ids: Vec<String> = (0..DOWNLOADS)
        .map(|i| {
            let url = format!("{}f{i}.bin", origin.url);
            server.download(DownloadTarget::Url(url), 0).expect("queue").id
        })
        .collect();
    integration_tests::wait_until(Duration::from_secs(60), "every download completed", || {
        server
            .downloads()
            .expect("list")
            .iter()
            .all(|d| d.state == DownloadState::Completed)
    });
    // Now read, keeping the newest snapshot per ID as the Kotlin Flow does, until each is final.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut newest: HashMap<String, DownloadInfo> = HashMap::new();
        while let Some(info) = events.recv() {
            let keep = newest.get(&info.id).is_none_or(|known| known.version < info.version);
            if keep {
                newest.insert(info.id.clone(), info);
            }
            let completed = newest.values().filter(|d| d.state == DownloadState::Completed).count();
            if completed == DOWNLOADS {
                let _ = done_tx.send(newest);
                return;
            }
        }
    });
    let newest = done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the listener saw every download completed");
    reader.join().expect("reader thread");
    for id in &ids {
        assert_eq!(newest[id].state, DownloadState::Completed, "{:?}", newest[id]);
    }
}

#[test]
fn a_server_started_on_a_metered_network_holds_downloads_until_it_is_unmetered() {
    let origin = Origin::start(&[]);
    let truth = seeded_bytes(73, MIB);
    origin.put_file("m.bin", &truth);
    let dir = tempfile::tempdir().expect("cache dir");
    runtime().block_on(async {
        let metered = NetworkState {
            online: true,
            metered: true,
        };
        let mut config = Config::new(dir.path());
        config.origins = vec![origin.origin_arg()];
        config.initial_network = metered;
        let server = Server::start(config).await.expect("start");
        assert_eq!(server.network(), metered, "the gate starts from the configured state");
        let d = server
            .download(DownloadTarget::Url(format!("{}m.bin", origin.url)), 0)
            .await
            .expect("download");
        // The download reaches the gate and parks there, having asked the origin for nothing.
        let parked = wait_state(&server, &d.id, DownloadState::WaitingForNetwork).await;
        assert_eq!(parked.bytes_done, 0, "{parked:?}");
        assert!(
            origin.log_for("/m.bin").is_empty(),
            "fetched on a metered network: {:?}",
            origin.log()
        );
        server.set_network(NetworkState {
            online: true,
            metered: false,
        });
        let done = wait_state(&server, &d.id, DownloadState::Completed).await;
        assert_eq!(done.bytes_done, truth.len() as u64, "{done:?}");
        server.shutdown().await.expect("shutdown");
    });
}
