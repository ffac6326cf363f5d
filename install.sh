#!/usr/bin/env bash
# Install the anomalies python.d module into a Netdata agent, or set up a development venv.
#
#   sudo ./install.sh               install into the local agent (idempotent)
#   sudo ./install.sh --uninstall   undo exactly what the install did
#   sudo ./install.sh --check       does the agent load the module, do its charts exist?
#   ./install.sh --dev              .venv with the project and its test dependencies (no root)
#
# Options for a non-default agent: --config-dir DIR (default /etc/netdata), --stock-config-dir DIR
# (default /usr/lib/netdata/conf.d), --plugins-dir DIR
# (python.d plugins dir, default /usr/lib/netdata/plugins.d), --lib-dir DIR (default
# /var/lib/netdata), --port PORT (default 19999), --python PATH (default: the python that
# python.d.plugin runs), --venv DIR (default <lib-dir>/anomalies-venv), --no-restart.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mode=install
config_dir=/etc/netdata
stock_config_dir=/usr/lib/netdata/conf.d
plugins_dir=/usr/lib/netdata/plugins.d
lib_dir=/var/lib/netdata
port=19999
python=
venv=
restart=1

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --dev) mode=dev ;;
    --uninstall) mode=uninstall ;;
    --check) mode=check ;;
    --config-dir) config_dir="$2"; shift ;;
    --stock-config-dir) stock_config_dir="$2"; shift ;;
    --plugins-dir) plugins_dir="$2"; shift ;;
    --lib-dir) lib_dir="$2"; shift ;;
    --port) port="$2"; shift ;;
    --python) python="$2"; shift ;;
    --venv) venv="$2"; shift ;;
    --no-restart) restart=0 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done

check_python() {
  local py="$1"
  command -v "$py" >/dev/null 2>&1 || die "python '$py' not found"
  "$py" - <<'EOF' || die "python '$py' is too old: Python 3.9 or newer is needed"
import sys
sys.exit(0 if sys.version_info >= (3, 9) else 1)
EOF
  "$py" -c 'import venv, ensurepip' 2>/dev/null \
    || die "python '$py' cannot create virtual environments (on Debian/Ubuntu: apt-get install python3-venv)"
}

# A venv with our pinned dependencies. Built in a temporary dir and moved into place, so a
# failed pip install leaves nothing half-made.
make_venv() {
  local py="$1" target="$2"
  shift 2
  local tmp="${target}.new.$$"
  rm -rf "$tmp"
  # scripts in a venv name its path; we only ever run "$target/bin/python", which moves fine
  "$py" -m venv "$tmp" || die "cannot create a virtual environment at $tmp"
  trap 'rm -rf "$tmp"' EXIT
  "$tmp/bin/python" -m pip install --quiet --upgrade pip setuptools wheel >/dev/null \
    || die "pip could not upgrade itself in $tmp (network or index problem?)"
  local lock="$here/requirements.lock"
  local constraint=()
  if [ -f "$lock" ] && "$tmp/bin/python" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
    constraint=(-c "$lock")
  fi
  if ! "$tmp/bin/python" -m pip install --quiet "${constraint[@]}" "$@"; then
    die "pip install failed; nothing was installed (see the pip output above)"
  fi
  rm -rf "$target"
  mv "$tmp" "$target"
  trap - EXIT
}

if [ "$mode" = dev ]; then
  py="${python:-python3}"
  check_python "$py"
  say "creating $here/.venv with the project and its test dependencies"
  make_venv "$py" "$here/.venv" -e "$here[test]"
  say "done: $here/.venv/bin/python -m collector --help"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "run as root (sudo ./install.sh), or ./install.sh --dev for a development venv"
[ "$mode" = uninstall ] || [ -x "$plugins_dir/python.d.plugin" ] \
  || die "no python.d.plugin in $plugins_dir: is Netdata with python.d installed? (Debian: apt-get install netdata netdata-plugins-python; or pass --plugins-dir)"
[ -d "$config_dir" ] || die "no Netdata config dir $config_dir (pass --config-dir)"
[ -w "$config_dir" ] || die "cannot write to $config_dir"

user_plugins="$config_dir/custom-plugins.d/python.d"
module="$user_plugins/anomalies.chart.py"
marker="$user_plugins/anomalies.venv"
user_conf="$config_dir/python.d/anomalies.conf"
pythond_conf="$config_dir/python.d.conf"
health_conf="$config_dir/health.d/anomalies.conf"
venv_given="$venv"
venv="${venv:-$lib_dir/anomalies-venv}"
state="$lib_dir/anomalies-install.state"
if [ -z "$python" ]; then
  python="$(head -n1 "$plugins_dir/python.d.plugin" | sed -n 's/^#! *//p' | awk '{print $1}')"
  case "$python" in */env) python="$(head -n1 "$plugins_dir/python.d.plugin" | sed -n 's/^#! *//p' | awk '{print $2}')";; esac
  # upstream builds start python.d.plugin with bash, which then execs python3
  "${python:-false}" -c 'import sys' >/dev/null 2>&1 || python=python3
fi

restart_agent() {
  [ "$restart" -eq 1 ] || { say "restart the agent to apply: systemctl restart netdata"; return; }
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet netdata 2>/dev/null; then
    systemctl restart netdata && say "restarted netdata" && return
  fi
  if pgrep -x netdata >/dev/null 2>&1; then
    say "netdata is running but not under systemd: restart it to apply (or: pkill -f python.d.plugin, it is restarted by the agent)"
  else
    say "netdata is not running: start it to apply (systemctl start netdata)"
  fi
}

set_pythond() {  # set_pythond yes|no|remove
  local value="$1"
  if [ ! -f "$pythond_conf" ]; then
    [ "$value" = remove ] && return
    if [ -f "$stock_config_dir/python.d.conf" ]; then
      cp "$stock_config_dir/python.d.conf" "$pythond_conf"
    else
      printf '# python.d.plugin configuration\n' > "$pythond_conf"
    fi
  fi
  local tmp
  tmp="$(mktemp)"
  grep -vE '^[# ]*anomalies *:' "$pythond_conf" > "$tmp" || true
  [ "$value" = remove ] || printf 'anomalies: %s\n' "$value" >> "$tmp"
  cat "$tmp" > "$pythond_conf"
  rm -f "$tmp"
}

if [ "$mode" = check ]; then
  ok=1
  for f in "$module" "$marker"; do
    [ -e "$f" ] && say "found $f" || { say "missing $f"; ok=0; }
  done
  grep -qE '^anomalies: *yes' "$pythond_conf" 2>/dev/null && say "enabled in $pythond_conf" || { say "not enabled in $pythond_conf"; ok=0; }
  if command -v curl >/dev/null 2>&1; then
    body="$(curl -fsS "http://127.0.0.1:$port/api/v1/charts" 2>/dev/null || true)"
    if [ -z "$body" ]; then
      say "agent API on 127.0.0.1:$port does not answer"; ok=0
    else
      for ctx in anomalies.probability anomalies.anomaly; do
        # a here-string, not a pipe: grep -q stops reading early, and pipefail would call that a failure
        grep -q "\"context\": *\"$ctx\"" <<< "$body" && say "chart with context $ctx exists" \
          || { say "no chart with context $ctx yet (the first training waits for train_min_n_secs, 5 minutes, of history after a fresh agent start)"; ok=0; }
      done
    fi
  fi
  [ "$ok" -eq 1 ] && { say "OK"; exit 0; } || exit 1
fi

if [ "$mode" = uninstall ]; then
  [ -f "$state" ] || die "no install record at $state: nothing to undo"
  # shellcheck disable=SC1090
  . "$state"
  [ -n "$venv_given" ] && venv="$venv_given"   # else the one the install recorded
  rm -f "$module" "$marker" && say "removed the module from $user_plugins"
  [ "${installed_health:-0}" = 1 ] && rm -f "$health_conf" && say "removed $health_conf"
  if [ "${installed_conf:-0}" = 1 ] && [ -f "$user_conf" ]; then
    if cmp -s "$user_conf" "$here/anomalies.conf"; then
      rm -f "$user_conf" && say "removed $user_conf (unchanged)"
    else
      say "kept $user_conf: it has your edits"
    fi
  fi
  backup="$lib_dir/anomalies-python.d.conf.orig"
  if [ -f "$pythond_conf" ] && [ "$(sha256sum < "$pythond_conf")" = "${pythond_sum:-}" ]; then
    if [ -f "$backup" ]; then
      cat "$backup" > "$pythond_conf" && say "restored $pythond_conf as it was before the install"
    else
      rm -f "$pythond_conf" && say "removed $pythond_conf (the install created it)"
    fi
  elif [ -n "${previous_pythond:-}" ]; then
    set_pythond "$previous_pythond" && say "restored the anomalies line of $pythond_conf"
  else
    set_pythond remove && say "removed the anomalies line from $pythond_conf"
  fi
  rm -f "$backup"
  rm -rf "$venv" && say "removed $venv"
  if [ -d "$lib_dir/anomalies-models" ]; then
    rm -rf "$lib_dir/anomalies-models" && say "removed the saved models in $lib_dir/anomalies-models"
  fi
  rm -f "$state"
  restart_agent
  exit 0
fi

check_python "$python"
say "agent python: $python ($("$python" -c 'import sys; print(sys.version.split()[0])'))"
"$python" -c 'import yaml' 2>/dev/null || say "warning: $python has no PyYAML; python.d.plugin needs it (Debian: apt-get install python3-yaml)"

say "installing dependencies into $venv"
mkdir -p "$lib_dir"
make_venv "$python" "$venv" "$here"

previous_pythond="$(grep -E '^[ ]*anomalies *:' "$pythond_conf" 2>/dev/null | head -n1 | sed 's/.*: *//' || true)"
installed_conf=0
installed_health=0
# a re-install keeps what the first install recorded, so --uninstall still undoes that
# shellcheck disable=SC1090
[ -f "$state" ] && . "$state"

mkdir -p "$user_plugins"
install -m 0644 "$here/anomalies.chart.py" "$module"
printf '%s\n' "$venv" > "$marker"
say "installed the module to $module (it takes precedence over a stock anomalies module)"

mkdir -p "$config_dir/python.d"
if [ -f "$user_conf" ]; then
  say "kept your $user_conf"
else
  install -m 0640 "$here/anomalies.conf" "$user_conf"
  chgrp netdata "$user_conf" 2>/dev/null || true
  installed_conf=1
  say "installed $user_conf"
fi
if [ -f "$here/health.d/anomalies.conf" ]; then
  mkdir -p "$config_dir/health.d"
  if [ ! -f "$health_conf" ]; then
    install -m 0644 "$here/health.d/anomalies.conf" "$health_conf"
    installed_health=1
    say "installed $health_conf"
  fi
fi
backup="$lib_dir/anomalies-python.d.conf.orig"
if [ ! -f "$state" ] && [ -f "$pythond_conf" ]; then
  cp "$pythond_conf" "$backup"
fi
set_pythond yes
say "enabled anomalies in $pythond_conf"
cat > "$state" <<EOF
previous_pythond='${previous_pythond}'
installed_conf=${installed_conf}
installed_health=${installed_health}
pythond_sum='$(sha256sum < "$pythond_conf")'
venv='${venv}'
EOF
restart_agent
say "done. Check with: sudo $0 --check --port $port"
