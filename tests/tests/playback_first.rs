//! Playback first (issue #16): downloads give the backend link to a player that lacks bytes.
//!
//! The downloads come from a dev origin whose connections share one link (`--shared-link`), as
//! on a phone. The player reads a cold track from a second origin that sends it at a trickle
//! (`--throttle`), so it stays hungry for as long as the test needs and the test controls when
//! it is satisfied (by lifting the throttle). Every assertion waits on a condition with a bound:
//! "the downloads took no byte while the player gained N bytes", never "within T seconds".

use std::time::Duration;

use integration_tests::{
    assert_bytes_eq, get, http_with_body, json_bool, json_str, json_u64, seeded_bytes, wait_until, BackgroundRead,
    Faults, Origin, Server, MIB,
};
use serde_json::Value;

/// The shared link of the downloads' origin, bytes per second.
const LINK: &str = "1000000";
/// The track the player reads.
const TRACK: &str = "track.bin";
/// Bytes per second of the player's origin while the player is kept hungry.
const TRICKLE: u64 = 200;
/// How long any condition may take to hold.
const BOUND: Duration = Duration::from_secs(60);

/// The two origins and the files they serve.
struct Backends {
    album: Origin,
    player: Origin,
    tracks: Vec<(String, Vec<u8>)>,
    track: Vec<u8>,
}

impl Backends {
    fn start() -> Backends {
        let album = Origin::start(&["--shared-link", LINK]);
        let tracks: Vec<(String, Vec<u8>)> = (0..2)
            .map(|i| (format!("album-{i}.bin"), seeded_bytes(1600 + i, 4 * MIB)))
            .collect();
        for (name, bytes) in &tracks {
            album.put_file(name, bytes);
        }
        let player = Origin::start(&["--throttle", &TRICKLE.to_string()]);
        let track = seeded_bytes(1700, MIB);
        player.put_file(TRACK, &track);
        Backends {
            album,
            player,
            tracks,
            track,
        }
    }

    fn origins(&self) -> Vec<String> {
        vec![self.album.origin_arg(), self.player.origin_arg()]
    }

    /// Lets the player's origin send at full speed.
    fn lift_trickle(&self) {
        self.player.set_faults(&Faults::default());
    }
}

/// Queues a download of every album track; their IDs.
fn queue(server: &Server, b: &Backends) -> Vec<String> {
    b.tracks
        .iter()
        .map(|(name, _)| {
            let body = serde_json::json!({ "url": format!("{}/{name}", b.album.origin_arg()) }).to_string();
            let r = http_with_body("POST", &server.api_url("downloads"), &[], &body);
            assert_eq!(r.status, 202, "POST api/downloads: {}", r.text());
            json_str(&r.json(), "id").to_string()
        })
        .collect()
}

/// The downloads, in `ids` order.
fn downloads(server: &Server, ids: &[String]) -> Vec<Value> {
    ids.iter()
        .map(|id| server.api_get(&format!("downloads/{id}")))
        .collect()
}

/// Bytes the downloads have cached.
fn done(server: &Server, ids: &[String]) -> u64 {
    downloads(server, ids).iter().map(|d| json_u64(d, "bytes_done")).sum()
}

/// Waits until every download has completed, then checks each byte through the server.
fn assert_completed(server: &Server, b: &Backends, ids: &[String]) {
    wait_until(BOUND * 2, "every download completes", || {
        downloads(server, ids)
            .iter()
            .all(|d| json_str(d, "state") == "completed")
    });
    for (name, bytes) in &b.tracks {
        let r = get(&server.stream_url(&b.album, name));
        assert_eq!(r.status, 200);
        assert_bytes_eq(name, &r.body, bytes);
    }
}

/// Starts the player on the cold track and waits until both downloads hold back for it.
fn play_and_wait_for_the_hold(server: &Server, b: &Backends, ids: &[String]) -> BackgroundRead {
    let player = BackgroundRead::start(&server.stream_url(&b.player, TRACK), &[]);
    wait_until(BOUND, "both downloads hold back", || {
        json_u64(&server.stats(), "fills_yielding") == ids.len() as u64
    });
    player
}

/// Asserts that the downloads take no byte while the player gains `gain` bytes.
fn assert_held_while_the_player_gains(server: &Server, player: &BackgroundRead, ids: &[String], gain: u64) {
    let (held, from) = (done(server, ids), player.received());
    wait_until(BOUND, "the player gains bytes", || player.received() >= from + gain);
    assert_eq!(
        done(server, ids),
        held,
        "the downloads took bytes while the player lacked them"
    );
    let stats = server.stats();
    assert_eq!(json_u64(&stats, "fills_yielding"), ids.len() as u64);
    assert_eq!(json_u64(&stats, "playback_hungry"), 1);
    for d in downloads(server, ids) {
        assert_eq!(json_str(&d, "state"), "running");
        assert!(json_bool(&d, "yielding"), "{d}");
    }
}

#[test]
fn downloads_hold_back_while_a_player_lacks_bytes_and_go_on_when_it_has_them() {
    let b = Backends::start();
    let server = Server::start_with(None, &b.origins(), &[]);
    let ids = queue(&server, &b);
    // Nothing plays: the downloads run at once.
    wait_until(BOUND, "both downloads move bytes", || {
        downloads(&server, &ids).iter().all(|d| json_u64(d, "bytes_done") > 0)
    });
    assert_eq!(json_u64(&server.stats(), "fills_yielding"), 0);

    let player = play_and_wait_for_the_hold(&server, &b, &ids);
    assert_held_while_the_player_gains(&server, &player, &ids, 2 * TRICKLE);

    // The player's track arrives whole: it is satisfied, and the downloads go on and complete.
    b.lift_trickle();
    let got = player.join().expect("the player's response");
    assert_eq!(got.status, 200);
    assert_bytes_eq(TRACK, &got.body, &b.track);
    assert_completed(&server, &b, &ids);
    let stats = server.stats();
    assert_eq!(json_u64(&stats, "fills_yielding"), 0);
    assert_eq!(json_u64(&stats, "playback_hungry"), 0);
    assert!(json_u64(&stats, "yield_ms") > 0);
    assert!(downloads(&server, &ids).iter().all(|d| !json_bool(d, "yielding")));
}

#[test]
fn under_the_share_policy_downloads_never_hold_back() {
    let b = Backends::start();
    let server = Server::start_with(None, &b.origins(), &["--link-policy", "share"]);
    let ids = queue(&server, &b);
    let player = BackgroundRead::start(&server.stream_url(&b.player, TRACK), &[]);
    wait_until(BOUND, "the player is hungry", || {
        json_u64(&server.stats(), "playback_hungry") == 1
    });
    // The album (8 MB at 1 MB/s) completes while the player still gets its track at a trickle.
    assert_completed(&server, &b, &ids);
    assert!(
        player.received() < b.track.len() as u64,
        "the player was not kept hungry"
    );
    let stats = server.stats();
    assert_eq!(json_u64(&stats, "yield_ms"), 0);
    assert_eq!(json_u64(&stats, "fills_yielding"), 0);
    b.lift_trickle();
    assert_bytes_eq(TRACK, &player.join().expect("the player's response").body, &b.track);
}

#[test]
fn downloads_killed_while_holding_back_resume_by_range_after_a_restart() {
    let b = Backends::start();
    let cache = tempfile::tempdir().expect("cache dir");
    let mut server = Server::start_with(Some(cache.path()), &b.origins(), &["--sync-interval-ms", "50"]);
    let ids = queue(&server, &b);
    // Some bytes of each download are recorded before the player arrives.
    wait_until(BOUND, "both downloads record bytes", || {
        let tracks: Vec<Value> = ids
            .iter()
            .map(|id| server.api_get(&format!("downloads/{id}")))
            .collect();
        tracks.iter().all(|d| json_u64(d, "bytes_done") > 256 * 1024)
    });
    let player = play_and_wait_for_the_hold(&server, &b, &ids);
    assert_held_while_the_player_gains(&server, &player, &ids, TRICKLE);
    server.kill9();
    drop(player);

    b.album.clear_log();
    let server = Server::start_with(Some(cache.path()), &b.origins(), &[]);
    assert_completed(&server, &b, &ids);
    for (name, _) in &b.tracks {
        let resumed = b
            .album
            .log_for(&format!("/{name}"))
            .iter()
            .any(|e| e.range_start().is_some_and(|s| s > 0));
        assert!(resumed, "{name} was fetched again from byte 0 after the restart");
    }
}
