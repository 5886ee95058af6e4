#!/usr/bin/env bash
# Start-up and memory with a large cache (issue #14's targets): a heavy offline user has thousands
# of tracks, and every HLS segment is an entry of its own.
#
#   tools/bench/index_scale.sh [ENTRIES]      (default 100000; builds the release binary first;
#                                              needs curl, nginx, python3)
#
#   1. ENTRIES resources of 1 KiB each (seeded) are fetched through `streamer serve` from nginx
#      (Debian's, a static server over the files; 16 client threads), until /api/stats counts them
#      all in the index; then the server stops (SIGTERM: it records everything).
#   2. `streamer serve` is started again on that cache directory, 3 times: time from spawn to the
#      first 200 on /healthz, to the first 200 of a cached resource (one of the ENTRIES, not
#      fetched before in that run; nginx is stopped by then, so its bytes can only come from the
#      cache), and VmRSS / RssAnon once it has been idle for 1 s after that request. The same with an
#      empty cache directory, as the floor. Medians are printed.
#   3. nginx is the reference for the first figure: spawn to its first 200 on one of the files.
#
# INDEX_SCALE_CACHE=DIR keeps the files, the filled cache and the origin port it was filled from in
# DIR: a later run with the same DIR and ENTRIES skips step 1 (for measuring changes quickly).
#
# Targets (issue #14, 100k entries): spawn -> /healthz 200 <= 50 ms; first cached media 200 <= 100 ms
# after spawn; idle RSS <= 32 MiB. Nothing here is an assertion: the script prints what it saw.
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in curl nginx python3; do
  command -v "$tool" >/dev/null || { echo "index_scale.sh: $tool is missing (apt-get install -y curl nginx-light python3)" >&2; exit 1; }
done
entries=${1:-100000}
cargo build --release -q -p tools
bin=$PWD/target/release/streamer
# shellcheck source=tools/bench/common.sh
. tools/bench/common.sh

python3 - "$bin" "$work" "$entries" "$(command -v nginx)" "${INDEX_SCALE_CACHE:-}" <<'PY'
import http.client, json, os, random, signal, socket, statistics, subprocess, sys, threading, time

bin, work, entries, nginx, keep = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
if keep:
    os.makedirs(keep, exist_ok=True)
    work = os.path.abspath(keep)
token = "bench"

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def status(port, path):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        c.close()
        return r.status
    except OSError:
        return None

# --- the files: ENTRIES x 1 KiB in 256 directories, from a fixed seed ---
os.chmod(work, 0o755)  # nginx's worker runs as another user
www = os.path.join(work, "www")
names = [f"{i % 256:02x}/f{i:07d}.bin" for i in range(entries)]
marker = os.path.join(work, "filled.json")
filled = None
if keep and os.path.exists(marker):
    with open(marker) as f:
        filled = json.load(f)
    if filled["entries"] != entries:
        sys.exit(f"{keep} holds a cache of {filled['entries']} entries, not {entries}")
else:
    rng = random.Random(14)
    for d in range(256):
        os.makedirs(os.path.join(www, f"{d:02x}"), exist_ok=True)
    for name in names:
        with open(os.path.join(www, name), "wb") as f:
            f.write(rng.randbytes(1024))

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

# --- 1. fill the cache through the server ---
cache = os.path.join(work, "cache")

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

ng, ng_port, _ = start_nginx()
if filled is None:
    fill_s = fill(ng_port)
    with open(marker, "w") as f:
        json.dump({"entries": entries, "origin_port": ng_port, "fill_s": fill_s}, f)
else:
    ng_port, fill_s = filled["origin_port"], filled["fill_s"]
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

def restart(cache_dir, probe):
    port = free_port()
    t0 = time.perf_counter()
    p = serve(cache_dir, ng_port, port)
    while status(port, "/healthz") != 200:
        if p.poll() is not None or time.perf_counter() - t0 > 60:
            sys.exit("streamer serve did not start; see serve.err")
        time.sleep(0.001)
    ready = time.perf_counter() - t0
    media = None
    if probe:
        code = status(port, media_path(ng_port, probe))
        if code != 200:
            sys.exit(f"a cached resource answered {code} after the restart")
        media = time.perf_counter() - t0
    time.sleep(1.0)  # idle
    rss, anon = kib(p.pid, "VmRSS"), kib(p.pid, "RssAnon")
    stop(p)
    return ready, media, rss, anon

pick = random.Random(7)
full = [restart(cache, names[pick.randrange(entries)]) for _ in range(3)]
empty = [restart(os.path.join(work, f"empty{i}"), None) for i in range(3)]
med = lambda xs: statistics.median(xs)
ms = lambda xs: f"{med(xs) * 1000:.1f} ms"
mib = lambda xs: f"{med(xs) / 1024:.1f} MiB"
print(f"entries: {entries} x 1 KiB, filled through the server in {fill_s:.1f} s; index files {index_bytes / 1048576:.1f} MiB")
print(f"{'(median of 3)':32} {'full cache':>14} {'empty cache':>14} {'nginx':>10} {'target':>10}")
print(f"{'spawn -> /healthz 200':32} {ms([r[0] for r in full]):>14} {ms([r[0] for r in empty]):>14} {ms(ng_ready):>10} {'<= 50 ms':>10}")
print(f"{'spawn -> first cached media 200':32} {ms([r[1] for r in full]):>14} {'-':>14} {'-':>10} {'<= 100 ms':>10}")
print(f"{'idle VmRSS':32} {mib([r[2] for r in full]):>14} {mib([r[2] for r in empty]):>14} {'-':>10} {'<= 32 MiB':>10}")
print(f"{'idle RssAnon (heap, stacks)':32} {mib([r[3] for r in full]):>14} {mib([r[3] for r in empty]):>14} {'-':>10} {'':>10}")
PY
