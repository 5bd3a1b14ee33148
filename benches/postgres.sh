#!/usr/bin/env bash
# Ingest on PostgreSQL beside SQLite, in one run so the ratios share the
# machine's conditions: for each scenario, runs alternate between one collector
# on SQLite, one collector on PostgreSQL and two collectors on one PostgreSQL
# database (the load split between them). Each run starts on an empty store.
#
#   benches/postgres.sh batched|single [RUNS]
#
# PostgreSQL is a throwaway server of Debian's postgresql package, started here on
# a free loopback port with its defaults (fsync on, synchronous_commit on), so a
# Report is durable before it is answered on both stores.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:?batched or single}
runs=${2:-3}
cargo build --release --quiet -p kaoqin-collector -p kaoqin-tests --bin kaoqin-collector --bin kaoqin-loadgen
bin=$PWD/target/release
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg=(); [ "$(id -u)" -eq 0 ] && as_pg=(runuser -u postgres --)
pgdir=$(mktemp -d); chmod 755 "$pgdir"; [ "$(id -u)" -eq 0 ] && chown postgres "$pgdir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"${as_pg[@]}" "$pgbin/initdb" -D "$pgdir/data" -A trust -U postgres >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -o "-p $port -k $pgdir -c listen_addresses=127.0.0.1 -c max_connections=200" \
  -l "$pgdir/log" -w start >/dev/null
trap '"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1; rm -rf "$pgdir"' EXIT
case $scenario in
  batched) agents=8 batch=500 ;;
  single)  agents=64 batch=1 ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac

start_collector() { # work dir, name, [database url]
  local work=$1 name=$2 db=${3:-}
  printf '[agents]\nreport_rate_per_second = 0\nenroll_rate_per_minute = 0\nmax_reports_in_flight = 100000\n' >"$work/c.toml"
  "$bin/kaoqin-collector" serve --plaintext --config "$work/c.toml" --data-dir "$work/$name" \
    ${db:+--database "$db"} --grpc 127.0.0.1:0 >"$work/$name.out" 2>"$work/$name.err" &
  echo $!
}
url_of() { # work dir, name
  for _ in $(seq 1 100); do grep -q listening "$1/$2.out" 2>/dev/null && break; sleep 0.1; done
  echo "http://$(sed -n 's/.*grpc=\([^ ]*\).*/\1/p' "$1/$2.out")"
}

one() { # store: sqlite | pg1 | pg2
  local store=$1 work db= pids=() lines=()
  work=$(mktemp -d)
  if [ "$store" != sqlite ]; then
    db="postgres://postgres@127.0.0.1:$port/bench_$RANDOM$RANDOM"
    "${as_pg[@]}" "$pgbin/psql" -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE ${db##*/}"
  fi
  local n=1; [ "$store" = pg2 ] && n=2
  for i in $(seq 1 $n); do pids+=("$(start_collector "$work" "c$i" "$db")"); done
  local per=$((agents / n)) token urls=()
  # Every collector listening (its store open and migrated) before anything else.
  for i in $(seq 1 $n); do urls+=("$(url_of "$work" "c$i")"); done
  token=$("$bin/kaoqin-collector" token create --data-dir "$work/c1" ${db:+--database "$db"} --uses 100000)
  # CPU seconds the database server and the collectors spend over the run.
  pg_cpu() { ps -u postgres -o times= 2>/dev/null | awk '{s+=$1} END {print s+0}'; }
  collector_cpu() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }
  local pg0 c0=()
  pg0=$(pg_cpu)
  for p in "${pids[@]}"; do c0+=("$(collector_cpu "$p")"); done
  for i in $(seq 1 $n); do
    "$bin/kaoqin-loadgen" --collector "${urls[$((i-1))]}" --token "$token" --agents "$per" \
      --interval 0 --batch "$batch" --duration 20 --run-id "$store$i" 2>"$work/lg$i.err" | tail -1 >"$work/lg$i.out" &
    lines+=($!)
  done
  for p in "${lines[@]}"; do wait "$p"; done
  local pg1; pg1=$(pg_cpu)
  for i in $(seq 1 $n); do
    local pid=${pids[$((i-1))]}
    rss=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$pid/status")
    cpu=$(echo "$(collector_cpu "$pid") - ${c0[$((i-1))]}" | bc)
    echo "$scenario run $run $store collector $i/$n: $(cat "$work/lg$i.out")  collector_peak_rss_mib: $rss  collector_cpu_s: $cpu"
  done
  echo "$scenario run $run $store: postgres_cpu_s: $(echo "$pg1 - $pg0" | bc)"
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
  rm -rf "$work"
}
for run in $(seq 1 "$runs"); do
  for store in sqlite pg1 pg2; do one "$store"; done
done
