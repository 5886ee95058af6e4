# shellcheck shell=bash
# Shared by the benchmark scripts (sourced, not run): a work directory removed on exit, the
# background children in `pids` killed on exit, and two helpers.
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; fi; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

first_line() { # file -> waits for and prints its first line
  for _ in $(seq 100); do [ -s "$1" ] && { head -1 "$1"; return; }; sleep 0.1; done
  echo "no URL in $1" >&2; exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
