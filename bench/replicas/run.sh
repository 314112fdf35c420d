#!/usr/bin/env bash
# Issue throughput with one vs two iamlease replicas on one PostgreSQL database.
#
# Usage: bench/replicas/run.sh [-n ISSUES] [-c CONCURRENCY]     (BENCH_PROFILE=release to bench
# a release build; the default is the debug build the tests use)
#
# AWS is moto, which serves one request at a time per process; to keep it from being the only
# bottleneck, each of two mounts talks to its own moto (as two AWS accounts would), and the load
# is spread over both mounts. PostgreSQL runs with its durable defaults (fsync on).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
n=600 c=16
while getopts "n:c:" o; do case "$o" in n) n="$OPTARG";; c) c="$OPTARG";; *) exit 2;; esac; done
profile="${BENCH_PROFILE:-debug}"
token=bench-root-token
work="$(mktemp -d)"
pids=()
pg_dir=""
cleanup() {
  for p in "${pids[@]}" $(cat "$work"/pids-* 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  [ -n "$pg_dir" ] && scripts/start-postgres --stop "$pg_dir"
  rm -rf "$work"
}
trap cleanup EXIT

scripts/install-deps
if [ "$profile" = release ]; then cargo build --quiet --release --bin iamlease; else cargo build --quiet --bin iamlease; fi
bin="${CARGO_TARGET_DIR:-$root/target}/$profile/iamlease"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api() { # METHOD SERVER PATH [JSON]
  curl -sf -X "$1" -H "X-Vault-Token: $token" ${4:+-d "$4"} "$2/v1/$3" >/dev/null
}

motos=()
for _ in 1 2; do
  out="$(MOTO_LOG="$work/moto-$RANDOM.log" scripts/start-moto)"
  motos+=("$(sed -n 1p <<<"$out")"); pids+=("$(sed -n 2p <<<"$out")")
done
pg="$(scripts/start-postgres)"
pg_url="$(sed -n 1p <<<"$pg")"; pg_dir="$(sed -n 2p <<<"$pg")"
key="$(python3 -c 'import os,base64; print(base64.b64encode(os.urandom(32)).decode())')"

start_replica() { # DATABASE -> prints URL (runs in a subshell: the pid goes to a file)
  local port; port="$(free_port)"
  IAMLEASE_LISTEN="127.0.0.1:$port" IAMLEASE_STORAGE="${pg_url%/postgres}/$1" IAMLEASE_MASTER_KEY="$key" \
    IAMLEASE_LOG=warn "$bin" server --dev --dev-root-token "$token" >"$work/server-$port.log" 2>&1 &
  echo $! >>"$work/pids-$1"
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$port/v1/sys/health" >/dev/null && break; sleep 0.1; done
  echo "http://127.0.0.1:$port"
}

run() { # NAME REPLICAS
  local db="bench_$1" servers=() mounts=()
  for m in "${motos[@]}"; do curl -sf -X POST "$m/moto-api/reset" >/dev/null; done
  psql -q "$pg_url" -c "CREATE DATABASE $db"
  for i in $(seq 1 "$2"); do servers+=("$(start_replica "$db")"); done
  for i in 0 1; do
    local m="bench$i"
    mounts+=("$m")
    api POST "${servers[0]}" "sys/mounts/$m" '{"type":"aws"}'
    api POST "${servers[0]}" "$m/config/root" "{\"access_key\":\"AKIABENCH\",\"secret_key\":\"bench\",\"region\":\"us-east-1\",\"iam_endpoint\":\"${motos[$i]}\",\"sts_endpoint\":\"${motos[$i]}\"}"
    api POST "${servers[0]}" "$m/roles/bench" '{"credential_type":"iam_user","policy_document":"{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"s3:ListBucket\",\"Resource\":\"*\"}]}"}'
  done
  local all; all="$(IFS=,; echo "${servers[*]}")"
  # Warm-up (connections, SDK clients on every replica), then the measured run.
  .venv/bin/python bench/replicas/load.py --servers "$all" --mounts bench0,bench1 --token "$token" -n 40 -c "$c" >/dev/null
  local rate; rate="$(.venv/bin/python bench/replicas/load.py --servers "$all" --mounts bench0,bench1 --token "$token" -n "$n" -c "$c")"
  for m in "${mounts[@]}"; do api PUT "${servers[0]}" "sys/leases/revoke-prefix/$m/" ''; done
  kill -9 $(cat "$work/pids-$db")
  echo "$rate"
}

# Alternated (one, two, two, one), so a machine getting busier or moto filling up favours neither.
o1="$(run one_a 1)"; t1="$(run two_a 2)"; t2="$(run two_b 2)"; o2="$(run one_b 1)"
one="$(python3 -c "print(f'{($o1 + $o2) / 2:.1f}')")"
two="$(python3 -c "print(f'{($t1 + $t2) / 2:.1f}')")"
echo "iamlease replicas on PostgreSQL, $n issues, $c in flight, $profile build, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%RZ)"
echo "one replica:  $one issues/s ($o1, $o2)"
echo "two replicas: $two issues/s ($t1, $t2)"
echo "ratio two/one: $(python3 -c "print(f'{$two / $one:.2f}')")"
