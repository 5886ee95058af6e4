#!/usr/bin/env bash
# Efficiency on a phone's terms: CPU per GiB served (battery), resident memory with many streams,
# startup time, and time to first byte of an uncached resource — `streamer serve` next to nginx in
# one run on the same files.
#
#   tools/bench/efficiency.sh      (builds the release binary first; needs curl, nginx, python3)
#
# nginx is the reference: a static server over the origin's directory for the cached figures
# (sendfile on, worker_processes 1: its CPU and memory are master + that one worker, summed), and a
# caching reverse proxy (proxy_pass + proxy_cache, upstream keepalive) in front of the same
# `streamer origin` for the uncached time to first byte.
#
#   1. CPU s/GiB: a fully cached 256 MiB file fetched 8 times (2 GiB) with curl -o /dev/null, one
#      after the other; utime+stime of the server (all threads; nginx master + worker) from
#      /proc/PID/stat before and after, in clock ticks (getconf CLK_TCK).
#   2. Memory: VmRSS idle after start, and the peak while 64 clients (curl --limit-rate 64k, each
#      from its own seeded offset of the cached file) read for 5 s, sampled every 50 ms; also PSS
#      (which does not count nginx's shared pages twice) and RssAnon (heap and stacks only).
#   3. Startup: from exec to the first stdout line (streamer only: its base URL) and to the first
#      HTTP 200 on the port (both; polled every 1 ms, bounded), median of 10 starts; streamer starts
#      on a cache whose index holds 1001 resources (1000 small files and the big one).
#   4. Uncached TTFB: 20 fresh 1 MiB files, each fetched once through each server (alternating),
#      the origin on loopback, unthrottled; curl's time_starttransfer, median. The origin itself,
#      fetched directly, is printed as the floor.
#
# The files are generated from fixed seeds, so every run moves the same bytes. Nothing here is an
# assertion: the script prints a table and ratios (streamer / nginx, lower is better for all).
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in curl nginx python3 getconf; do
  command -v "$tool" > /dev/null || { echo "efficiency.sh needs $tool on PATH (Debian: apt-get install nginx curl python3)" >&2; exit 1; }
done
cargo build --release -q -p tools
bin=$PWD/target/release/streamer
big_mib=256
cpu_rounds=8
streams=64
small_count=1000
fresh_count=20
starts=10
hz=$(getconf CLK_TCK)
# shellcheck source=tools/bench/common.sh
source tools/bench/common.sh
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
stop() { # pid -> SIGTERM and wait (bounded), then SIGKILL; forgets the pid
  kill "$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}
stat_json() { # base field -> a number from /TOKEN/api/stats
  curl -sS --fail "${1}api/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1]))' "$2"
}

# --- helpers on /proc: CPU ticks and memory of a process and its descendants, and start times ---
cat > "$work/proc.py" <<'PY'
import os, socket, statistics, subprocess, sys, threading, time

def tree(root):
    """root and all its descendants (nginx: master + workers)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out

def ticks(pids):
    total = 0
    for p in pids:
        with open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
    return total

def mem(pids):
    """(VmRSS, Pss, RssAnon) in KiB, summed over pids."""
    rss = pss = anon = 0
    for p in pids:
        with open(f"/proc/{p}/status") as f:
            status = {l.split(":")[0]: l for l in f}
        rss += int(status["VmRSS"].split()[1])
        anon += int(status["RssAnon"].split()[1])
        with open(f"/proc/{p}/smaps_rollup") as f:
            pss += next(int(l.split()[1]) for l in f if l.startswith("Pss:"))
    return rss, pss, anon

def http_ok(port, path):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            return s.recv(16)[8:13] == b" 200 "  # HTTP/1.0 or 1.1
    except OSError:
        return False

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def startup(n, path, argv):
    """Starts argv n times ({port} replaced by a free port); prints the medians, in ms, of the
    time to the first stdout line and to the first HTTP 200 on GET path."""
    lines, ready = [], []
    for _ in range(n):
        port = free_port()
        cmd = [a.replace("{port}", str(port)) for a in argv]
        got = {}
        t0 = time.perf_counter()
        err = open(os.environ["STARTUP_LOG"], "wb")
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        def read():
            if p.stdout.readline():
                got["line"] = time.perf_counter() - t0
            for _ in p.stdout:  # keep draining
                pass
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            deadline = t0 + 10
            while not http_ok(port, path):
                if p.poll() is not None:
                    sys.exit(f"{cmd[0]} exited ({p.returncode}) before answering; its stderr follows")
                if time.perf_counter() > deadline:
                    sys.exit(f"{cmd[0]} did not answer on port {port} within 10 s; its stderr follows")
                time.sleep(0.001)
            ready.append(time.perf_counter() - t0)
            reader.join(timeout=0.2)
            if "line" in got:
                lines.append(got["line"])
        finally:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            err.close()
    med = lambda xs: f"{statistics.median(xs) * 1000:.1f}" if xs else "-"
    print(med(lines), med(ready))

cmd = sys.argv[1]
if cmd == "count":
    print(len(tree(int(sys.argv[2]))))
elif cmd == "ticks":
    print(ticks(tree(int(sys.argv[2]))))
elif cmd == "mem":
    print(*mem(tree(int(sys.argv[2]))))
elif cmd == "peak":  # pid seconds -> peaks of VmRSS, Pss, RssAnon (KiB) over the window, 50 ms samples
    pid, end = int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
    peak = [0, 0, 0]
    while time.monotonic() < end:
        peak = [max(a, b) for a, b in zip(peak, mem(tree(pid)))]
        time.sleep(0.05)
    print(*peak)
elif cmd == "startup":
    startup(int(sys.argv[2]), sys.argv[3], sys.argv[4:])
PY
proc() { python3 "$work/proc.py" "$@"; }

# --- seeded data: one big file, many small ones, fresh ones for the uncached figure ---
mkdir -p "$work/files/small" "$work/files/fresh"
python3 - "$work/files" "$big_mib" "$small_count" "$fresh_count" <<'PY'
import random, sys
out, big_mib, small, fresh = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
random.seed(1)
with open(f"{out}/big.bin", "wb") as f:
    for _ in range(big_mib):
        f.write(random.randbytes(1 << 20))
for i in range(small):
    random.seed(1000 + i)
    with open(f"{out}/small/s{i:04}.bin", "wb") as f:
        f.write(random.randbytes(8192))
for i in range(fresh):
    random.seed(5000 + i)
    with open(f"{out}/fresh/u{i:02}.bin", "wb") as f:
        f.write(random.randbytes(1 << 20))
PY
offsets=$(python3 -c "import random; random.seed(7); print(' '.join(str(random.randrange(0, ($big_mib - 8) << 20)) for _ in range($streams)))")

"$bin" origin --dir "$work/files" > "$work/origin.out" 2>/dev/null & pids+=($!)
origin=$(first_line "$work/origin.out"); origin=${origin%/}
host=${origin#http://}
token=bench$(python3 -c 'import secrets; print(secrets.token_hex(16))')

# --- nginx: a static server over the same files, and a caching proxy in front of the origin ---
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"   # workers must read the 0700 mktemp dir
nginx_conf() { # dir http-body -> writes dir/nginx.conf
  mkdir -p "$1/logs" "$1/tmp"
  cat > "$1/nginx.conf" <<CONF
$user_line
worker_processes 1; error_log $1/logs/error.log; pid $1/nginx.pid;
events { worker_connections 256; }
http {
  access_log off; sendfile on; tcp_nopush on;
  client_body_temp_path $1/tmp/body; proxy_temp_path $1/tmp/proxy; fastcgi_temp_path $1/tmp/fcgi;
  uwsgi_temp_path $1/tmp/uwsgi; scgi_temp_path $1/tmp/scgi;
  $2
}
CONF
}
wait_http() { # url -> polls (bounded) until it answers 200
  for _ in $(seq 200); do curl -s -o /dev/null --fail "$1" && return; sleep 0.05; done
  echo "no answer from $1" >&2; exit 1
}

static_port=$(free_port)
nginx_conf "$work/nginx" "server { listen 127.0.0.1:$static_port; root $work/files; }"
proxy_port=$(free_port)
nginx_conf "$work/nginx-proxy" "
  proxy_cache_path $work/nginx-proxy/cache keys_zone=media:1m max_size=1g;
  upstream origin { server $host; keepalive 8; }
  server {
    listen 127.0.0.1:$proxy_port;
    location / {
      proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\";
      proxy_cache media; proxy_cache_valid 200 206 1h;
    }
  }"
# nginx takes no port on its command line: the startup runs write a conf per port from this.
sed "s/127.0.0.1:$static_port/127.0.0.1:{port}/" "$work/nginx/nginx.conf" > "$work/nginx/nginx.conf.tmpl"

# --- populate the streamer cache: the big file and 1000 small ones, then stop ---
serve_cmd=("$bin" serve --cache-dir "$work/cache" --origin "$origin" --token "$token")
"${serve_cmd[@]}" > "$work/serve0.out" 2>/dev/null & serve_pid=$!; pids+=("$serve_pid")
base=$(first_line "$work/serve0.out")
curl -sS --fail -o /dev/null "${base}stream/http/$host/big.bin"
for i in $(seq 0 $((small_count - 1))); do
  printf 'url = "%sstream/http/%s/small/s%04d.bin"\noutput = "/dev/null"\n' "$base" "$host" "$i"
done > "$work/small.cfg"
curl -sS --fail --parallel --parallel-max 4 -K "$work/small.cfg" 2> "$work/small.err" || { cat "$work/small.err" >&2; exit 1; }
sleep 1.5   # one sync interval, so every range is recorded before the stop (which syncs too)
stop "$serve_pid"

echo "seeded: ${big_mib} MiB file, $small_count x 8 KiB, $fresh_count x 1 MiB fresh; origin $origin; nginx worker_processes 1 (master + worker summed); CLK_TCK $hz"

# --- 3. startup ---
out=$(STARTUP_LOG=$work/startup.err proc startup "$starts" /healthz "${serve_cmd[@]}" --port "{port}") \
  || { tail -20 "$work/startup.err" >&2; exit 1; }
read -r s_line s_ready <<< "$out"
# nginx: a wrapper writes the conf for the port the python loop picked, then execs nginx
cat > "$work/nginx/start.sh" <<SH
#!/bin/sh
sed "s/{port}/\$1/" "$work/nginx/nginx.conf.tmpl" > "$work/nginx/nginx-\$1.conf"
exec nginx -e "$work/nginx/logs/error.log" -p "$work/nginx" -c "$work/nginx/nginx-\$1.conf" -g "daemon off;"
SH
chmod +x "$work/nginx/start.sh"
out=$(STARTUP_LOG=$work/startup.err proc startup "$starts" /small/s0000.bin "$work/nginx/start.sh" "{port}") \
  || { tail -20 "$work/startup.err" >&2; exit 1; }
read -r _ n_ready <<< "$out"

# --- streamer: idle memory, 64 streams, CPU per GiB (one process, started once) ---
"${serve_cmd[@]}" > "$work/serve.out" 2>/dev/null & serve_pid=$!; pids+=("$serve_pid")
base=$(first_line "$work/serve.out")
entries=$(stat_json "$base" entries)
sleep 1
out=$(proc mem "$serve_pid"); read -r s_idle_rss s_idle_pss s_idle_anon <<< "$out"

streams_run() { # url port pid -> peak VmRSS, Pss, RssAnon (KiB) while $streams slow clients read
  local cpids=() o   # (the clients end by themselves: --max-time)
  for o in $offsets; do
    curl -s -o /dev/null --limit-rate 64k --max-time 5 -r "$o-" "$1" & cpids+=($!)
  done
  (sleep 2.5; { ss -Htn state established "( sport = :$2 )" 2>/dev/null || true; } | wc -l > "$work/conns") & cpids+=($!)
  proc peak "$3" 5.5
  wait "${cpids[@]}" 2>/dev/null || true
}
s_port=${base#http://127.0.0.1:}; s_port=${s_port%%/*}
out=$(streams_run "${base}stream/http/$host/big.bin" "$s_port" "$serve_pid"); read -r s_peak_rss s_peak_pss s_peak_anon <<< "$out"
s_conns=$(cat "$work/conns")

cpu_run() { # url pid -> CPU seconds of pid (and descendants) over $cpu_rounds full fetches, wall seconds
  curl -sS --fail -o /dev/null "$1"   # warm-up: page cache, buffers
  local t0 c0 i
  c0=$(proc ticks "$2"); t0=$(date +%s.%N)
  for i in $(seq "$cpu_rounds"); do curl -sS --fail -o /dev/null "$1"; done
  awk -v a="$c0" -v b="$(proc ticks "$2")" -v hz="$hz" -v t0="$t0" -v t1="$(date +%s.%N)" \
    'BEGIN { printf "%.2f %.2f\n", (b - a) / hz, t1 - t0 }'
}
up_before=$(stat_json "$base" bytes_from_upstream)
out=$(cpu_run "${base}stream/http/$host/big.bin" "$serve_pid"); read -r s_cpu s_wall <<< "$out"
up_after=$(stat_json "$base" bytes_from_upstream)

# --- 4. uncached TTFB (streamer side runs on this same process) ---
nginx -e "$work/nginx-proxy/logs/error.log" -p "$work/nginx-proxy" -c "$work/nginx-proxy/nginx.conf" -g 'daemon off;' & pids+=($!)
wait_http "http://127.0.0.1:$proxy_port/small/s0000.bin"
: > "$work/ttfb.s"; : > "$work/ttfb.n"; : > "$work/ttfb.o"
for i in $(seq 0 $((fresh_count - 1))); do
  f=$(printf 'fresh/u%02d.bin' "$i")
  curl -sS --fail -o /dev/null -w '%{time_starttransfer}\n' "${base}stream/http/$host/$f" >> "$work/ttfb.s"
  curl -sS --fail -o /dev/null -w '%{time_starttransfer}\n' "http://127.0.0.1:$proxy_port/$f" >> "$work/ttfb.n"
  curl -sS --fail -o /dev/null -w '%{time_starttransfer}\n' "$origin/$f" >> "$work/ttfb.o"
done
stop "$serve_pid"

# --- nginx static: idle memory, 64 streams, CPU per GiB ---
nginx -e "$work/nginx/logs/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' & nginx_pid=$!; pids+=("$nginx_pid")
wait_http "http://127.0.0.1:$static_port/small/s0000.bin"
sleep 1
out=$(proc mem "$nginx_pid"); read -r n_idle_rss n_idle_pss n_idle_anon <<< "$out"
nprocs=$(proc count "$nginx_pid")
out=$(streams_run "http://127.0.0.1:$static_port/big.bin" "$static_port" "$nginx_pid"); read -r n_peak_rss n_peak_pss n_peak_anon <<< "$out"
n_conns=$(cat "$work/conns")
out=$(cpu_run "http://127.0.0.1:$static_port/big.bin" "$nginx_pid"); read -r n_cpu n_wall <<< "$out"
stop "$nginx_pid"

# --- table ---
gib=$(awk -v m="$big_mib" -v r="$cpu_rounds" 'BEGIN { print m * r / 1024 }')
s_cpg=$(awk -v c="$s_cpu" -v g="$gib" 'BEGIN { printf "%.3f", c / g }')
n_cpg=$(awk -v c="$n_cpu" -v g="$gib" 'BEGIN { printf "%.3f", c / g }')
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
ms() { awk -v s="$1" 'BEGIN { printf "%.2f", s * 1000 }'; }
s_ttfb=$(median < "$work/ttfb.s"); n_ttfb=$(median < "$work/ttfb.n"); o_ttfb=$(median < "$work/ttfb.o")
row() { printf "  %-44s %12s %12s %9s\n" "$1" "$2" "$3" "$4"; }
echo
row "" "streamer" "nginx" "s/n"
row "CPU s/GiB, cached, $cpu_rounds x $big_mib MiB" "$s_cpg" "$n_cpg" "$(ratio "$s_cpg" "$n_cpg")"
row "  (CPU s, wall s for the ${gib} GiB)" "$s_cpu, $s_wall" "$n_cpu, $n_wall" ""
row "RSS idle after start, MiB" "$(mib "$s_idle_rss")" "$(mib "$n_idle_rss")" "$(ratio "$s_idle_rss" "$n_idle_rss")"
row "RSS peak, $streams streams at 64 KiB/s, MiB" "$(mib "$s_peak_rss")" "$(mib "$n_peak_rss")" "$(ratio "$s_peak_rss" "$n_peak_rss")"
row "PSS idle after start, MiB" "$(mib "$s_idle_pss")" "$(mib "$n_idle_pss")" "$(ratio "$s_idle_pss" "$n_idle_pss")"
row "PSS peak, $streams streams, MiB" "$(mib "$s_peak_pss")" "$(mib "$n_peak_pss")" "$(ratio "$s_peak_pss" "$n_peak_pss")"
row "RssAnon idle after start, MiB" "$(mib "$s_idle_anon")" "$(mib "$n_idle_anon")" "$(ratio "$s_idle_anon" "$n_idle_anon")"
row "RssAnon peak, $streams streams, MiB" "$(mib "$s_peak_anon")" "$(mib "$n_peak_anon")" "$(ratio "$s_peak_anon" "$n_peak_anon")"
row "  (connections seen mid-run)" "$s_conns" "$n_conns" ""
row "startup to first stdout line, ms (median $starts)" "$s_line" "-" ""
row "startup to first HTTP 200, ms (median $starts)" "$s_ready" "$n_ready" "$(ratio "$s_ready" "$n_ready")"
row "uncached TTFB, ms (median $fresh_count)" "$(ms "$s_ttfb")" "$(ms "$n_ttfb")" "$(ratio "$s_ttfb" "$n_ttfb")"
row "  (origin direct, the floor)" "$(ms "$o_ttfb")" "" ""
echo
echo "  streamer index at start: $entries entries; bytes from upstream during the cached runs: $((up_after - up_before))"
echo "  nginx processes summed: $nprocs (master + worker_processes 1); files in nginx's proxy_cache: $(find "$work/nginx-proxy/cache" -type f | wc -l)"
