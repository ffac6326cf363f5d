#!/usr/bin/env bash
# Re-record the demo recording from a real Netdata agent (run as root beside a running agent):
# CLEAN seconds without load, a CPU stress, quiet, a fork storm, quiet; then the last WINDOW
# seconds of the agent are recorded with their labels into demo/recording.
#   demo/record.sh [HOST]       (default 127.0.0.1:19999; needs stress-ng)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
host="${1:-127.0.0.1:19999}"
py="${PYTHON:-$here/../.venv/bin/python}"
clean="${CLEAN:-360}"
out="${OUT:-$here/recording}"
out="${out%/}"   # (with its slash, the folder recorded beside it would be inside it)
command -v stress-ng >/dev/null || { echo "stress-ng is needed (apt-get install stress-ng)" >&2; exit 1; }
[ -x "$py" ] || { echo "no $py: run ./install.sh --dev first, or give PYTHON=" >&2; exit 1; }
# the agent is asked now, not after the minutes of quiet and load
"$py" -c 'import sys, urllib.request; urllib.request.urlopen("http://" + sys.argv[1] + "/api/v1/info", timeout=10)' \
  "$host" 2>/dev/null || { echo "no Netdata agent answers on http://$host/api/v1/info" >&2; exit 1; }

echo "waiting ${clean}s of clean history on $host" >&2
t0=$(date +%s)
sleep "$clean"
s1=$(date +%s); stress-ng --cpu 2 --timeout 60s --quiet; e1=$(( $(date +%s) + 1 ))
sleep 90
s2=$(date +%s); stress-ng --fork 2 --timeout 40s --quiet; e2=$(( $(date +%s) + 1 ))
sleep 60
window=$(( $(date +%s) - t0 ))
labels="$(mktemp)"
cat > "$labels" <<JSON
{"incidents": [
 {"kind": "cpu-stress", "start": $s1, "end": $e1, "command": "stress-ng --cpu 2 --timeout 60s",
  "expected_charts": ["system.cpu", "system.load", "system.cpu_some_pressure", "system.processes_state"]},
 {"kind": "fork-storm", "start": $s2, "end": $e2, "command": "stress-ng --fork 2 --timeout 40s",
  "expected_charts": ["system.forks", "system.processes", "system.active_processes", "system.ctxt", "system.cpu",
                      "system.processes_state"]}],
 "notes": "Recorded by demo/record.sh on a real Netdata agent; start/end are wall-clock seconds around each stress-ng run."}
JSON
# recorded beside it, and put in its place only when whole: a failed recording keeps the one there
new="$out.new.$$"
trap 'rm -rf "$new" "$labels"' EXIT
"$py" -m collector record --host "$host" --seconds "$window" --past --out "$new" --charts-regex 'system\.' \
  --labels "$labels" --description "demo: real Netdata agent, ${clean}s clean, cpu stress, fork storm"
rm -rf "$out"
mv "$new" "$out"
echo "recorded into $out" >&2
