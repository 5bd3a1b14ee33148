#!/usr/bin/env bash
# Measures kaoqin-agent's own cost with its real (live) probe: CPU as a share of
# one core, averaged over the run and the worst 12-second window, and resident
# memory, while ~300 processes run in the session. Prints one summary line.
#
#   benches/agent-overhead.sh [SECONDS]        # default 600
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
cargo build --release --quiet -p kaoqin-collector -p kaoqin-agent
bin=$PWD/target/release
work=$(mktemp -d)
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# ~300 processes, some of them with names the classifier knows.
mkdir -p "$work/apps"
for n in WeChat QQMusic kugou thunder steam dingtalk; do cp /bin/sleep "$work/apps/$n"; done
for i in $(seq 1 300); do
  case $((i % 10)) in
    0) "$work/apps/WeChat" 100000 & ;;
    1) "$work/apps/QQMusic" 100000 & ;;
    2) "$work/apps/kugou" 100000 & ;;
    *) sleep 100000 & ;;
  esac
  pids+=($!)
done

"$bin/kaoqin-collector" serve --plaintext --data-dir "$work/c" --grpc 127.0.0.1:0 >"$work/c.out" 2>/dev/null &
pids+=($!)
for _ in $(seq 1 100); do grep -q listening "$work/c.out" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's/.*grpc=\([^ ]*\).*/\1/p' "$work/c.out")
token=$("$bin/kaoqin-collector" token create --data-dir "$work/c")
"$bin/kaoqin-agent" enroll --collector "http://$addr" --token "$token" --state-dir "$work/a" >/dev/null
# The user running this is logged on (a utmp record), so the agent looks at
# their processes every sample, as it does on an office PC.
me=$(id -un)
printf '[7] [%05d] [ts/0] [%-8s] [pts/0       ] [                    ] [0.0.0.0        ] [%s]\n' \
  $$ "$me" "$(date -u +%Y-%m-%dT%H:%M:%S,000000+00:00)" | utmpdump -r >"$work/utmp" 2>/dev/null
printf '[probe]\nutmp = "%s"\n' "$work/utmp" >"$work/agent.toml"
KAOQIN_LOG=warn "$bin/kaoqin-agent" run --config "$work/agent.toml" --state-dir "$work/a" 2>"$work/agent.log" &
agent=$!
pids+=($agent)

python3 - "$agent" "$secs" <<'PY'
import os, sys, time
pid, secs = int(sys.argv[1]), int(sys.argv[2])
hz = os.sysconf("SC_CLK_TCK")
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / hz
def rss_kib():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1])
time.sleep(3)  # past start-up
t0, c0 = time.monotonic(), cpu()
windows, rss, last_t, last_c = [], [], t0, c0
while time.monotonic() - t0 < secs:
    time.sleep(12)
    t, c = time.monotonic(), cpu()
    windows.append((c - last_c) / (t - last_t) * 100)
    rss.append(rss_kib())
    last_t, last_c = t, c
total = (last_c - c0) / (last_t - t0) * 100
rss.sort()
print(f"agent: avg_cpu_pct: {total:.3f}  max_12s_cpu_pct: {max(windows):.3f}  "
      f"median_rss_mib: {rss[len(rss)//2]/1024:.1f}  max_rss_mib: {rss[-1]/1024:.1f}  "
      f"processes: {len(os.listdir('/proc'))}  seconds: {secs}")
PY
# Proof that the probe did its work: usage the agent classified from the
# running processes (WeChat -> chat, QQMusic/kugou -> media).
"$bin/kaoqin-collector" events --data-dir "$work/c" \
  | python3 -c 'import sys,json,collections; c=collections.Counter(e["category"] for e in map(json.loads,sys.stdin) if e["type"]=="usage"); print("usage events by category:", dict(c))'
