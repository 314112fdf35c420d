#!/usr/bin/env bash
# Failover takeover time: two iamlease replicas on one PostgreSQL database, replica A under
# issue load (short TTLs, so it has issues and revocations in flight), then `kill -9` of A.
# Two times per kill: until B has claimed every lease A had in flight (`pending` or
# `revoking`, owned by A: the detection), and until B has finished them all (rolled back or
# revoked in AWS, and the rows gone).
# Repeated over ROUNDS kills; prints each, the median and the max.
#
# Usage: bench/replicas/takeover.sh [-r ROUNDS] [-f FAILOVER_TIMEOUT]   (defaults 10, 15s;
# BENCH_PROFILE=release to bench a release build; the default is the debug build the tests use)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
rounds=10 failover=15s
while getopts "r:f:" o; do case "$o" in r) rounds="$OPTARG";; f) failover="$OPTARG";; *) exit 2;; esac; done
profile="${BENCH_PROFILE:-debug}"
token=bench-root-token
work="$(mktemp -d)"
pids=()
pg_dir=""
cleanup() {
  for p in "${pids[@]}" $(cat "$work"/pids 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  [ -n "$pg_dir" ] && scripts/start-postgres --stop "$pg_dir"
  rm -rf "$work"
}
trap cleanup EXIT

scripts/install-deps >/dev/null
if [ "$profile" = release ]; then cargo build --quiet --release --bin iamlease; else cargo build --quiet --bin iamlease; fi
bin="${CARGO_TARGET_DIR:-$root/target}/$profile/iamlease"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api() { # METHOD SERVER PATH [JSON]
  curl -sf -X "$1" -H "X-Vault-Token: $token" ${4:+-d "$4"} "$2/v1/$3" >/dev/null
}

out="$(MOTO_LOG="$work/moto.log" scripts/start-moto)"
moto="$(sed -n 1p <<<"$out")"; pids+=("$(sed -n 2p <<<"$out")")
pg="$(scripts/start-postgres)"
pg_url="$(sed -n 1p <<<"$pg")"; pg_dir="$(sed -n 2p <<<"$pg")"
key="$(python3 -c 'import os,base64; print(base64.b64encode(os.urandom(32)).decode())')"

start_replica() { # DATABASE -> prints "PID URL"
  local port; port="$(free_port)"
  IAMLEASE_LISTEN="127.0.0.1:$port" IAMLEASE_STORAGE="${pg_url%/postgres}/$1" IAMLEASE_MASTER_KEY="$key" \
    IAMLEASE_FAILOVER_TIMEOUT="$failover" IAMLEASE_LOG=warn \
    "$bin" server --dev --dev-root-token "$token" >"$work/server-$port.log" 2>&1 &
  local pid=$!
  echo "$pid" >>"$work/pids"
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$port/v1/sys/health" >/dev/null && break; sleep 0.1; done
  echo "$pid http://127.0.0.1:$port"
}

times=()
for round in $(seq 1 "$rounds"); do
  db="takeover_$round"
  psql -q "$pg_url" -c "CREATE DATABASE $db"
  db_url="${pg_url%/postgres}/$db"
  read -r a_pid a_url < <(start_replica "$db")
  read -r b_pid b_url < <(start_replica "$db")
  api POST "$a_url" sys/mounts/bench '{"type":"aws"}'
  api POST "$a_url" bench/config/root "{\"access_key\":\"AKIABENCH\",\"secret_key\":\"bench\",\"region\":\"us-east-1\",\"iam_endpoint\":\"$moto\",\"sts_endpoint\":\"$moto\"}"
  api POST "$a_url" bench/roles/bench '{"credential_type":"iam_user","policy_document":"{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"s3:ListBucket\",\"Resource\":\"*\"}]}"}'
  .venv/bin/python bench/replicas/load.py --servers "$a_url" --mounts bench --token "$token" \
    -c 8 --ttl 2s --until-killed &
  load=$!
  sleep 4
  a_id="$(psql -qtA "$db_url" -c "SELECT id FROM replicas WHERE pid = $a_pid")"
  kill -9 "$a_pid"
  killed="$(date +%s.%N)"
  kill "$load" 2>/dev/null || true
  wait "$load" 2>/dev/null || true
  in_flight="$(psql -qtA "$db_url" -c "SELECT count(*) FROM leases WHERE owner = '$a_id' AND state IN ('pending', 'revoking')")"
  psql -qtA "$db_url" -c "CREATE TABLE takeover_watch AS SELECT id FROM leases WHERE owner = '$a_id' AND state IN ('pending', 'revoking')"
  claimed=""
  while :; do
    left="$(psql -qtA "$db_url" -c "SELECT count(*), count(*) FILTER (WHERE owner = '$a_id') FROM leases WHERE id IN (SELECT id FROM takeover_watch)")"
    if [ -z "$claimed" ] && [ "${left#*|}" = 0 ]; then
      claimed="$(python3 -c "import time; print(f'{time.time() - $killed:.1f}')")"
    fi
    [ "${left%|*}" = 0 ] && break
    sleep 0.1
  done
  took="$(python3 -c "import time; print(f'{time.time() - $killed:.1f}')")"
  echo "round $round: $in_flight leases in flight on A at the kill, all claimed by B ${claimed}s and finished ${took}s after it" >&2
  [ "$in_flight" -gt 0 ] && times+=("$claimed:$took")
  api PUT "$b_url" sys/leases/revoke-prefix/bench/ ''
  kill -9 "$b_pid"
  curl -sf -X POST "$moto/moto-api/reset" >/dev/null
done

python3 - "$failover" "${times[@]}" <<'PY'
import statistics, sys
failover = sys.argv[1]
claimed = [float(t.split(":")[0]) for t in sys.argv[2:]]
done = [float(t.split(":")[1]) for t in sys.argv[2:]]
print(f"after kill -9, over {len(done)} kills (failover_timeout {failover}): "
      f"claimed by the survivor median {statistics.median(claimed):.1f}s, max {max(claimed):.1f}s; "
      f"finished in AWS median {statistics.median(done):.1f}s, max {max(done):.1f}s")
PY
echo "iamlease replicas on PostgreSQL, $profile build, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%RZ)"
