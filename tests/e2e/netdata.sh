#!/usr/bin/env bash
# End to end on a real Netdata agent (Debian's netdata + netdata-plugins-python), as root:
# install the agent and stress-ng with apt-get if missing, start an agent of its own on a
# loopback port, install the module into it with install.sh, and check through the agent's
# API that the anomaly charts exist, update every second, and react to a stress-ng CPU burst.
# Exits non-zero naming the failing check; leaves nothing running.
#   tests/e2e/netdata.sh            (PORT=19970 by default)
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
port="${PORT:-19970}"
work="$(mktemp -d /tmp/anomalies-e2e.XXXXXX)"
api="http://127.0.0.1:$port/api/v1"
agent_pid=

log() { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

cleanup() {
  if [ -n "$agent_pid" ]; then
    kill -TERM -- "-$agent_pid" 2>/dev/null || kill -TERM "$agent_pid" 2>/dev/null
    for _ in $(seq 20); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$agent_pid" 2>/dev/null || true
  fi
  pkill -f "$work" 2>/dev/null || true
  pkill -x stress-ng 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  log "FAILED: $*"
  log "---- agent log (error.log, last 60 lines) ----"
  tail -n 60 "$work/log/error.log" 2>/dev/null
  log "---- anomalies module lines ----"
  grep -h 'anomalies\[' "$work/log/error.log" 2>/dev/null | tail -n 40
  exit 1
}

[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 2; }
if ! command -v netdata >/dev/null || [ ! -x /usr/lib/netdata/plugins.d/python.d.plugin ] || ! command -v stress-ng >/dev/null; then
  log "installing netdata, netdata-plugins-python and stress-ng with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends netdata netdata-plugins-python stress-ng \
    python3-venv python3-yaml curl >/dev/null || fail "apt-get install"
fi
command -v curl >/dev/null || fail "curl is missing"

# ---- an agent of our own: its own dirs, short history, every second, on loopback ----
mkdir -p "$work"/{etc/python.d,etc/custom-plugins.d,log,cache,lib,lock}
chmod 755 "$work"
cat > "$work/etc/netdata.conf" <<EOF
[global]
    update every = 1
    memory mode = ram
    history = 3600
    run as user = netdata
[web]
    bind to = 127.0.0.1:$port
[directories]
    config = $work/etc
    stock config = /usr/lib/netdata/conf.d
    log = $work/log
    cache = $work/cache
    lib = $work/lib
    lock = $work/lock
    plugins = "/usr/lib/netdata/plugins.d" "$work/etc/custom-plugins.d"
[plugins]
    apps = no
    charts.d = no
    ebpf = no
    go.d = no
    nfacct = no
    cups = no
    slabinfo = no
[health]
    enabled = yes
EOF
# the job: short windows so the first training comes in a minute (the agent is fresh: the
# job waits for train_min_n_secs of history first, and says so in the log)
cat > "$work/etc/python.d/anomalies.conf" <<EOF
anomalies:
    host: '127.0.0.1:$port'
    charts_regex: 'system\..*'
    charts_to_exclude: 'system.uptime,system.entropy'
    train_n_secs: 90
    train_min_n_secs: 45
    train_every_n: 3600
    contamination: 0.001
EOF

log "installing the module with install.sh"
"$here/install.sh" --config-dir "$work/etc" --lib-dir "$work/lib" --port "$port" --no-restart | tee "$work/install.log" \
  || fail "install.sh"
# python.d.plugin imports its stock zscores and pandas modules too, which would find pandas in
# the venv (Debian's python3 has none): quieted, and said
if ! python3 -c 'import pandas' 2>/dev/null; then
  grep -qx 'zscores: no' "$work/etc/python.d.conf" && grep -qx 'pandas: no' "$work/etc/python.d.conf" \
    || fail "install.sh did not keep the stock zscores and pandas modules from importing the venv's pandas"
  grep -q "set 'zscores: no', 'pandas: no' in" "$work/install.log" || fail "install.sh did not say it quieted zscores and pandas"
fi
grep -q "host: '127.0.0.1:$port'" "$work/etc/python.d/anomalies.conf" || fail "install.sh overwrote the user's anomalies.conf"
grep -qE '^anomalies: *yes' "$work/etc/python.d.conf" || fail "install.sh did not enable the module in python.d.conf"
# the venv and the install record: in root's folder beside the lib dir
own="$work/lib-anomalies"
[ -f "$own/install.state" ] && [ "$(cat "$work/etc/custom-plugins.d/python.d/anomalies.venv")" = "$own/venv" ] \
  || fail "the install did not keep its record and venv in $own"
# the venv is built beside its place and moved there: its scripts must name where it is now
"$own/venv/bin/pip" --version > /dev/null || fail "the venv's pip does not run (it names the folder it was built in)"
# an older version's install: its venv and record in the lib dir, which the netdata user owns
# (and so could put a folder of its own in place of the venv, whose python root would run)
mv "$own/venv" "$work/lib/anomalies-venv"
sed "s#^venv=.*#venv=$work/lib/anomalies-venv#" "$own/install.state" > "$work/lib/anomalies-install.state"
rm "$own/install.state" && rmdir "$own"
printf '%s\n' "$work/lib/anomalies-venv" > "$work/etc/custom-plugins.d/python.d/anomalies.venv"
chown netdata:netdata "$work/lib"
"$here/install.sh" --check --config-dir "$work/etc" --lib-dir "$work/lib" --port "$port" > "$work/legacy-check.log" 2>&1
grep -qF "the virtual environment $work/lib/anomalies-venv named in $work/etc/custom-plugins.d/python.d/anomalies.venv is not run: $work/lib is owned by netdata" \
  "$work/legacy-check.log" || { cat "$work/legacy-check.log"; fail "--check ran (or did not name) a venv in the netdata user's lib dir"; }
# the admin edits python.d.conf (which the install made from the stock one), then upgrades
printf 'example: no\n' >> "$work/etc/python.d.conf"
"$here/install.sh" --config-dir "$work/etc" --lib-dir "$work/lib" --port "$port" --no-restart > "$work/reinstall.log" 2>&1 \
  || { cat "$work/reinstall.log"; fail "install.sh (again, an upgrade)"; }
grep -qF "the virtual environment is now $own/venv, in place of $work/lib/anomalies-venv: $work/lib is owned by netdata" "$work/reinstall.log" \
  && grep -qF "moved the install record from $work/lib/anomalies-install.state to $own/install.state" "$work/reinstall.log" \
  || { cat "$work/reinstall.log"; fail "the upgrade did not say it moved the venv and the record out of the lib dir"; }
[ ! -e "$work/lib/anomalies-venv" ] && [ ! -e "$work/lib/anomalies-install.state" ] && [ -f "$own/install.state" ] \
  && [ "$(cat "$work/etc/custom-plugins.d/python.d/anomalies.venv")" = "$own/venv" ] && "$own/venv/bin/pip" --version > /dev/null \
  || fail "the upgrade did not move the venv and the record from the lib dir to $own"
grep -q "kept your $work/etc/python.d/anomalies.conf" "$work/reinstall.log" || fail "the upgrade did not keep the user's anomalies.conf"
[ "$(grep -cE '^anomalies *:' "$work/etc/python.d.conf")" = 1 ] || fail "the upgrade left more than one anomalies line in python.d.conf"
mkdir -p "$work/not-a-venv" && touch "$work/not-a-venv/keep"
"$here/install.sh" --config-dir "$work/etc" --lib-dir "$work/lib" --venv "$work/not-a-venv" --no-restart > /dev/null 2>&1 \
  && fail "install.sh replaced a folder that is not a virtual environment"
[ -f "$work/not-a-venv/keep" ] || fail "install.sh deleted a folder given as --venv"
chown -R netdata:netdata "$work"/{log,cache,lib,lock} 2>/dev/null || true

log "starting netdata on 127.0.0.1:$port"
setsid netdata -c "$work/etc/netdata.conf" -D -p "$port" > "$work/log/stdout.log" 2>&1 &
agent_pid=$!
for _ in $(seq 60); do curl -fsS "$api/info" >/dev/null 2>&1 && break; sleep 1; done
curl -fsS "$api/info" >/dev/null || fail "the agent's API did not come up"

# ---- the charts exist with the expected dimensions ----
charts_json() { curl -fsS "$api/charts"; }
has_dims() {  # has_dims CONTEXT DIM...
  local ctx="$1"; shift
  charts_json | python3 -c '
import json, sys
ctx, want = sys.argv[1], set(sys.argv[2:])
charts = [c for c in json.load(sys.stdin)["charts"].values() if c["context"] == ctx]
dims = {d.get("name", k) for c in charts for k, d in c["dimensions"].items()}
sys.exit(0 if charts and want <= dims else 1)' "$ctx" "$@"
}
log "waiting for the anomaly charts (the job waits for 45 s of history, then trains)"
ok=0
for _ in $(seq 180); do
  if has_dims anomalies.probability system.cpu_prob system.ram_prob average_prob \
     && has_dims anomalies.anomaly system.cpu_anomaly system.ram_anomaly; then ok=1; break; fi
  sleep 1
done
[ "$ok" -eq 1 ] || fail "charts anomalies.probability / anomalies.anomaly with system.cpu and system.ram dimensions"
grep -q "models waiting for 45 s of history before training" "$work"/log/*.log \
  || fail "no log line saying the job waited for history on the fresh agent"
log "charts exist: $(charts_json | python3 -c 'import json,sys; c=json.load(sys.stdin)["charts"]; print(", ".join("%s (%d dims)" % (k, len(v["dimensions"])) for k, v in c.items() if v["context"].startswith("anomalies.")))')"
"$here/install.sh" --check --config-dir "$work/etc" --lib-dir "$work/lib" --port "$port" || fail "install.sh --check"

series() {  # series CHART DIM AFTER -> one value per line, oldest first (null as 'null')
  curl -fsS "$api/data?chart=$1&dimensions=$2&after=$3&before=0&points=0&format=json&options=flip" \
    | python3 -c 'import json,sys; [print("null" if r[1] is None else r[1]) for r in json.load(sys.stdin)["data"]]'
}
sleep 12
values="$(series anomalies.probability system.cpu_prob -10)"
n_values="$(printf '%s\n' "$values" | grep -vc null)"
[ "$n_values" -ge 9 ] || fail "system.cpu_prob is not updating every second (got $n_values values in 10 s)"
log "system.cpu_prob updates every second ($n_values values in the last 10 s)"

# ---- models are saved under the agent's lib dir ----
[ -f "$work/lib/anomalies-models/anomalies/system.cpu.json" ] && [ -f "$work/lib/anomalies-models/anomalies/system.cpu.pkl" ] \
  || fail "no saved model in $work/lib/anomalies-models/anomalies (models_dir: auto under the agent)"
log "models saved: $(ls "$work/lib/anomalies-models/anomalies" | grep -c '\.pkl$') in $work/lib/anomalies-models/anomalies"

# ---- the health alarms are loaded ----
alarm_status() {  # alarm_status NAME [all] -> status of the alarm NAME on any chart, or nothing
  curl -fsS "$api/alarms${2:+?all}" | python3 -c '
import json, sys
alarms = json.load(sys.stdin).get("alarms", {})
print(" ".join(sorted({a["status"] for a in alarms.values() if a.get("name") == sys.argv[1]})))' "$1"
}
for name in anomalies_node_rate anomalies_flag_lasting; do
  [ -n "$(alarm_status "$name" all)" ] || fail "health alarm $name is not loaded (/api/v1/alarms?all)"
done
log "health alarms loaded: anomalies_node_rate $(alarm_status anomalies_node_rate all), anomalies_flag_lasting $(alarm_status anomalies_flag_lasting all)"

# ---- a real incident ----
# after the first training on a full window: while the agent holds less than train_n_secs the
# job trains again as its history doubles, and a window of 90 s that is half stress learns it
# as the new normal (the first model's window is also the agent's own start, CPU and all)
log "waiting for a training on a full window (90 s of history)"
ok=0
for _ in $(seq 150); do
  grep -qE "trained [0-9]+ models on (8[5-9]|9[0-9]|1[0-9][0-9]) rows" "$work"/log/*.log && { ok=1; break; }
  sleep 1
done
[ "$ok" -eq 1 ] || fail "no training on a full window of 90 s within 150 s"
sleep 15   # the training's own rows raise no flag: past them
log "stress-ng --cpu 2 for 90 s"
stress-ng --cpu 2 --timeout 90s --quiet &
stress_pid=$!
lasting="" rate=""
for _ in $(seq 47); do
  sleep 2
  lasting="$lasting $(alarm_status anomalies_flag_lasting)"
  rate="$rate $(alarm_status anomalies_node_rate)"
done
wait "$stress_pid" 2>/dev/null
log "alarm states seen during the burst: anomalies_flag_lasting [$(echo $lasting | tr ' ' '\n' | sort -u | tr '\n' ' ')]," \
    "anomalies_node_rate [$(echo $rate | tr ' ' '\n' | sort -u | tr '\n' ' ')]"
grep -qE 'WARNING|CRITICAL' <<< "$lasting" || fail "alarm anomalies_flag_lasting was not raised during the burst"
grep -qE 'WARNING|CRITICAL' <<< "$rate" || fail "alarm anomalies_node_rate was not raised during the burst"
max_prob="$(series anomalies.probability system.cpu_prob -95 | grep -v null | sort -n | tail -n1)"
max_flag="$(series anomalies.anomaly system.cpu_anomaly -95 | grep -v null | sort -n | tail -n1)"
log "during the burst: max system.cpu probability ${max_prob}%, max flag $max_flag"
python3 -c "import sys; sys.exit(0 if float('${max_prob:-0}') >= 90 else 1)" || fail "system.cpu probability did not rise above 90% during the burst"
[ "${max_flag:-0}" = 1 ] || fail "system.cpu anomaly flag did not go to 1 during the burst"

cpu_lines="$(grep -h "anomaly flagged on 'system.cpu'" "$work"/log/*.log 2>/dev/null || true)"
# here-strings, not pipes: grep -q/-m1 stop reading early, which pipefail would count as a failure
log "flag log lines for system.cpu: $(grep -c . <<< "$cpu_lines"), e.g.: $(grep -m1 -o "anomaly flagged.*user.*" <<< "$cpu_lines" || true)"
# among the drivers named: on a machine running niced work beside the test (another build), the
# stress takes the CPU from it, and nice moving down drives the chart as much as user moving up
grep -qE "\): ([a-z]+ [0-9]+%, )*user [0-9]+%" <<< "$cpu_lines" || fail "no flag log line naming user as what drives system.cpu"

log "waiting for it to settle"
sleep 50
late_flags="$(series anomalies.anomaly system.cpu_anomaly -20 | grep -c '^1')"
[ "$late_flags" -le 5 ] || fail "system.cpu anomaly flag did not settle after the burst ($late_flags of the last 20 s flagged)"
log "settled: $late_flags flagged seconds in the last 20 s"

# ---- a chart that never moved in its window: System V shared memory appears ----
command -v ipcmk >/dev/null || fail "ipcmk (util-linux) is needed to make System V shared memory"
log "ipcmk: four 16 MiB System V shared memory segments, held for 12 s"
shm_ids=""
for _ in 1 2 3 4; do shm_ids="$shm_ids $(ipcmk -M 16M | grep -o '[0-9]*$')"; done
sleep 12
for id in $shm_ids; do ipcrm -m "$id"; done
shm_flags="$(series anomalies.anomaly system.shared_memory_segments_anomaly -14 | grep -c '^1' || true)"
shm_line="$(grep -h "anomaly flagged on 'system.shared_memory_segments'" "$work"/log/*.log 2>/dev/null | tail -n1 || true)"
log "system.shared_memory_segments, at 0 all through its window: flagged $shm_flags of the last 14 s; ${shm_line#*: }"
[ "$shm_flags" -ge 5 ] || fail "system.shared_memory_segments was not flagged while the segments were held"
grep -q "segments" <<< "$shm_line" || fail "no flag log line naming segments as what drives system.shared_memory_segments"

# ---- a restart: the saved models score from the start, system.cpu's too (the agent's chart
# list leaves out its hidden idle dimension, which the model has) ----
# the standalone runner as a plugins.d external plugin of the same agent: two jobs of its own
# in one file, side by side (their charts are anomalies_ext.* and anomalies_ext2.*), started by
# the agent from the restart on
cat > "$work/etc/anomalies-plugin.conf" <<EOF
ext:
    host: '127.0.0.1:$port'
    charts_regex: 'system\.(cpu|ram)\$'
    train_n_secs: 90
    train_min_n_secs: 45
    models_dir: none
ext2:
    host: '127.0.0.1:$port'
    charts_regex: 'system\.load\$'
    train_n_secs: 90
    train_min_n_secs: 45
    models_dir: none
    attribution_charts: true
EOF
cat > "$work/etc/custom-plugins.d/anomalies.plugin" <<EOF
#!/bin/sh
exec "$own/venv/bin/python" -m collector run --config "$work/etc/anomalies-plugin.conf" --update-every "\${1:-1}"
EOF
chmod 755 "$work/etc/custom-plugins.d/anomalies.plugin"
cp -p "$work/etc/custom-plugins.d/anomalies.plugin" "$work/anomalies.plugin.copy"   # put back for the uninstall

log "restarting the agent"
lines_before="$(wc -l < "$work/log/error.log" 2>/dev/null || echo 0)"
# the models' metadata (not @flagged-steps.json, which the job rewrites as flags rise)
saved_before="$(cd "$work/lib/anomalies-models/anomalies" && ls -- *.json | grep -v '^@')"
touch "$work/restart.mark"
kill -TERM -- "-$agent_pid" 2>/dev/null; wait "$agent_pid" 2>/dev/null
setsid netdata -c "$work/etc/netdata.conf" -D -p "$port" >> "$work/log/stdout.log" 2>&1 &
agent_pid=$!
for _ in $(seq 60); do curl -fsS "$api/info" >/dev/null 2>&1 && break; sleep 1; done
curl -fsS "$api/info" >/dev/null || fail "the agent's API did not come back after the restart"
loaded=""
for _ in $(seq 60); do
  loaded="$(grep -h "loaded [0-9]* saved models" "$work"/log/*.log 2>/dev/null | tail -n1 || true)"
  [ -n "$loaded" ] && break
  sleep 1
done
[ -n "$loaded" ] || fail "the restarted job did not load its saved models"
log "after the restart: ${loaded#*: }"
unused="$(grep -h "saved models\? not used" "$work"/log/*.log 2>/dev/null || true)"
[ -z "$unused" ] || log "not loaded: $unused"
! grep -q "system.cpu" <<< "$unused" || fail "the saved system.cpu model was not used after the restart"
# charts the restarted agent lists a minute later (system.clock_*) get their saved models too,
# rather than a training on the seconds of history they have (which would rewrite their files)
late=""
for _ in $(seq 75); do
  late="$(tail -n "+$((lines_before + 1))" "$work/log/error.log" 2>/dev/null \
          | grep -E "saved models? for charts that appeared" | tail -n1 || true)"
  [ -n "$late" ] && break
  sleep 1
done
log "charts listed late: $([ -n "$late" ] && echo "${late#*: }" || echo "none (all were listed at the start)")"
rewritten="$(cd "$work/lib/anomalies-models/anomalies" && find . -name '*.json' ! -name '@*' -newer "$work/restart.mark" \
             | sed 's|^\./||' | grep -Fxf <(printf '%s\n' "$saved_before") || true)"
[ -z "$rewritten" ] || fail "saved models were retrained after the restart instead of loaded: $rewritten"
# the agent's own start-up (collectors starting, its database written) raises no flag: the job,
# started with it, holds new flags through the agent's first minute (by then over: the wait above)
after_restart="$(tail -n "+$((lines_before + 1))" "$work/log/error.log" 2>/dev/null || true)"
hold="$(grep -h "no flag rises on its start-up" <<< "$after_restart" | tail -n1 || true)"
[ -n "$hold" ] || fail "the restarted job did not hold its flags through the agent's start-up"
held_flags="$(python3 -c '
import re, sys, time
lines = sys.stdin.read().splitlines()
def when(line):
    m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", line)
    return time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) if m else None
said = next(l for l in lines if "no flag rises on its start-up" in l)
ago = float(re.search(r"started (\d+) s ago", said).group(1))
end = when(said) - ago + 60   # (the features read the start-up a few seconds more: not counted)
print(sum(1 for l in lines if "anomaly flagged on" in l and when(l) is not None and when(l) < end))
' <<< "$after_restart")"
log "after the restart: ${hold#*: }; flags raised in the agent's first minute: $held_flags"
[ "$held_flags" = "0" ] || fail "flags rose on the agent's start-up"

chart_dims() {  # chart_dims ID -> its dimension names, or nothing
  charts_json | python3 -c '
import json, sys
c = json.load(sys.stdin)["charts"].get(sys.argv[1])
print(" ".join(sorted(d.get("name", k) for k, d in c["dimensions"].items())) if c else "")' "$1"
}
wait_dims() {  # wait_dims CHART DIM SECONDS -> the chart's dimension names once DIM is among them
  local dims=""
  for _ in $(seq "$3"); do
    dims="$(chart_dims "$1")"
    grep -q "$2" <<< "$dims" && break
    sleep 1
  done
  echo "$dims"
}
ext="$(wait_dims anomalies_ext.probability system.cpu_prob 120)"
grep -q "system.cpu_prob" <<< "$ext" || fail "the external plugin's chart anomalies_ext.probability did not appear"
sleep 10
n_ext="$(series anomalies_ext.probability system.cpu_prob -10 | grep -vc null)"
[ "$n_ext" -ge 8 ] || fail "anomalies_ext.probability is not updating every second ($n_ext values in 10 s)"
ext2="$(wait_dims anomalies_ext2.probability system.load_prob 60)"
grep -q "system.load_prob" <<< "$ext2" || fail "the plugin's second job did not chart anomalies_ext2.probability [$ext2]"
n_ext2="$(series anomalies_ext2.probability system.load_prob -10 | grep -vc null)"
[ "$n_ext2" -ge 1 ] || fail "anomalies_ext2.probability is not updating"
log "as a plugins.d plugin: anomalies_ext.probability [$ext], $n_ext values in the last 10 s; anomalies_ext2.probability [$ext2]"
# a drivers chart's id keeps the model's dots (anomalies_ext2.drivers_system.load): the agent
# must know it by the id each BEGIN gives, or it drops the plugin
drivers="$(wait_dims anomalies_ext2.drivers_system.load load1 30)"
grep -q "load1" <<< "$drivers" || fail "the drivers chart anomalies_ext2.drivers_system.load did not appear [$drivers]"
sleep 5
n_drivers="$(series anomalies_ext2.drivers_system.load load1 -5 | grep -vc null)"
[ "$n_drivers" -ge 3 ] || fail "anomalies_ext2.drivers_system.load is not updating ($n_drivers values in 5 s)"
log "drivers chart anomalies_ext2.drivers_system.load [$drivers], $n_drivers values in the last 5 s"
rm -f "$work/etc/custom-plugins.d/anomalies.plugin"

# ---- a standalone run of the installed package saves its models in the user's cache (the
# netdata user's home is the lib dir), never in the venv's site-packages ----
cat > "$work/etc/standalone.conf" <<EOF
sa:
    host: '127.0.0.1:$port'
    charts_regex: 'system\.cpu\$'
    train_min_n_secs: 30
EOF
# (from $work: `python -m` in the checkout would import the checkout's package instead)
(cd "$work" && HOME="$work/lib" XDG_CACHE_HOME='' "$own/venv/bin/python" -m collector run \
  --config "$work/etc/standalone.conf" --steps 10 > "$work/standalone.out" 2> "$work/standalone.err") \
  || fail "the installed package's standalone run failed: $(tail -n 3 "$work/standalone.err")"
saved="$(ls "$work"/lib/.cache/netdata-anomalies/models/sa@*/system.cpu.pkl 2>/dev/null || true)"
[ -n "$saved" ] || fail "the standalone run saved no model in $work/lib/.cache/netdata-anomalies/models"
! ls -d "$own"/venv/lib/python3*/site-packages/models >/dev/null 2>&1 \
  || fail "the standalone run wrote models into the venv's site-packages"
log "standalone run of the installed package: model saved as ${saved#"$work/"}"

# ---- uninstall undoes the install ----
kill -TERM -- "-$agent_pid" 2>/dev/null; wait "$agent_pid" 2>/dev/null; agent_pid=
cp -p "$work/anomalies.plugin.copy" "$work/etc/custom-plugins.d/anomalies.plugin"   # the admin's plugins.d plugin
"$here/install.sh" --uninstall --config-dir "$work/etc" --lib-dir "$work/lib" --no-restart > "$work/uninstall.log" 2>&1 \
  || { cat "$work/uninstall.log"; fail "install.sh --uninstall"; }
grep -q "custom-plugins.d/anomalies.plugin runs $own/venv, which is removed" "$work/uninstall.log" \
  || { cat "$work/uninstall.log"; fail "uninstall did not name the plugins.d plugin that runs the removed venv"; }
[ -f "$work/etc/custom-plugins.d/anomalies.plugin" ] || fail "uninstall removed the admin's own plugins.d plugin"
rm "$work/etc/custom-plugins.d/anomalies.plugin"
[ ! -e "$work/etc/custom-plugins.d/python.d/anomalies.chart.py" ] || fail "uninstall left the module"
[ ! -e "$own" ] || fail "uninstall left the venv, its record or their folder $own"
[ ! -e "$work/lib/anomalies-models" ] || fail "uninstall left the saved models"
[ ! -e "$work/lib/.cache/netdata-anomalies" ] || fail "uninstall left the standalone runs' saved models"
[ -f "$work/etc/python.d/anomalies.conf" ] || fail "uninstall removed the user's own anomalies.conf"
grep -qx 'example: no' "$work/etc/python.d.conf" || fail "uninstall undid the user's own edit of python.d.conf"
! grep -qE '^anomalies *:' "$work/etc/python.d.conf" || fail "uninstall left the anomalies line in python.d.conf"
if ! python3 -c 'import pandas' 2>/dev/null; then
  ! grep -qE '^(zscores|pandas) *: *no' "$work/etc/python.d.conf" || fail "uninstall left the zscores or pandas line it set"
  grep -qx '# zscores: no' "$work/etc/python.d.conf" || fail "uninstall did not put the stock zscores line back"
fi
[ ! -e "$work/etc/custom-plugins.d/python.d" ] || fail "uninstall left the folder it made for the module"
[ ! -e "$work/etc/health.d" ] || fail "uninstall left the health.d folder it made"
[ -d "$work/etc/custom-plugins.d" ] && [ -d "$work/etc/python.d" ] || fail "uninstall removed a folder it did not make"

# ---- a static build's tree (/opt/netdata): found from its prefix alone, installed, removed ----
static="$work/static/opt/netdata"
mkdir -p "$static"/{usr/libexec/netdata/plugins.d,usr/lib/netdata/conf.d,etc/netdata,var/lib/netdata}
chown -R netdata:netdata "$static/var"   # as its installer leaves it
cp /usr/lib/netdata/conf.d/python.d.conf "$static/usr/lib/netdata/conf.d/"
# its python.d.plugin starts with a shell line that runs python3 from PATH
printf '#!/usr/bin/env bash\n%s\n' "'''':; exec \"\$(command -v python3)\" \"\$0\" \"\$@\" # '''" \
  > "$static/usr/libexec/netdata/plugins.d/python.d.plugin"
chmod 755 "$static/usr/libexec/netdata/plugins.d/python.d.plugin"
tree_before="$(cd "$work/static" && find . | sort)"
"$here/install.sh" --prefix "$static" --no-restart > "$work/static.log" 2>&1 \
  || { cat "$work/static.log"; fail "install.sh --prefix (a static build's tree)"; }
[ "$(cat "$static/etc/netdata/custom-plugins.d/python.d/anomalies.venv" 2>/dev/null)" = "$work/static/opt/netdata-anomalies/venv" ] \
  || fail "the static build's module does not name the venv beside its tree"
[ "$("$work/static/opt/netdata-anomalies/venv/bin/python" -c 'import collector, sys; print(sys.version_info[:2])')" \
  = "$(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin python3 -c 'import sys; print(sys.version_info[:2])')" ] \
  || fail "the static build's venv is not the python3 of the PATH systemd gives the agent"
grep -qE '^anomalies: *yes' "$static/etc/netdata/python.d.conf" || fail "the static build's python.d.conf does not enable the module"
[ -f "$static/etc/netdata/python.d/anomalies.conf" ] && [ -f "$static/etc/netdata/health.d/anomalies.conf" ] \
  || fail "the static build did not get anomalies.conf and its health alarms"
"$here/install.sh" --check --prefix "$static" --port "$port" > "$work/static-check.log" 2>&1   # no agent runs there now
grep -q "imports the module's package" "$work/static-check.log" || { cat "$work/static-check.log"; fail "install.sh --check --prefix"; }
# the admin edits the anomalies.conf the install made, upgrades, and uninstalls: the edits stay
static_conf="$static/etc/netdata/python.d/anomalies.conf"
static_health="$static/etc/netdata/health.d/anomalies.conf"
printf '\nedited:\n  charts_regex: system\\.cpu$\n' >> "$static_conf"
sed -i 's/warn: \$this > 30/warn: $this > 45/' "$static_health"   # and the alarms: a reinstall says it kept them
edited_sum="$(md5sum < "$static_conf")" edited_health="$(md5sum < "$static_health")"
# and runs its jobs as a plugins.d plugin instead (docs/install.md): the upgrade leaves the module off
static_plugin="$static/etc/netdata/custom-plugins.d/anomalies.plugin"
printf '#!/bin/sh\nexec %s/bin/python -m collector run \\\n  --config %s --update-every "${1:-1}"\n' \
  "$work/static/opt/netdata-anomalies/venv" "$static_conf" > "$static_plugin"
chmod 755 "$static_plugin"
sed -i 's/^anomalies: *yes/anomalies: no/' "$static/etc/netdata/python.d.conf"
"$here/install.sh" --prefix "$static" --no-restart > "$work/static-again.log" 2>&1 \
  || { cat "$work/static-again.log"; fail "install.sh --prefix again (an upgrade)"; }
grep -qF "left anomalies off in $static/etc/netdata/python.d.conf: $static_plugin runs the jobs of $static_conf as a plugins.d plugin" \
  "$work/static-again.log" && grep -qx 'anomalies: no' "$static/etc/netdata/python.d.conf" \
  || { cat "$work/static-again.log"; fail "the upgrade turned the module on beside the plugins.d plugin that runs its jobs"; }
grep -q "kept your $static_conf" "$work/static-again.log" || fail "the upgrade did not keep the edited anomalies.conf"
grep -q "kept your $static_health (this version's alarms: " "$work/static-again.log" \
  || { cat "$work/static-again.log"; fail "the upgrade did not say it kept the edited health alarms"; }
"$here/install.sh" --uninstall --prefix "$static" --no-restart > "$work/static-uninstall.log" 2>&1 \
  || { cat "$work/static-uninstall.log"; fail "install.sh --uninstall --prefix"; }
[ "$(md5sum < "$static_conf" 2>/dev/null)" = "$edited_sum" ] \
  || fail "uninstall after an upgrade removed or changed the anomalies.conf the admin had edited"
[ "$(md5sum < "$static_health" 2>/dev/null)" = "$edited_health" ] \
  || fail "uninstall after an upgrade removed or changed the health alarms the admin had edited"
rm "$static_conf" "$static_health" "$static_plugin" && rmdir "$static/etc/netdata/python.d" "$static/etc/netdata/health.d"
rm -f "$static/etc/netdata/python.d.conf"   # made by the install, then edited by the admin (anomalies: no): kept
rmdir "$static/etc/netdata/custom-plugins.d"   # kept by the uninstall for the admin's plugin
[ "$(cd "$work/static" && find . | sort)" = "$tree_before" ] || fail "uninstall did not leave the static build's tree as it was"
log "a static build's tree: installed under $static, upgraded keeping the edited anomalies.conf and alarms and the module off beside the plugins.d plugin, and removed, found from --prefix alone"
log "PASSED"
