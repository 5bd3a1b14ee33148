#!/usr/bin/env bash
# The monthly summary of 5,000 staff on PostgreSQL beside SQLite: the office
# kaoqin-seed builds (benches in BENCHMARKS.md, "Report latency") is moved with
# `kaoqin-collector migrate` into a throwaway PostgreSQL, then `report summary` for
# the month runs RUNS times on each store, alternating.
#
#   benches/postgres-summary.sh SEED_DIR [RUNS]
#
# SEED_DIR is a data dir made by:
#   target/release/kaoqin-seed seed --data SEED_DIR --from 2026-10 --months 1 --staff 5000
set -euo pipefail
cd "$(dirname "$0")/.."
seed=${1:?a data dir made by kaoqin-seed}
runs=${2:-5}
cargo build --release --quiet -p kaoqin-collector --bin kaoqin-collector
bin=$PWD/target/release
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg=(); [ "$(id -u)" -eq 0 ] && as_pg=(runuser -u postgres --)
pgdir=$(mktemp -d); chmod 755 "$pgdir"; [ "$(id -u)" -eq 0 ] && chown postgres "$pgdir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"${as_pg[@]}" "$pgbin/initdb" -D "$pgdir/data" -A trust -U postgres >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -o "-p $port -k $pgdir -c listen_addresses=127.0.0.1 -c shared_buffers=1GB" \
  -l "$pgdir/log" -w start >/dev/null
trap '"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1; rm -rf "$pgdir"' EXIT
db="postgres://postgres@127.0.0.1:$port/office"
"${as_pg[@]}" "$pgbin/psql" -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE office"
start=$(date +%s.%N)
"$bin/kaoqin-collector" migrate --from "$seed" --to "$db" | tail -3
echo "migrate: $(echo "$(date +%s.%N) - $start" | bc) s"
"${as_pg[@]}" "$pgbin/psql" -h 127.0.0.1 -p "$port" -U postgres -d office -qc "VACUUM ANALYZE"
now=2026-11-15T00:00:00Z
one() { # label, extra args
  local label=$1; shift
  local t0 t1
  t0=$(date +%s%N)
  "$bin/kaoqin-collector" report summary --from 2026-10-01 --to 2026-10-31 --now "$now" \
    --data-dir "$seed" "$@" --format csv >/dev/null
  t1=$(date +%s%N)
  echo "$label run $run: $(( (t1 - t0) / 1000000 )) ms"
}
for run in $(seq 0 "$runs"); do   # run 0 warms the caches
  one sqlite
  one postgres --database "$db"
done
