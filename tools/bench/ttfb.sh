#!/usr/bin/env bash
# Time to first byte with curl: a cached Range request through `streamer serve` next to nginx
# serving the same file from disk, and seeks into uncached regions behind a throttled origin.
#
#   tools/bench/ttfb.sh            (builds the release binary first; needs curl and nginx)
#
# Prints medians and 90th percentiles of curl's time_starttransfer (the first response byte;
# `streamer serve` sends its head only once the first body byte is available).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p tools
bin=target/release/streamer
# shellcheck source=tools/bench/common.sh
source tools/bench/common.sh
stats() { sort -n | awk '{a[NR]=$1} END {printf "median %.2f ms, p90 %.2f ms (n=%d)\n", a[int((NR+1)/2)]*1000, a[int(NR*0.9+0.5)]*1000, NR}'; }

mkdir -p "$work/files" "$work/slow"
head -c 20000000 /dev/urandom > "$work/files/big.bin"
cp "$work/files/big.bin" "$work/slow/big.bin"

"$bin" origin --dir "$work/files" > "$work/origin.out" 2>/dev/null & pids+=($!)
origin=$(first_line "$work/origin.out"); origin=${origin%/}
"$bin" serve --cache-dir "$work/cache" --origin "$origin" > "$work/serve.out" 2>/dev/null & pids+=($!)
base=$(first_line "$work/serve.out")
url="${base}stream/http/${origin#http://}/big.bin"
curl -s -o /dev/null "$url"   # cache it fully

port=$(free_port)
mkdir -p "$work/nginx/logs"
cat > "$work/nginx/nginx.conf" <<CONF
user root; worker_processes 1; error_log $work/nginx/logs/error.log; pid $work/nginx/nginx.pid;
events { worker_connections 64; }
http { access_log off; sendfile on; server { listen 127.0.0.1:$port; root $work/files; } }
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' & pids+=($!)
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/big.bin" -r 0-0 && break; sleep 0.1; done

offsets=$(python3 -c 'import random; random.seed(7); print(" ".join(str(random.randrange(0, 19900000)) for _ in range(50)))')
echo "cached Range request (64 KiB at 50 seeded offsets):"
printf "  streamer serve: "
for o in $offsets; do curl -s -o /dev/null -w '%{time_starttransfer}\n' -r "$o-$((o + 65535))" "$url"; done | stats
printf "  nginx:          "
for o in $offsets; do curl -s -o /dev/null -w '%{time_starttransfer}\n' -r "$o-$((o + 65535))" "http://127.0.0.1:$port/big.bin"; done | stats

"$bin" origin --dir "$work/slow" --throttle 262144 > "$work/slow.out" 2>/dev/null & pids+=($!)
slow=$(first_line "$work/slow.out"); slow=${slow%/}
"$bin" serve --cache-dir "$work/cache2" --origin "$slow" > "$work/serve2.out" 2>/dev/null & pids+=($!)
base2=$(first_line "$work/serve2.out")
url2="${base2}stream/http/${slow#http://}/big.bin"
curl -s -o /dev/null --max-time 60 "$url2" & pids+=($!)   # a sequential player at 256 KiB/s
sleep 1
echo "seek into an uncached region, origin throttled to 256 KiB/s while a sequential reader runs:"
printf "  streamer serve: "
for o in 2000000 5000000 8000000 11000000 14000000 17000000 19000000 3000000 6000000 9000000; do
  curl -s -o /dev/null --max-time 10 -w '%{time_starttransfer}\n' -r "$o-$((o + 65535))" "$url2"
done | stats
