#!/usr/bin/env bash
# Start-up and memory with a large cache (issue #14's targets): a heavy offline user has thousands
# of tracks, and every HLS segment is an entry of its own.
#
#   tools/bench/index_scale.sh [ENTRIES]                (default 100000)
#   tools/bench/index_scale.sh --synthetic [ENTRIES]    (for 1M entries and more)
#
# Both build the release binary first and need curl, nginx and python3.
#
#   1. A cache of ENTRIES resources of 1 KiB each (seeded bytes) is made, one of two ways:
#      - by default, by fetching them through `streamer serve` from nginx (Debian's, a static
#        server over the files; 16 client threads), until /api/stats counts them all in the index;
#        then the server stops (SIGTERM: it records everything). About 1 ms per entry.
#      - with --synthetic, by writing the cache directory directly, as that fill would have left
#        it: `index.sqlite` (WAL mode, `user_version` 5, schema steps V1..V5 applied in order, one
#        `resources` row per entry: the URL as key and url, an nginx-like strong ETag and
#        Last-Modified, size 1024, mime text/plain, ranges `0-1024`, distinct increasing
#        last_access in the past, pinned 0, no location, a unique generation) and the data files
#        `data/<sha256(key)[..2]>/<sha256(key)>.<generation in hex>`. No origin serves them: the
#        keys name a port nothing listens on. It mirrors schema version 5 of today's build
#        (`embedded-server/src/cache/index.rs`, file names from `store.rs`): keep it in step
#        with them. The script warns when index.rs's schema steps differ from its copy; a build
#        at a newer schema version carries the cache forward on its first start.
#   2. `streamer serve` is started again on that cache directory, 4 times: time from spawn to the
#      first 200 on /healthz, to the first 200 of a cached resource (one of the ENTRIES, not
#      fetched before in that run; nothing listens on the origin port by then, so its bytes can
#      only come from the cache; they are checked against the seeded ones, and /api/stats must
#      count every entry and byte and no upstream fetch), VmRSS / RssAnon once it has been idle
#      for 1 s after that request, and VmHWM (the start-up peak). The first start after the cache
#      was written is printed on its own (it includes any schema migration); the medians of the
#      3 others beside it. The same 3 times with an empty cache directory, as the floor.
#   3. nginx is the reference for the first figure: spawn to its first 200 on one of the files.
#
# INDEX_SCALE_CACHE=DIR keeps the files, the cache and the origin port it was made for in DIR: a
# later run with the same DIR, mode and ENTRIES skips step 1 (for measuring changes quickly); its
# first start is then no longer the first after writing, and is labelled so. 1M synthetic entries
# take about 4.5 GiB of disk (1 KiB files in 4 KiB blocks) and a million inodes: put DIR (or
# TMPDIR) on a disk, not on a RAM-backed tmpfs. Free space is checked before writing.
#
# Targets (issue #14, 100k entries): spawn -> /healthz 200 <= 50 ms; first cached media 200 <= 100 ms
# after spawn; idle RSS <= 32 MiB. Nothing here is an assertion: the script prints what it saw.
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in curl nginx python3; do
  command -v "$tool" >/dev/null || { echo "index_scale.sh: $tool is missing (apt-get install -y curl nginx-light python3)" >&2; exit 1; }
done
mode=fill
if [ "${1:-}" = --synthetic ]; then
  mode=synthetic
  shift
fi
entries=${1:-100000}
case $entries in
  '' | *[!0-9]*) echo "usage: index_scale.sh [--synthetic] [ENTRIES]" >&2; exit 2 ;;
esac
cargo build --release -q -p tools
bin=$PWD/target/release/streamer
# shellcheck source=tools/bench/common.sh
. tools/bench/common.sh

python3 - "$bin" "$work" "$entries" "$(command -v nginx)" "${INDEX_SCALE_CACHE:-}" "$mode" \
  embedded-server/src/cache/index.rs <<'PY'
import email.utils, hashlib, http.client, json, os, random, re, shutil, signal, socket, sqlite3, statistics, subprocess, sys, threading, time

bin, work, entries, nginx, keep, mode, index_rs = sys.argv[1:8]
entries = int(entries)
if entries < 4:
    sys.exit("index_scale.sh: ENTRIES must be at least 4 (4 restarts each fetch an entry of their own)")
if keep:
    os.makedirs(keep, exist_ok=True)
    work = os.path.abspath(keep)
token = "bench"
START_LIMIT_S = 600  # a start slower than this is reported as a failure

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def get(port, path, timeout=5):
    """(status, body) of a GET, or (None, b"") if the connection failed."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body
    except OSError:
        return None, b""

def status(port, path):
    return get(port, path)[0]

# --- the files: ENTRIES x 1 KiB in 256 directories, from a fixed seed ---
os.chmod(work, 0o755)  # nginx's worker runs as another user
www = os.path.join(work, "www")
names = [f"{i % 256:02x}/f{i:07d}.bin" for i in range(entries)]
cache = os.path.join(work, "cache")
marker = os.path.join(work, "filled.json")
made = None
if keep and os.path.exists(marker):
    with open(marker) as f:
        made = json.load(f)
    if "mode" not in made:  # written before --synthetic existed, after an unknown number of starts
        made.update(mode="fill", starts=None)
    if (made["mode"], made["entries"]) != (mode, entries):
        sys.exit(f"{keep} holds a {made['mode']} cache of {made['entries']} entries, not a {mode} one of "
                 f"{entries}; use another INDEX_SCALE_CACHE")

def synthetic_content(i):
    """The seeded bytes of entry `i` in synthetic mode (each entry has a seed of its own, so any
    one can be checked without generating the others)."""
    return random.Random((14 << 32) + i).randbytes(1024)

def truth(i):
    """The bytes the server must answer for entry `i`."""
    if mode == "synthetic":
        return synthetic_content(i)
    with open(os.path.join(www, names[i]), "rb") as f:
        return f.read()

def check_space(per_entry):
    st = os.statvfs(work)
    need, free = entries * per_entry + (256 << 20), st.f_bavail * st.f_frsize
    if free < need or st.f_favail < entries + 1024:
        sys.exit(f"index_scale.sh: {work} has {free / 2**30:.1f} GiB and {st.f_favail} inodes free; "
                 f"{entries} entries need about {need / 2**30:.1f} GiB and {entries} inodes "
                 "(set INDEX_SCALE_CACHE or TMPDIR to a roomier disk)")

if made is None:
    # One 4 KiB block per file and per data file, plus the index.
    check_space((4096 if mode == "synthetic" else 8192) + 512)
    rng = random.Random(14)
    for d in range(256):
        os.makedirs(os.path.join(www, f"{d:02x}"), exist_ok=True)
    # Synthetic mode needs only the file nginx's start-up is timed on.
    for i, name in enumerate(names if mode == "fill" else names[:1]):
        with open(os.path.join(www, name), "wb") as f:
            f.write(rng.randbytes(1024) if mode == "fill" else synthetic_content(i))

def start_nginx():
    port = free_port()
    conf = os.path.join(work, f"nginx-{port}.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off; worker_processes 1; pid {work}/nginx-{port}.pid; error_log stderr warn;
events {{ worker_connections 1024; }}
http {{ access_log off; sendfile on; server {{ listen 127.0.0.1:{port}; root {www}; }} }}
""")
    t0 = time.perf_counter()
    p = subprocess.Popen([nginx, "-c", conf, "-p", work], stderr=subprocess.DEVNULL)
    while status(port, "/" + names[0]) != 200:
        if p.poll() is not None or time.perf_counter() - t0 > 30:
            sys.exit(f"nginx did not serve the files within 30 s (status {status(port, '/' + names[0])})")
        time.sleep(0.001)
    return p, port, time.perf_counter() - t0

def serve(cache, origin_port, port):
    args = [bin, "serve", "--cache-dir", cache, "--port", str(port), "--token", token,
            "--max-cache-bytes", str(64 << 30), "--origin", f"http://127.0.0.1:{origin_port}"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "serve.err"), "ab"))

def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()

def media_path(origin_port, name):
    return f"/{token}/stream/http/127.0.0.1:{origin_port}/{name}"

# --- 1a. fill the cache through the server ---
def fill(ng_port):
    """Fetches every file once through a server on `cache`, until its index counts them all;
    returns the seconds that took."""
    port = free_port()
    srv = serve(cache, ng_port, port)
    while status(port, "/healthz") != 200:
        if srv.poll() is not None:
            sys.exit("streamer serve exited at start; see serve.err")
        time.sleep(0.01)
    t0 = time.perf_counter()
    todo, lock, failed = list(names), threading.Lock(), []
    def client():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                if not todo:
                    break
                name = todo.pop()
            c.request("GET", media_path(ng_port, name))
            r = c.getresponse()
            body = r.read()
            if r.status != 200 or len(body) != 1024:
                failed.append((name, r.status))
    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        sys.exit(f"{len(failed)} fetches failed, e.g. {failed[:3]}")
    def indexed():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", f"/{token}/api/stats")
        return json.loads(c.getresponse().read())["entries"]
    deadline = time.time() + 120
    while indexed() < entries:
        if time.time() > deadline:
            sys.exit(f"the index holds {indexed()} of {entries} entries after 120 s")
        time.sleep(0.1)
    took = time.perf_counter() - t0
    stop(srv)
    return took

# --- 1b. or write it as that fill would have (schema version 5) ---
# Verbatim from embedded-server/src/cache/index.rs (SCHEMA_V1..SCHEMA_V5).
SCHEMA_V1 = """
CREATE TABLE resources (
    key           TEXT PRIMARY KEY,
    url           TEXT NOT NULL,
    track_id      TEXT,
    etag          TEXT,
    last_modified TEXT,
    size          INTEGER,
    mime          TEXT,
    ranges        TEXT NOT NULL DEFAULT '',
    last_access   INTEGER NOT NULL DEFAULT 0,
    pinned        INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE tracks (
    id     TEXT PRIMARY KEY,
    url    TEXT NOT NULL,
    sha256 TEXT,
    size   INTEGER,
    mime   TEXT
);
"""
SCHEMA_V2 = """
CREATE TABLE downloads (
    id         TEXT PRIMARY KEY,
    key        TEXT NOT NULL,
    url        TEXT NOT NULL,
    track_id   TEXT,
    state      TEXT NOT NULL,
    error      TEXT,
    priority   INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
);
"""
SCHEMA_V3 = """
ALTER TABLE downloads ADD COLUMN variant TEXT;
ALTER TABLE downloads ADD COLUMN members TEXT NOT NULL DEFAULT '';
"""
SCHEMA_V4 = """
ALTER TABLE resources ADD COLUMN location TEXT;
"""
SCHEMA_V5 = """
ALTER TABLE resources ADD COLUMN generation INTEGER;
"""
SCHEMA = [SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5]

def schema_drift():
    """What differs between the copy above and index.rs, as notes for stderr."""
    try:
        with open(index_rs) as f:
            src = f.read()
    except OSError:
        return [f"{index_rs} is gone; cannot check the synthetic schema against it"]
    notes = []
    for v, ours in enumerate(SCHEMA, 1):
        m = re.search(rf'const SCHEMA_V{v}: &str = "(.*?)";', src, re.S)
        if m is None or m.group(1) != ours:
            notes.append(f"SCHEMA_V{v} in {index_rs} differs from this script's copy")
    m = re.search(r"const SCHEMA_VERSION: u32 = (\d+);", src)
    if m and m.group(1) != "5":
        notes.append(f"{index_rs} is at schema version {m.group(1)}: the first start migrates this v5 cache")
    return notes

def synthesize(origin_port):
    """Writes `cache` as the fill through today's build would have left it after fetching every
    file from http://127.0.0.1:ORIGIN_PORT/, and syncs it to disk as the server would have;
    returns the seconds the writing took and the seconds the sync took."""
    shutil.rmtree(cache, ignore_errors=True)  # a write interrupted before its marker
    data = os.path.join(cache, "data")
    os.makedirs(data)
    t0 = time.perf_counter()
    now_ms = int(time.time() * 1000)
    # nginx's validators for a 1 KiB file written now; every file of a bulk write shares them.
    etag = f'"{now_ms // 1000:x}-400"'
    last_modified = email.utils.formatdate(now_ms // 1000, usegmt=True)
    # Generations: unique, and below the clock floor a restarted server starts from
    # (now_ms * 1000), as a fill's are; accesses: one per ms, before now.
    first_generation = now_ms * 1000 - 2 * entries
    def rows():
        shards = set()
        for i, name in enumerate(names):
            key = f"http://127.0.0.1:{origin_port}/{name}"  # what the server makes of media_path()
            digest = hashlib.sha256(key.encode()).hexdigest()
            generation = first_generation + i
            shard = os.path.join(data, digest[:2])
            if digest[:2] not in shards:
                os.makedirs(shard, exist_ok=True)
                shards.add(digest[:2])
            with open(os.path.join(shard, f"{digest}.{generation:x}"), "wb") as f:
                f.write(synthetic_content(i))
            yield (key, key, etag, last_modified, 1024, "text/plain", "0-1024", now_ms - entries + i, 0, None, generation)
    db = sqlite3.connect(os.path.join(cache, "index.sqlite"), isolation_level=None)
    # As Index::open does: WAL first, then each step, then the version.
    db.execute("PRAGMA journal_mode = WAL")
    for step in SCHEMA:
        db.executescript(step)
    db.execute("PRAGMA user_version = 5")
    db.execute("PRAGMA cache_size = -262144")  # this connection only; not stored in the file
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO resources (key, url, etag, last_modified, size, mime, ranges, last_access, pinned,"
        " location, generation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows())
    db.execute("COMMIT")
    db.close()  # checkpoints the WAL into index.sqlite and removes it, as the server's close does
    t1 = time.perf_counter()
    # The server syncs data files before it records them; left to the kernel, writing back these
    # would be timed as part of the first start.
    os.sync()
    return t1 - t0, time.perf_counter() - t1

if mode == "synthetic":
    for note in schema_drift():
        print(f"index_scale.sh: warning: {note}", file=sys.stderr)
ng, ng_port, _ = start_nginx()
if made is None:
    sync_s = None
    if mode == "fill":
        origin_port = ng_port
        made_s = fill(ng_port)
    else:
        origin_port = free_port()  # nothing listens there
        made_s, sync_s = synthesize(origin_port)
    made = {"mode": mode, "entries": entries, "origin_port": origin_port, "fill_s": made_s, "sync_s": sync_s,
            "starts": 0}
    with open(marker, "w") as f:
        json.dump(made, f)
origin_port, made_s = made["origin_port"], made["fill_s"]
stop(ng)
ng_ready = []
for _ in range(3):
    p, _, ready = start_nginx()
    ng_ready.append(ready)
    stop(p)
index_bytes = sum(os.path.getsize(os.path.join(cache, f)) for f in os.listdir(cache) if f.startswith("index"))

# --- 2. restarts on the full cache, and on an empty one ---
def kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0

def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True

def fail(p, why):
    """Stops `p` and exits with `why` and the end of the server's log."""
    if p.poll() is None:
        stop(p)
    with open(os.path.join(work, "serve.err"), "rb") as f:
        tail = f.read().decode(errors="replace").splitlines()[-20:]
    sys.exit("\n".join(tail + [why]))

def restart(cache_dir, probe):
    """One start on `cache_dir`: (spawn -> /healthz 200, spawn -> 200 of entry `probe`, idle
    VmRSS, idle RssAnon, VmHWM), times in seconds and sizes in KiB."""
    port = free_port()
    t0 = time.perf_counter()
    p = serve(cache_dir, origin_port, port)
    while status(port, "/healthz") != 200:
        if p.poll() is not None:
            fail(p, "streamer serve exited at start")
        if time.perf_counter() - t0 > START_LIMIT_S:
            fail(p, f"streamer serve did not answer /healthz within {START_LIMIT_S} s")
        time.sleep(0.001)
    ready = time.perf_counter() - t0
    media = None
    if probe is not None:
        code, body = get(port, media_path(origin_port, names[probe]), timeout=START_LIMIT_S)
        media = time.perf_counter() - t0
        if code != 200:
            fail(p, f"cached entry {probe} answered {code} after the restart")
        if body != truth(probe):
            fail(p, f"cached entry {probe} answered 200 with {len(body)} bytes that are not the seeded ones")
    time.sleep(1.0)  # idle
    rss, anon, hwm = kib(p.pid, "VmRSS"), kib(p.pid, "RssAnon"), kib(p.pid, "VmHWM")
    if probe is not None:
        stats = json.loads(get(port, f"/{token}/api/stats", timeout=60)[1])
        seen = (stats["entries"], stats["cache_bytes"], stats["upstream_fetches"])
        if seen != (entries, entries * 1024, 0):
            fail(p, f"/api/stats counts {seen[0]} entries, {seen[1]} bytes and {seen[2]} upstream fetches; "
                    f"expected {entries}, {entries * 1024} and 0")
    stop(p)
    return ready, media, rss, anon, hwm

if not refused(origin_port):
    sys.exit(f"something listens on the origin port {origin_port}: the cached bytes could come from it")
probes = random.Random(7).sample(range(entries), 4)
def count_starts(n):
    if made["starts"] is not None:
        made["starts"] += n
    with open(marker, "w") as f:
        json.dump(made, f)

starts_before = made["starts"]
first = restart(cache, probes[0])
count_starts(1)
full = [restart(cache, i) for i in probes[1:]]
count_starts(len(full))
empty = [restart(os.path.join(work, f"empty{i}"), None) for i in range(3)]
med = lambda xs: statistics.median(xs)
ms = lambda x: f"{x * 1000:.1f} ms"
mib = lambda x: f"{x / 1024:.1f} MiB"
if mode == "synthetic":
    how = f"written directly (synthetic, schema v5) in {made_s:.1f} s, synced to disk in {made.get('sync_s') or 0:.1f} s"
else:
    how = f"filled through the server in {made_s:.1f} s"
print(f"entries: {entries} x 1 KiB, {how}; index files {index_bytes / 1048576:.1f} MiB")
print(f"{'':32} {'first start*':>14} {'full cache':>14} {'empty cache':>14} {'nginx':>10} {'target':>10}")
print(f"{'':32} {'':>14} {'(median of 3)':>14} {'(median of 3)':>14} {'(median)':>10} {'':>10}")
rows = [
    ("spawn -> /healthz 200", 0, ms, ms(med(ng_ready)), "<= 50 ms"),
    ("spawn -> first cached media 200", 1, ms, "-", "<= 100 ms"),
    ("idle VmRSS", 2, mib, "-", "<= 32 MiB"),
    ("idle RssAnon (heap, stacks)", 3, mib, "-", ""),
    ("VmHWM (peak RSS)", 4, mib, "-", ""),
]
for label, k, unit, ngx, target in rows:
    empty_cell = unit(med([r[k] for r in empty])) if k != 1 else "-"
    print(f"{label:32} {unit(first[k]):>14} {unit(med([r[k] for r in full])):>14} {empty_cell:>14} {ngx:>10} {target:>10}")
if starts_before == 0:
    print("* first start after writing (includes any schema migration)")
else:
    since = "" if starts_before is None else f" and started {starts_before} times since"
    print(f"* first start of this run; the cache was written by an earlier run{since}")
PY
