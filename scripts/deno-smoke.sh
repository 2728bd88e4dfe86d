#!/usr/bin/env bash
# Smoke test of Basalt under Deno 2: starts the server with `deno task start` (deno.json),
# checks GET /health and GET /ready, then stops it with SIGTERM and expects exit code 0. Uses
# the pinned Deno from node_modules (the `deno` npm package), a loopback port it picks itself and a fresh
# data directory. With DATABASE_URL set the server uses that Postgres, which has no
# pgvector in CI; otherwise the embedded PGlite, which has it.
#
#   scripts/deno-smoke.sh            exit status 0 and a PASS line, or non-zero and a FAIL line
set -euo pipefail
exec </dev/null

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

deno_bin="$repo_root/node_modules/.bin/deno"
startup_bound_seconds=90
shutdown_bound_seconds=30

work_dir="$(mktemp -d "${TMPDIR:-/tmp}/basalt-deno-smoke.XXXXXX")"
server_log="$work_dir/server.log"
deno_pid=""

fail() {
  echo "deno-smoke: FAIL: $*" >&2
  if [[ -s "$server_log" ]]; then
    echo "--- server output (last 40 lines) ---" >&2
    tail -n 40 "$server_log" >&2
  fi
  exit 1
}

cleanup() {
  # Only the server this script started, by its pid.
  if [[ -n "$deno_pid" ]] && kill -0 "$deno_pid" 2>/dev/null; then
    kill -KILL "$deno_pid" 2>/dev/null || true
    wait "$deno_pid" 2>/dev/null || true
  fi
  rm -rf "$work_dir"
}
trap cleanup EXIT

[[ -x "$deno_bin" ]] || fail "no Deno at $deno_bin (run npm ci: the deno npm package provides it)"
"$deno_bin" --version | head -n 1 | grep -q '^deno 2\.' || fail "expected Deno 2, got: $("$deno_bin" --version | head -n 1)"


# Exactly what the README says to run: `deno task start`. A fresh data directory; DATABASE_URL,
# when set, passes through the environment. deno task forwards SIGTERM to the server it runs.
# PORT=0: the server picks a free port and its log line names it (a port picked here first could
# be taken by another process before the server binds it).
PORT=0 HOST=127.0.0.1 BASALT_DATA_DIR="$work_dir/data" \
  "$deno_bin" task start >"$server_log" 2>&1 &
deno_pid=$!

# GET $1 → sets http_status and http_body; false when no HTTP answer came.
http_get() {
  local response
  response="$(curl --silent --show-error --noproxy '*' --max-time 10 --write-out '\n%{http_code}' "$base_url$1" 2>/dev/null)" || return 1
  http_status="${response##*$'\n'}"
  http_body="${response%$'\n'*}"
}

deadline=$((SECONDS + startup_bound_seconds))
base_url=""
until [[ -n "$base_url" ]]; do
  kill -0 "$deno_pid" 2>/dev/null || fail "Deno exited while starting"
  ((SECONDS < deadline)) || fail "no 'Basalt listening on' line within ${startup_bound_seconds}s"
  base_url="$(grep -o 'Basalt listening on http://127\.0\.0\.1:[0-9]*' "$server_log" | head -n 1 | sed 's/^Basalt listening on //')" || true
  [[ -n "$base_url" ]] || sleep 0.5
done
until http_get /health && [[ "$http_status" == 200 ]]; do
  kill -0 "$deno_pid" 2>/dev/null || fail "Deno exited while starting"
  ((SECONDS < deadline)) || fail "GET /health did not answer 200 within ${startup_bound_seconds}s"
  sleep 1
done
[[ "$http_body" == '{"status":"ok"}' ]] || fail "GET /health answered $http_body"
[[ "$(ps -o comm= -p "$deno_pid")" == deno ]] || fail "pid $deno_pid is not the deno task process"

if [[ -n "${DATABASE_URL:-}" ]]; then expected_pgvector=false; else expected_pgvector=true; fi
http_get /ready || fail "GET /ready got no answer"
[[ "$http_status" == 200 ]] || fail "GET /ready answered $http_status: $http_body"
[[ "$http_body" == *'"status":"ready"'* ]] || fail "GET /ready is not ready: $http_body"
[[ "$http_body" == *"\"pgvector\":$expected_pgvector"* ]] || fail "GET /ready should report pgvector $expected_pgvector: $http_body"

kill -TERM "$deno_pid"
deadline=$((SECONDS + shutdown_bound_seconds))
while kill -0 "$deno_pid" 2>/dev/null; do
  ((SECONDS < deadline)) || fail "Deno did not exit within ${shutdown_bound_seconds}s of SIGTERM"
  sleep 0.2
done
exit_code=0
wait "$deno_pid" || exit_code=$?
deno_pid=""
((exit_code == 0)) || fail "Deno exited with code $exit_code after SIGTERM"
grep -q '"shutting down: waiting for' "$server_log" || fail "no shutdown line in the server log"

echo "deno-smoke: PASS: deno task start ($("$deno_bin" --version | head -n 1)) served /health and /ready (pgvector $expected_pgvector) and exited 0 on SIGTERM"

# Document extraction (PDF via unpdf, DOCX via mammoth) under the same Deno and deno.json.
"$deno_bin" task smoke:extraction >"$work_dir/extraction.log" 2>&1 || {
  cat "$work_dir/extraction.log" >&2
  fail "document extraction under Deno failed"
}
echo "deno-smoke: PASS: document extraction (PDF, DOCX) under Deno"
