#!/usr/bin/env bash
# Report latency and ingest throughput as the collector's database grows. Seeds a
# fresh data directory with kaoqin-seed step by step (by default to 1, 3, 6 and 12
# months of history) and after each step runs `kaoqin-seed measure` on the latest
# month, then prints one markdown row per step.
#
#   benches/growth.sh [--staff N] [--from YYYY-MM] [--steps "1 3 6 12"] [--data DIR]
#                     [--runs N] [--max-seconds S] [--ingest-runs N] [-- MORE SEED ARGS]
#
# DIR must not exist (default target/kaoqin-growth); it is kept afterwards for
# more measurements (kaoqin-seed measure --data DIR --month ...). A year of 5,000
# staff at the seeder's default volume takes about 30 GB. Everything the seeder
# and the measurements print goes to DIR.log as well.
set -euo pipefail
cd "$(dirname "$0")/.."
staff=5000
from=2026-01
steps="1 3 6 12"
data=target/kaoqin-growth
runs=15
max_seconds=120
ingest_runs=7
seed_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --staff) staff=$2; shift 2 ;;
    --from) from=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --max-seconds) max_seconds=$2; shift 2 ;;
    --ingest-runs) ingest_runs=$2; shift 2 ;;
    --) shift; seed_args=("$@"); break ;;
    *) echo "unknown argument $1 (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
done
if [ -e "$data" ]; then
  echo "$data exists; give a --data directory that does not" >&2
  exit 2
fi
cargo build --release --quiet -p kaoqin-tests --bin kaoqin-seed
seed=$PWD/target/release/kaoqin-seed
mkdir -p "$(dirname "$data")"
log=$data.log
: >"$log"

# 1234567 -> 1,234,567
commas() { sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta' <<<"$1"; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }

rows=()
done_months=0
for step in $steps; do
  n=$((step - done_months))
  if [ "$n" -le 0 ]; then
    echo "--steps must increase: $steps" >&2
    exit 2
  fi
  if [ "$done_months" -eq 0 ]; then
    first=(--from "$from" --staff "$staff")
  else
    first=()
  fi
  echo "== seeding to $step month(s) of history" | tee -a "$log" >&2
  "$seed" seed --data "$data" --months "$n" ${first[@]+"${first[@]}"} \
    ${seed_args[@]+"${seed_args[@]}"} 2>&1 | tee -a "$log" >&2
  done_months=$step
  echo "== measuring at $step month(s)" | tee -a "$log" >&2
  # The seeding's dirty pages written out first, so the kernel's writeback does
  # not compete with the measured fsyncs.
  sync
  "$seed" measure --data "$data" --runs "$runs" --max-seconds "$max_seconds" \
    --ingest-runs "$ingest_runs" 2>&1 \
    | tee -a "$log" >&2
  line=$(grep '^growth-row:' "$log" | tail -1)
  bytes=$(field db_bytes "$line")
  size=$(awk -v b="$bytes" 'BEGIN { if (b >= 2^30) printf "%.2f GiB", b / 2^30; else printf "%.1f MiB", b / 2^20 }')
  rows+=("| $(field months "$line") | $(commas "$(field events "$line")") | $size | $(field summary_ms "$line") | $(field person_ms "$line") | $(commas "$(field ingest_eps "$line")") | $(field summary_page_ms "$line") | $(field person_api_ms "$line") | $(field person_grpc_ms "$line") |")
done

echo
echo "$staff staff from $from, data in $data (medians; ms of one report, warm cache)"
echo
echo "| months of history | events stored | DB size | summary ms | person-month ms | ingest events/s | summary page ms | person API ms | person gRPC ms |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
