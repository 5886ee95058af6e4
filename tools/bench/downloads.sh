#!/usr/bin/env bash
# Downloader throughput: `streamer download` (standalone, default worker count) pinning 100 files
# of 5 MiB from a local `streamer origin`, the same through a running server's download API, next
# to `curl --parallel --parallel-max 2` fetching the same 100 URLs into files — the same parallelism as the default 2 workers, so the ratio shows
# what the downloader's bookkeeping (sparse files, range index, syncs) costs over plain HTTP.
#
#   tools/bench/downloads.sh       (builds the release binary first; needs curl and python3)
#
# The files are generated from fixed seeds, so every run moves the same bytes. Both clients read
# from the same origin over loopback, one after the other, with the origin's files in the page
# cache. Afterwards the origin is stopped and a few downloads are read back through
# `streamer serve --cache-dir` on the downloader's cache, byte-compared with the originals: the
# pinned copies must serve offline.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p tools
bin=$PWD/target/release/streamer
count=100
size=$((5 * 1024 * 1024))
# shellcheck source=tools/bench/common.sh
source tools/bench/common.sh
now() { date +%s.%N; }
rate() { # seconds -> MiB/s for all the files
  awk -v s="$1" -v b=$((count * size)) 'BEGIN { printf "%.1f", b / 1048576 / s }'
}

mkdir -p "$work/files" "$work/curl"
python3 - "$work/files" "$count" "$size" <<'PY'
import random, sys
out, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(count):
    random.seed(i)
    with open(f"{out}/f{i:03}.bin", "wb") as f:
        f.write(random.randbytes(size))
PY

"$bin" origin --dir "$work/files" > "$work/origin.out" 2>/dev/null & origin_pid=$!; pids+=("$origin_pid")
origin=$(first_line "$work/origin.out"); origin=${origin%/}
urls=()
for i in $(seq 0 $((count - 1))); do urls+=("$origin/$(printf 'f%03d.bin' "$i")"); done
echo "$count files of $((size / 1048576)) MiB from $origin"

# (a) the downloader, standalone: in-process server on a fresh cache, default worker count.
url_args=()
for u in "${urls[@]}"; do url_args+=(--url "$u"); done
start=$(now)
if "$bin" download --cache-dir "$work/cache" --origin "$origin" "${url_args[@]}" > "$work/download.out" 2> "$work/download.err"; then
  download_ok=1
else
  download_ok=0
fi
download_secs=$(awk -v a="$start" -v b="$(now)" 'BEGIN { print b - a }')
if [ "$download_ok" = 1 ]; then
  printf "  streamer download: %6.2f s  %8s MiB/s\n" "$download_secs" "$(rate "$download_secs")"
else
  echo "  streamer download: FAILED after ${download_secs} s:" >&2
  tail -5 "$work/download.err" >&2
fi

# (b) curl, two transfers at a time, into files.
for i in "${!urls[@]}"; do
  printf 'url = "%s"\noutput = "%s/f%03d.bin"\n' "${urls[$i]}" "$work/curl" "$i"
done > "$work/curl.cfg"
start=$(now)
# (curl 7.88 draws its parallel progress meter even with -s: keep stderr for failures only)
curl -sS --fail --parallel --parallel-max 2 -K "$work/curl.cfg" 2> "$work/curl.err" || { cat "$work/curl.err" >&2; exit 1; }
curl_secs=$(awk -v a="$start" -v b="$(now)" 'BEGIN { print b - a }')
printf "  curl --parallel-max 2: %6.2f s  %8s MiB/s\n" "$curl_secs" "$(rate "$curl_secs")"
cmp -s "$work/files/f000.bin" "$work/curl/f000.bin" || { echo "curl fetched wrong bytes" >&2; exit 1; }

# (c) the downloader inside a running server: from the first POST until every download reads
# `completed` (polled every 10 ms). No process start-up or shutdown, no final sync: the closest
# to what an app sees, and to curl, which does not fsync either.
"$bin" serve --cache-dir "$work/cache-api" --origin "$origin" > "$work/serve-api.out" 2>/dev/null & api_pid=$!; pids+=("$api_pid")
api_base=$(first_line "$work/serve-api.out")
api_secs=$(python3 - "$api_base" "${urls[@]}" <<'PY'
import json, sys, time, urllib.request
base, urls = sys.argv[1], sys.argv[2:]
start = time.monotonic()
for u in urls:
    req = urllib.request.Request(base + "api/downloads", data=json.dumps({"url": u}).encode(), method="POST")
    urllib.request.urlopen(req).read()
while True:
    states = [d["state"] for d in json.load(urllib.request.urlopen(base + "api/downloads"))]
    if "failed" in states:
        sys.exit("a download failed")
    if len(states) == len(urls) and all(s == "completed" for s in states):
        break
    time.sleep(0.01)
print(time.monotonic() - start)
PY
)
kill "$api_pid"; wait "$api_pid" 2>/dev/null || true
printf "  server downloads API: %6.2f s  %8s MiB/s\n" "$api_secs" "$(rate "$api_secs")"

[ "$download_ok" = 1 ] || exit 1
awk -v d="$download_secs" -v c="$curl_secs" -v a="$api_secs" \
  'BEGIN { printf "  ratio vs curl: streamer download (end to end, incl. start-up and final sync) %.2f, server API %.2f\n", c / d, c / a }'

# The pins serve offline: stop the origin, read a few files back through `streamer serve`.
kill "$origin_pid"; wait "$origin_pid" 2>/dev/null || true
"$bin" serve --cache-dir "$work/cache" --origin "$origin" > "$work/serve.out" 2>/dev/null & pids+=($!)
base=$(first_line "$work/serve.out")
for i in 0 $((count / 2)) $((count - 1)); do
  name=$(printf 'f%03d.bin' "$i")
  curl -sS --fail -o "$work/check.bin" "${base}stream/http/${origin#http://}/$name"
  cmp -s "$work/files/$name" "$work/check.bin" || { echo "$name: served bytes differ from the origin's" >&2; exit 1; }
done
echo "  offline check: 3 downloaded files served byte-exact by streamer serve with the origin stopped"
