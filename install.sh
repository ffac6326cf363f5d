#!/usr/bin/env bash
# Install the anomalies python.d module into a Netdata agent, or set up a development venv.
#
#   sudo ./install.sh               install into the local agent (idempotent)
#   sudo ./install.sh --uninstall   undo exactly what the install did
#   sudo ./install.sh --check       does the agent load the module, do its charts exist?
#   ./install.sh --dev              .venv with the project and its test dependencies (no root)
#
# The agent is looked for where Debian's packages (/usr/lib/netdata/plugins.d), Netdata's own
# packages (/usr/libexec/netdata/plugins.d) and its static build (/opt/netdata) put it.
# Options for another agent: --prefix DIR (where it is installed: / or /opt/netdata),
# --config-dir DIR (<prefix>/etc/netdata), --stock-config-dir DIR (<prefix>/usr/lib/netdata/conf.d),
# --plugins-dir DIR (the folder of python.d.plugin), --lib-dir DIR (<prefix>/var/lib/netdata),
# --port PORT (default 19999), --python PATH (default: the python that python.d.plugin runs),
# --venv DIR (default /var/lib/netdata-anomalies/venv: see below), --no-restart.
# The venv and the install record are kept in a folder only root writes: beside the agent's lib
# dir (/var/lib/netdata-anomalies; <lib-dir>-anomalies for a --lib-dir elsewhere), or beside the
# tree of an agent under a prefix (/opt/netdata-anomalies). The install runs the venv's python
# as root, and the lib dir is the netdata user's.
set -euo pipefail
umask 022   # the agent runs as the netdata user: what is installed must be readable to it

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mode=
config_dir_given=
lib_dir_given=
prefix=
config_dir=
stock_config_dir=
plugins_dir=
lib_dir=
port=19999
python=
venv=
restart=1

cleanup=()   # temporary paths, removed however the script ends
trap 'rm -rf ${cleanup[@]+"${cleanup[@]}"}' EXIT
say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

set_mode() { [ -z "$mode" ] || [ "$mode" = "$1" ] || die "--$mode and --$1 do not go together"; mode="$1"; }
value() { [ $# -ge 2 ] && [ -n "$2" ] && [ "${2#--}" = "$2" ] || die "$1 needs a value (see --help)"; }
agent_options=()   # the options that name the agent, to repeat in the hint at the end
while [ $# -gt 0 ]; do
  case "$1" in
    --dev) set_mode dev ;;
    --uninstall) set_mode uninstall ;;
    --check) set_mode check ;;
    --prefix) value "$@"; prefix="$2"; agent_options+=("$1" "$2"); shift ;;
    --config-dir) value "$@"; config_dir="$2"; config_dir_given=1; agent_options+=("$1" "$2"); shift ;;
    --stock-config-dir) value "$@"; stock_config_dir="$2"; shift ;;
    --plugins-dir) value "$@"; plugins_dir="$2"; agent_options+=("$1" "$2"); shift ;;
    --lib-dir) value "$@"; lib_dir="$2"; lib_dir_given=1; agent_options+=("$1" "$2"); shift ;;
    --port) value "$@"; port="$2"; agent_options+=("$1" "$2"); shift ;;
    --python) value "$@"; python="$2"; shift ;;
    --venv) value "$@"; venv="$2"; shift ;;
    --no-restart) restart=0 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
mode="${mode:-install}"

# The venv and the install record of the agent with lib dir LIB are kept in a folder of root's
# beside it (/var/lib/netdata-anomalies; LIB-anomalies), or beside the tree of an agent installed
# under a prefix (/opt/netdata-anomalies: the static build's installer gives its var/ to the
# netdata user)
own_dir_of() {
  local lib="${1%/}"
  case "$lib" in
    ?*/var/lib/netdata) printf '%s-anomalies' "${lib%/var/lib/netdata}" ;;
    *) printf '%s-anomalies' "$lib" ;;
  esac
}
# The record: in that folder, or where an older version of this script kept it, in the lib dir
# itself (read, and moved by an upgrade); the newer of the two where both are (an older version
# run over this one's install rewrote its own)
record_of() {  # record_of LIB: the path of that agent's install record, or 1 when there is none
  local own old
  own="$(own_dir_of "$1")/install.state" old="${1%/}/anomalies-install.state"
  if [ -f "$old" ] && { [ ! -f "$own" ] || [ "$old" -nt "$own" ]; }; then
    printf '%s' "$old"
  elif [ -f "$own" ]; then
    printf '%s' "$own"
  else
    return 1
  fi
}
# Why a record may not be root's writing (every install writes it as root), or nothing: an
# older version's lies in the lib dir, where the netdata user may put any file, or give its
# name to another: the file looked at is the one open as FD, which is read (not the name again)
record_not_roots() {  # record_not_roots FILE FD
  local uid links file
  [ ! -L "$1" ] || { printf 'it is a link (to %s)' "$(readlink -f -- "$1")"; return 0; }
  read -r uid links file <<< "$(stat -L -c '%u %h %d:%i' -- "/dev/fd/$2")"
  if [ "$file" != "$(stat -c '%d:%i' -- "$1" 2>/dev/null)" ]; then
    printf 'another file took its name as it was read'
  elif [ "$uid" != 0 ]; then
    printf 'it is owned by %s, and an install writes it as root' "$(stat -L -c %U -- "/dev/fd/$2")"
  elif [ "$links" != 1 ]; then
    printf 'it has %s hard links, and an install writes it as one file' "$links"
  fi
}
# Whether only root can change what is at PATH, as the system walks it: every folder it goes
# through (those that exist, the folders its links lead through too) is root's, no other user can
# rename what is in it (a sticky folder, as /tmp, lets no one rename another's files), and each
# link on the way is root's; so is what is at PATH. Prints the first that fails, and why.
# (Not the path realpath gives: a link in another user's folder can be pointed elsewhere after the look.)
root_only() {
  local rest="${1#/}" d=/ c next uid gid mode links=0
  [ -n "$1" ] && [ "$rest" != "$1" ] || { printf "'%s' is no folder's path" "$1"; return 1; }
  while :; do
    c=   # the next name to look up in d ('..' is d's own parent: nothing in d can change it)
    while [ -z "$c" ] && [ -n "$rest" ]; do
      c="${rest%%/*}"
      [ "$c" = "$rest" ] && rest= || rest="${rest#*/}"
      case "$c" in .) c= ;; ..) c= d="$(dirname "$d")" ;; esac
    done
    read -r uid gid mode <<< "$(stat -c '%u %g %a' -- "$d")"
    mode=$((8#$mode))
    if [ "$uid" != 0 ]; then
      printf '%s is owned by %s' "$d" "$(stat -c %U -- "$d")"; return 1
    elif (( (mode & 8#1000) == 0 && (mode & 8#2) )); then
      printf '%s can be written by every user' "$d"; return 1
    elif (( (mode & 8#1000) == 0 && (mode & 8#20) )) && [ "$gid" != 0 ]; then
      printf '%s can be written by the group %s' "$d" "$(stat -c %G -- "$d")"; return 1
    fi
    [ -n "$c" ] || return 0
    next="${d%/}/$c"
    if [ -L "$next" ]; then
      [ "$(stat -c %u -- "$next")" = 0 ] || { printf '%s is a link owned by %s' "$next" "$(stat -c %U -- "$next")"; return 1; }
      (( ++links <= 40 )) || { printf '%s: too many links' "$1"; return 1; }
      c="$(readlink -- "$next")"
      [ "${c#/}" = "$c" ] || d=/
      rest="${c#/}${rest:+/$rest}"
    elif [ -e "$next" ]; then
      d="$next"
    else
      return 0   # not there yet: what root makes in a folder no one else can change is root's
    fi
  done
}
case "$port" in ''|*[!0-9]*) die "--port must be a number, got '$port'" ;; esac
[ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die "--port must be 1 to 65535, got $port"
if [ "$mode" = dev ] && { [ -n "$venv" ] || [ ${#agent_options[@]} -gt 0 ]; }; then
  die "--dev makes $here/.venv and takes only --python"
fi

# Where the agent is: the folder holding python.d.plugin under each place an agent is installed
# (Debian's packages keep plugins in usr/lib, Netdata's packages and static build in usr/libexec);
# the other folders follow from the prefix that holds it. Options given name their folder as is.
layouts=()
if [ -z "$plugins_dir" ] && [ "$mode" != dev ]; then
  if [ -n "$prefix" ]; then
    [ -d "$prefix" ] || die "--prefix $prefix is not a folder"
    prefixes=("$(realpath -m "$prefix")")
  else
    prefixes=(/ /opt/netdata)
  fi
  for p in "${prefixes[@]}"; do
    for sub in usr/lib/netdata/plugins.d usr/libexec/netdata/plugins.d; do
      [ -x "${p%/}/$sub/python.d.plugin" ] && layouts+=("${p%/}|${p%/}/$sub")
    done
  done
  looked="$(for p in "${prefixes[@]}"; do printf '%s/usr/lib/netdata/plugins.d, %s/usr/libexec/netdata/plugins.d, ' "${p%/}" "${p%/}"; done)"
  looked="${looked%, }"
  if [ "${#layouts[@]}" -gt 1 ] && [ "$mode" = uninstall ] && [ -z "$lib_dir_given" ]; then
    # two agents: the one the install went into is the one with the install record
    recorded=()
    for l in "${layouts[@]}"; do ! record_of "${l%%|*}/var/lib/netdata" >/dev/null || recorded+=("$l"); done
    [ "${#recorded[@]}" -eq 0 ] || layouts=("${recorded[@]}")
  fi
  # one prefix with both plugin folders is one agent to remove, but which is it to install into?
  if [ "${#layouts[@]}" -gt 1 ] && { [ "$mode" != uninstall ] || [ "$(printf '%s\n' "${layouts[@]%%|*}" | sort -u | wc -l)" -gt 1 ]; }; then
    die "python.d.plugin is in more than one place ($(printf '%s ' "${layouts[@]#*|}" | sed 's/ $//')): pass $([ -n "$prefix" ] && echo --plugins-dir || echo '--prefix or --plugins-dir') to name the agent's"
  fi
fi
if [ "${#layouts[@]}" -ge 1 ]; then
  prefix="${layouts[0]%%|*}" plugins_dir="${layouts[0]#*|}"
elif [ -z "$plugins_dir" ]; then   # none found: Debian's, which the error below names
  plugins_dir="${prefix%/}/usr/lib/netdata/plugins.d"
elif [ -z "$prefix" ]; then   # a plugins dir given in an agent's usual place tells its prefix
  case "$(realpath -m "$plugins_dir")" in
    */usr/lib/netdata/plugins.d|*/usr/libexec/netdata/plugins.d)
      prefix="$(realpath -m "$plugins_dir")" prefix="${prefix%/usr/lib*/netdata/plugins.d}" ;;
  esac
fi
prefix="${prefix%/}"
config_dir="${config_dir:-$prefix/etc/netdata}"
stock_config_dir="${stock_config_dir:-$prefix/usr/lib/netdata/conf.d}"
lib_dir="${lib_dir:-$prefix/var/lib/netdata}"
# absolute paths: the marker and the install record are read from the agent's own directory
config_dir="$(realpath -m "$config_dir")"
stock_config_dir="$(realpath -m "$stock_config_dir")"
plugins_dir="$(realpath -m "$plugins_dir")"
lib_dir="$(realpath -ms "$lib_dir")"   # (as named, not where its links lead: in a static build they are the netdata user's)
[ -z "$venv" ] || venv="$(realpath -m "$venv")"

# An install record elsewhere than the lib dir's found: one by an older version of this script
# (which kept /var/lib/netdata whatever the plugins dir), or, for --uninstall where no agent
# is found any more, the only one there is. Its agent config decides.
# The record is read, never run: an older version's lies in the agent's lib dir, which the
# netdata user owns (and so may replace any file in), and this script runs as root. Each line
# must be one assignment to a key a record holds, its value as printf %q (or an older version's
# single quotes) wrote it: words without a character the shell would act on, \-escapes, '...'
# and $'...' strings.
record_keys=(config_dir_at venv pythond_line had_pythond_line created_pythond pythond_sum installed_conf conf_sum
  written_conf_sum installed_health health_sum previous_pythond made_dirs quieted)
record_value="^([^][:space:][:cntrl:]\"\\\$\`;&|<>(){}*?!^'[]|\\\\.|'[^']*'|\\\$'([^'\\\\]|\\\\.)*')*\$"
read_record() {  # read_record FILE: assign the record's keys (in the caller's scope); 1 if it is not one
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    [ -n "$line" ] || continue
    [[ "$line" == *=* && " ${record_keys[*]} " == *" ${line%%=*} "* && "${line%%=*}" =~ ^[a-z_]+$
       && "${line#*=}" =~ $record_value ]] || return 1
    eval "$line"
  done < "$1"
}
record_config_dir() { ( config_dir_at=; read_record "$1" 2>/dev/null && printf '%s' "$config_dir_at" ) || true; }
if [ "$mode" != dev ] && [ -z "$lib_dir_given" ] && ! record_of "$lib_dir" >/dev/null; then
  for d in /var/lib/netdata /opt/netdata/var/lib/netdata; do
    [ "$d" != "$lib_dir" ] && found="$(record_of "$d")" || continue
    at="$(record_config_dir "$found")"
    if [ "$at" = "$config_dir" ] || { [ "$mode" = uninstall ] && [ "${#layouts[@]}" -eq 0 ] && [ -z "$config_dir_given" ]; }; then
      lib_dir="$d"
      printf 'install.sh: the install record is %s (of the agent config in %s)\n' "$found" "${at:-?}"
      break
    fi
  done
fi

check_python() {
  local py="$1" version
  command -v "$py" >/dev/null 2>&1 || die "python '$py' not found"
  version="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" \
    || die "'$py' does not run as a Python interpreter"
  "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' \
    || die "python '$py' is $version, too old: Python 3.9 or newer is needed"
  "$py" -c 'import venv, ensurepip' 2>/dev/null \
    || die "python '$py' cannot create virtual environments (on Debian/Ubuntu: apt-get install python3-venv)"
}

ours_venv() {  # ours_venv DIR: whether DIR is a virtual environment that has this project installed
  # (the install record names the venv, and the netdata user can write the record: root removes
  # or replaces only a venv of this project's, never another program's a changed record names)
  local d="${1%/}"
  local info
  [ -d "$d" ] && [ ! -L "$d" ] && [ -f "$d/pyvenv.cfg" ] || return 1
  for info in "$d"/lib/python*/site-packages/netdata_anomalies-*.dist-info; do   # (the folder's name taken as it is)
    [ -d "$info" ] && return 0
  done
  return 1
}

remove_venv() {  # remove_venv DIR: remove DIR, a venv of this project's, from within its folder, entered once
  # (the path may go through the netdata user's lib dir, an older version's venv or a record it
  # changed: a link there pointed elsewhere between the look and the removal had root remove another folder)
  local name
  name="$(basename -- "$1")"
  [ "${1#/}" != "$1" ] && ( cd -P -- "$(dirname -- "$1")" && ours_venv "./$name" && rm -rf -- "./$name" )
}

# A venv with our pinned dependencies. Built in a temporary dir and moved into place, so a
# failed pip install leaves nothing half-made.
make_venv() {
  local py="$1" target="$2"
  shift 2
  # a venv replaces a venv; anything else at the target is someone's data, never deleted
  if [ -e "$target" ] && [ ! -f "$target/pyvenv.cfg" ]; then
    die "$target exists and is not a virtual environment: give --venv a new folder (it is replaced on every install)"
  fi
  # made here, under a name nobody can guess: a folder or link put at a name known in advance, by
  # a user who can write beside the target, would hold the python this script then runs as root
  local tmp
  tmp="$(mktemp -d "${target}.new.XXXXXX")" && chmod 0755 "$tmp" || die "cannot create a folder beside $target"
  cleanup+=("$tmp")
  "$py" -m venv --prompt "$(basename "$target")" "$tmp" || die "cannot create a virtual environment at $tmp"
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
  # its scripts (pip, pytest, activate) name the folder they were made in: name the final one
  # (plain text replaced as text: a path may hold any character sed would read as its own)
  local f text
  for f in "$target"/bin/*; do
    [ -f "$f" ] && [ ! -L "$f" ] && grep -qIF "$tmp" "$f" 2>/dev/null || continue
    text="$(cat "$f"; printf x)" || die "cannot read $f"
    text="${text%x}"   # (the x keeps the file's last newlines, which $(...) drops)
    printf '%s' "${text//"$tmp"/"$target"}" > "$f.new" && chmod --reference="$f" "$f.new" && mv -f "$f.new" "$f" \
      || die "cannot rewrite $f"
  done
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
own_dir="$(own_dir_of "$lib_dir")"   # the venv's and the install record's: root's alone
state="$own_dir/install.state"
legacy_state="$lib_dir/anomalies-install.state"   # where an older version kept the record
record="$(record_of "$lib_dir" || true)"   # the record there is, in either place

# The install record (root's folder beside the lib dir): what the install found and did, so that --uninstall
# undoes exactly that and a re-install keeps what the first one found. Values are written
# with printf %q and read back by sourcing; a record of an older version reads as well.
# the start of the sha256 of every anomalies.conf shipped before the record held written_conf_sum
shipped_conf_sums="e43e38f4f82ff9ca 736c044c6b3fddd2 2a875c8e52c82f15 d75cb99729bc8997 6c5bb0a90dd7ccd2
5dfeb0440815a663 b3f64fdb327f1f04 2689da446929a158 dc27a2ccdcb48252 00c84f91291d60d7
ab02eb9300fad575 ab9bfbb294535b8d 9493db19470a4604 6e6aaca9a13f1931 0665cafb538f2739
734f802aa388d7cb 05b98998296580df 899af221a0d0b4b9 c23b95275207d0fe f02a686af1237806
c98f3e94f6dc2bb5 258f4bf07b9d4f42 d68166b404edb30f 3291d06ee737ad91 514e2afee4c8b447
14c9eeb435120a90 8f993f8f01afbe4e 99c2c987c8e9d144 fd027154873896b3 631dcad85e7dd689
c49c29524c4a0d81 2ed980c056715cf1 31b719c51877bb07 fda8528a23166bf6 a260d98f1ff291c1
c56fecabe244eb0b b4f7a245dcfc9ef9 597d59649d0de22f 9f5e36d45e115ddb 8ca71825367afc1a
ab8b074156ff8641 94b06ea5b878e865"
rec_config_dir= rec_venv= rec_pythond_line= rec_had_pythond_line= rec_created_pythond= rec_pythond_sum=
rec_installed_conf= rec_conf_sum= rec_installed_health= rec_health_sum= rec_legacy_previous= rec_made_dirs=
rec_quieted=
load_record() {  # load_record FILE: FILE's keys (in the caller's scope), once it is known to be root's writing
  local why fd
  exec {fd}< "$1" || die "cannot read the install record $1"
  why="$(record_not_roots "$1" "$fd")"
  [ -z "$why" ] || die "the install record $1 is not read: $why, so another user may have put it there; look at it, and remove it if it is not yours (after a chown -R of the lib dir: chown root:root it)"
  read_record "/dev/fd/$fd" || die "the install record $1 holds lines no install writes (it is read as data, never run): not read; look at it, and remove it if it is not yours"
  exec {fd}<&-
}
merged_older=   # 1: an older version's install over this one's, of which its record's venv is read
load_state() {
  [ -n "$record" ] || return 0
  local config_dir_at= venv= pythond_line= had_pythond_line= created_pythond= pythond_sum= installed_conf=
  local conf_sum= written_conf_sum= installed_health= health_sum= previous_pythond= made_dirs= quieted=
  load_record "$record"
  if [ "$record" = "$legacy_state" ] && [ -f "$state" ]; then
    # an older version installed over this one's install: it took this install's changes for
    # what was there before, which root's own record holds; what it adds is its venv
    merged_older=1
    local key older_venv="$venv"
    for key in "${record_keys[@]}"; do printf -v "$key" ''; done
    load_record "$state"
    venv="$older_venv"
  fi
  # (an older record's conf_sum is trusted only as the checksum of a shipped file: its upgrades
  # took it from the file as they found it, edited or not; without a checksum a file is the user's)
  rec_config_dir="$config_dir_at" rec_venv="$venv" rec_pythond_line="$pythond_line"
  rec_had_pythond_line="$had_pythond_line" rec_created_pythond="$created_pythond"
  rec_pythond_sum="$pythond_sum" rec_installed_conf="$installed_conf" rec_conf_sum="$written_conf_sum"
  if [ -z "$written_conf_sum" ] && [ -n "$conf_sum" ] && [[ " ${shipped_conf_sums//$'\n'/ } " == *" ${conf_sum:0:16} "* ]]; then
    rec_conf_sum="$conf_sum"   # an older record's, of a file as a version shipped it: never edited
  fi
  rec_installed_health="$installed_health" rec_health_sum="$health_sum" rec_legacy_previous="$previous_pythond"
  rec_made_dirs="$made_dirs" rec_quieted="$quieted"
}
save_state() {
  local tmp   # a name nobody can guess, as make_venv's (the folder is checked to be root's alone before)
  tmp="$(mktemp "$state.new.XXXXXX")" && chmod 0644 "$tmp" || die "cannot write the install record $state"
  cleanup+=("$tmp")
  {
    printf 'config_dir_at=%q\n' "$config_dir"
    printf 'venv=%q\n' "$venv"
    printf 'had_pythond_line=%q\n' "$rec_had_pythond_line"
    printf 'pythond_line=%q\n' "$rec_pythond_line"
    printf 'previous_pythond=%q\n' "$rec_legacy_previous"
    printf 'created_pythond=%q\n' "$rec_created_pythond"
    printf 'pythond_sum=%q\n' "$rec_pythond_sum"
    printf 'installed_conf=%q\n' "$rec_installed_conf"
    printf 'written_conf_sum=%q\n' "$rec_conf_sum"
    printf 'installed_health=%q\n' "$rec_installed_health"
    printf 'health_sum=%q\n' "$rec_health_sum"
    printf 'made_dirs=%q\n' "$rec_made_dirs"
    printf 'quieted=%q\n' "$rec_quieted"
  } > "$tmp" && mv "$tmp" "$state" || die "cannot write the install record $state"
  if [ -e "$legacy_state" ] || [ -L "$legacy_state" ]; then   # an older version's, in the lib dir
    local gone="removed $legacy_state (where an older version kept the install record; $state is newer)"
    if [ "$record" = "$legacy_state" ]; then
      gone="moved the install record from $legacy_state to $state"
      [ -z "$merged_older" ] || gone="took the venv from $legacy_state (an older version installed over this one's install) into $state, whose record of the install before it stands"
    fi
    rm -f "$legacy_state" && say "$gone"
  fi
  record="$state"
}
load_state
if [ -n "$rec_config_dir" ] && [ "$rec_config_dir" != "$config_dir" ]; then
  if [ -n "$config_dir_given" ]; then
    die "the install record $record is for the agent config in $rec_config_dir, not $config_dir: pass --config-dir $rec_config_dir (or nothing)"
  fi
  config_dir="$rec_config_dir"
fi

[ "$mode" = uninstall ] || [ -x "$plugins_dir/python.d.plugin" ] \
  || die "no python.d.plugin in ${looked:-$plugins_dir}: is Netdata with python.d installed? (Debian's packages: apt-get install netdata netdata-plugins-python; Netdata's: netdata-plugin-pythond; installed elsewhere: pass --prefix or --plugins-dir)"
[ -d "$config_dir" ] || die "no Netdata config dir $config_dir (pass --config-dir)"
[ -w "$config_dir" ] || die "cannot write to $config_dir"

user_plugins="$config_dir/custom-plugins.d/python.d"
module="$user_plugins/anomalies.chart.py"
marker="$user_plugins/anomalies.venv"
user_conf="$config_dir/python.d/anomalies.conf"
pythond_conf="$config_dir/python.d.conf"
health_conf="$config_dir/health.d/anomalies.conf"
# python.d.plugin's log lines, where the agent keeps them in a file: error.log up to 1.37,
# collector.log from 1.38 (1.44 and later log to the journal instead where systemd runs them); collector.log
# first: an error.log beside it is the one an upgraded agent left, its lines from before the upgrade
agent_logs=("$prefix/var/log/netdata/collector.log" "$prefix/var/log/netdata/error.log")
agent_log_names="$prefix/var/log/netdata/error.log, collector.log or journalctl -u netdata"
legacy_backup="$lib_dir/anomalies-python.d.conf.orig"   # kept by older versions of this script
# the venv: --venv, else the record's, else in root's folder beside the lib dir. One an older
# version made in the lib dir is moved there by the install: the netdata user could put a folder
# of its own in its place, whose python this script runs as root
moved_venv=
if [ -z "$venv" ]; then
  venv="${rec_venv:-$own_dir/venv}"
  if [ "$mode" = install ] && [ "$venv" != "$own_dir/venv" ] && ! root_only "$venv" >/dev/null; then
    moved_venv="$venv" venv="$own_dir/venv"
  fi
fi

# the PATH of an agent started by systemd, which its plugins inherit (not root's shell's)
agent_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
plugin_interpreter() {  # what the first line of python.d.plugin runs: a path, a name looked up in PATH, or a shell
  local first py
  [ -r "$plugins_dir/python.d.plugin" ] || return 0
  first="$(head -n1 "$plugins_dir/python.d.plugin" | sed -n 's/^#! *//p')"
  py="$(awk '{print $1}' <<< "$first")"
  case "$py" in */env) py="$(awk '{print $2}' <<< "$first")" ;; esac
  printf '%s' "$py"
}
plugin_runs_shell() { case "$(plugin_interpreter)" in bash|sh|*/bash|*/sh) return 0 ;; esac; return 1; }
plugin_python() {  # the python python.d.plugin runs, or nothing when its first line does not say
  local py
  py="$(plugin_interpreter)"
  if plugin_runs_shell; then   # Netdata's packages and static build: a shell line that runs python3 from PATH
    py="$(PATH="$agent_path" command -v python3 || PATH="$agent_path" command -v python || true)"
  elif [ -n "$py" ] && [ "${py#*/}" = "$py" ]; then   # '#!/usr/bin/env python3': looked up in the agent's PATH
    py="$(PATH="$agent_path" command -v "$py" || true)"
  fi
  if "${py:-false}" -c 'import sys' >/dev/null 2>&1; then printf '%s' "$py"; fi
}
agent_python=
if [ "$mode" != uninstall ]; then
  agent_python="$(plugin_python || true)"
  runs="$agent_python"
  if [ -z "$runs" ]; then
    runs="$(plugin_runs_shell && echo "python3 from PATH, none in $agent_path" || echo "a python its first line does not name")"
  fi
  say "agent: $plugins_dir/python.d.plugin (runs $runs), config in $config_dir, data in $lib_dir"
fi
# python.d.plugin looks in custom-plugins.d/python.d since Netdata 1.36 (NETDATA_USER_PLUGINS_DIRS);
# an older one loads only its own python.d folder, where a package upgrade would replace the file
old_pythond=
if [ "$mode" != uninstall ] && grep -q 'python_modules' "$plugins_dir/python.d.plugin" 2>/dev/null \
   && ! grep -q 'NETDATA_USER_PLUGINS_DIRS' "$plugins_dir/python.d.plugin" 2>/dev/null; then
  old_pythond="this python.d.plugin is older than Netdata 1.36: it loads modules only from its own python.d folder, not from $config_dir/custom-plugins.d/python.d, so it will not run this module; upgrade Netdata, or run the job as a plugins.d plugin (docs/install.md, 'As a plugins.d plugin instead')"
  [ "$mode" = check ] || say "warning: $old_pythond"
fi
pyver() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }
# what python.d.plugin makes of python.d.conf for this module, read as it reads it (YAML, the
# user's file over the stock one): 'yes', or why not; fails where no python here reads YAML
pythond_enabled() {
  local py
  for py in "${python:-$agent_python}" "$venv/bin/python" python3; do
    # (a venv another user can change is not run as root)
    [ -n "$py" ] && { [ "$py" != "$venv/bin/python" ] || root_only "$venv" >/dev/null; } \
      && "$py" -c 'import yaml' >/dev/null 2>&1 && break
    py=
  done
  [ -n "$py" ] || return 1
  "$py" - "$pythond_conf" "$stock_config_dir/python.d.conf" <<'EOF'
import os, sys, yaml
user, stock = sys.argv[1:3]
config, lines, why = {'enabled': True}, {}, ''
for path in (stock, user):
    if not os.path.isfile(path):
        continue
    try:
        with open(path) as f:
            text = f.read()
        data, root = yaml.safe_load(text), yaml.compose(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        if path == user:
            mark = getattr(e, 'problem_mark', None)
            why = 'it is not valid YAML{}: python.d.plugin ignores it'.format(
                ' (line {})'.format(mark.line + 1) if mark is not None else '')
        continue
    if data is None and path == user:
        print('it holds only comments: python.d.plugin 1.37 stops on such a file, with every module; '
              'add the line anomalies: yes')
        sys.exit(0)
    if isinstance(data, dict):
        config.update(data)
        for key, value in root.value:   # the line and the text of each setting (YAML keeps a key's last)
            if isinstance(value, yaml.ScalarNode):
                lines[key.value] = (value.start_mark.line + 1, value.value, path == user)
def said(key):
    line, text, here = lines.get(key, (None, config.get(key), True))
    return "'{}: {}'{}".format(key, text, ' (line {})'.format(line) if here and line else ' (the stock file)')
if not config.get('enabled'):
    print('{} turns python.d.plugin off: it runs no module'.format(said('enabled')))
elif 'anomalies' not in config:
    print(why or "no 'anomalies: yes' in it")
elif not config['anomalies']:
    print('{} turns the module off'.format(said('anomalies')))
else:
    print('yes')
EOF
}
# what a job imports when it starts (the collector and its dependencies), not only the package's name
job_imports='import collector.service, collector.engine, collector.training, numpy, pandas, sklearn, pyod'

agents_pythond() {  # the PIDs of the python.d.plugin processes an agent started, one a line: not one run by hand (the docs' debug run), nor its timeout wrapper
  local p parent
  for p in $(pgrep -f "$plugins_dir/python.d.plugin" 2>/dev/null); do
    parent="$(ps -o ppid= -p "$p" 2>/dev/null | tr -d ' ')"
    [ -n "$parent" ] && [ "$(ps -o comm= -p "$parent" 2>/dev/null)" = netdata ] && echo "$p"
  done
  return 0
}

restart_agent() {
  local how=""   # the command, where systemd is there to run it
  # (systemctl is installed in many containers whose init is not systemd: there it cannot run it)
  command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ] && how=" (systemctl restart netdata)"
  [ "$restart" -eq 1 ] || { say "restart the agent to apply$how"; return; }
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet netdata 2>/dev/null; then
    systemctl restart netdata && say "restarted netdata" && restarted=1 && return
  fi
  if pgrep -x netdata >/dev/null 2>&1; then
    local pids
    pids="$(agents_pythond | paste -sd' ' -)"
    if [ "${keep_off:-0}" = 1 ]; then   # the jobs run as a plugins.d plugin: python.d's has none of them
      say "netdata is running but not under systemd: restart it to apply (its plugins.d plugin $plugin_jobs runs the version it loaded until then)"
    elif [ -n "$pids" ]; then
      # by PID: a pattern would stop every agent's python.d.plugin on the host, and a debug run by hand
      say "netdata is running but not under systemd: restart it to apply (or stop its python.d.plugin, which the agent starts again: kill $pids)"
    else   # it exits when it has no job to run, and the agent does not start it again
      say "netdata is running but not under systemd, and its python.d.plugin is not: restart netdata to apply"
    fi
  else
    if [ "$mode" = uninstall ]; then
      say "netdata is not running: nothing of the module runs"
    else
      say "netdata is not running: start it to apply${how/restart/start}"
    fi
  fi
}

pythond_line() {  # pythond_line [MODULE]: the line of python.d.conf an install sets: the last uncommented MODULE (anomalies) line (YAML's, of several), else the first commented one
  local name="${1:-anomalies}" line
  line="$(grep -E "^[ ]*$name *:" "$pythond_conf" 2>/dev/null | tail -n1)"
  [ -n "$line" ] && printf '%s\n' "$line" && return 0
  grep -m1 -E "^[# ]*$name *:" "$pythond_conf" 2>/dev/null || true
}
replace_pythond_line() {  # replace_pythond_line TEXT [MODULE]: that line (pythond_line's) becomes TEXT (removed when empty, appended when there is none)
  local tmp="$pythond_conf.new.$$"
  NEW="$1" NAME="${2:-anomalies}" awk '
    { line[NR] = $0 }
    END {
      uncommented = "^[ ]*" ENVIRON["NAME"] " *:"; commented = "^[# ]*" ENVIRON["NAME"] " *:"
      for (i = 1; i <= NR; i++) if (line[i] ~ uncommented) at = i
      for (i = 1; i <= NR && !at; i++) if (line[i] ~ commented) at = i
      for (i = 1; i <= NR; i++) if (i != at) print line[i]; else if (ENVIRON["NEW"] != "") print ENVIRON["NEW"]
      if (!at && ENVIRON["NEW"] != "") print ENVIRON["NEW"]
    }' "$pythond_conf" > "$tmp" && cat "$tmp" > "$pythond_conf"
  local rc=$?
  rm -f "$tmp"
  return $rc
}
sum() { sha256sum < "$1" | awk '{print $1}'; }
plugins_running() {  # plugins_running VENV: the plugins.d plugins (set up as docs/install.md shows) that run VENV's python, one a line
  local f
  for f in "$config_dir"/custom-plugins.d/*.plugin; do
    [ -f "$f" ] && grep -qF "$1/bin/" "$f" 2>/dev/null && printf '%s\n' "$f"
  done
  return 0
}
ere_escape() { sed 's/[][\.*^$+?(){}|]/\\&/g' <<< "$1"; }   # a path as a regular expression (grep -E, pgrep) that matches only it
plugins_of_conf() {  # plugins_of_conf VENV: those of plugins_running VENV that run the jobs of $user_conf (python.d's), joined by ', '
  local f found=() conf
  conf="$(ere_escape "$user_conf")"
  while IFS= read -r f; do
    grep -qE -- "--config[= ]+['\"]?$conf['\"]?([[:space:]]|\$)" "$f" 2>/dev/null && found+=("$f")
  done < <(plugins_running "$1")
  [ "${#found[@]}" -eq 0 ] || { printf -v f '%s, ' "${found[@]}"; printf '%s' "${f%, }"; }
}
module_runs() {  # 'yes' when python.d.plugin runs the module by python.d.conf, else why not (': ...', or nothing when no python here reads YAML)
  local enabled
  if enabled="$(pythond_enabled)"; then
    [ "$enabled" = yes ] && printf yes || printf ': %s' "$enabled"
  else   # the line as an install writes it
    grep -qE '^anomalies: *yes' "$pythond_conf" 2>/dev/null && printf yes || true
  fi
}
agents_plugin() {  # the PIDs of the plugins.d plugin processes running the jobs of $user_conf that an agent started (the plugin's shell between them, or exec'd), one a line
  local p parent grand
  command -v pgrep >/dev/null 2>&1 || return 0
  for p in $(pgrep -f -- "-m collector run .*--config[= ]$(ere_escape "$user_conf")( |\$)" 2>/dev/null); do
    parent="$(ps -o ppid= -p "$p" 2>/dev/null | tr -d ' ')"
    [ -n "$parent" ] || continue
    grand="$(ps -o ppid= -p "$parent" 2>/dev/null | tr -d ' ')"
    { [ "$(ps -o comm= -p "$parent" 2>/dev/null)" = netdata ] \
      || { [ -n "$grand" ] && [ "$(ps -o comm= -p "$grand" 2>/dev/null)" = netdata ]; }; } && echo "$p"
  done
  return 0
}
# the jobs read the agent their host: names; the shipped file names 127.0.0.1:19999, so on an
# agent listening elsewhere they read nothing (or another agent's charts) until it is edited
host_hint() {
  [ -f "$user_conf" ] || return 0
  local hosts
  hosts="$(sed -nE "s/^[[:space:]]+host:[[:space:]]*['\"]?([^'\"[:space:]#]+).*/\1/p" "$user_conf" | sort -u)"
  [ -n "$hosts" ] && ! grep -qxE "(127\.0\.0\.1|localhost|\[::1\]):$port(/.*)?" <<< "$hosts" || return 0
  say "warning: the jobs of $user_conf read the agent at $(paste -sd, <<< "$hosts" | sed 's/,/, /g')," \
      "not this one (127.0.0.1:$port): for this agent's charts, set host: '127.0.0.1:$port' there"
}
foreach_note() {  # a health file holding `foreach` (the retired collector's alarms, kept by an install), told
  # Netdata 1.39 and later no longer make one alert per dimension of a `foreach` lookup (netdata/netdata#15472):
  # 2.x loads the template as one alert on the sum of all its chart's dimensions, after logging
  # "unknown keyword 'foreach'"; on anomalies.probability, 36 probabilities summed, a warning that never clears
  [ -f "$health_conf" ] || return 0
  local lines
  lines="$(grep -nE '^[^#]*(^|[[:space:]])foreach([[:space:]]|$)' "$health_conf" | cut -d: -f1 | paste -sd, - || true)"
  [ -n "$lines" ] || return 0
  say "warning: $health_conf has 'foreach' (line ${lines//,/, }), as the retired collector's alarms had:" \
      "Netdata 1.39 and later make no alert per dimension of it, 2.x one on the sum of the chart's dimensions" \
      "(36 probabilities summed: a warning that never clears); replace the file with $here/health.d/anomalies.conf"
}
make_dir() {  # make_dir DIR: mkdir -p, recording each folder it creates (one per line) for --uninstall
  local d="$1" new=()
  while [ ! -e "$d" ]; do new=("$d" ${new[@]+"${new[@]}"}); d="$(dirname "$d")"; done
  [ "${#new[@]}" -gt 0 ] || return 0
  mkdir -p "$1" || die "cannot create $1"
  for d in "${new[@]}"; do rec_made_dirs="${rec_made_dirs:+$rec_made_dirs$'\n'}$d"; done
  save_state
}

runner_age() {  # the seconds the agent's python.d.plugin has run (the youngest, if several), or nothing; with
  # plugin_mode=1 its plugins.d plugin's that runs the jobs
  local p t age=
  command -v pgrep >/dev/null 2>&1 || return 0
  for p in $(if [ "${plugin_mode:-0}" = 1 ]; then agents_plugin; else agents_pythond; fi); do
    t="$(ps -o etimes= -p "$p" 2>/dev/null | tr -d ' ')"
    case "$t" in ''|*[!0-9]*) continue ;; esac
    [ -n "$age" ] && [ "$age" -le "$t" ] || age="$t"
  done
  printf '%s' "$age"
}
runner=python.d.plugin   # what runs the jobs (--check: the plugins.d plugin, where it runs them instead)
first_training_s=120   # beyond train_min_n_secs: a first training's reading of the history and fitting, on a slow machine
journal_lines=   # the journal's lines of this module's jobs (module_journal), read once for every job
module_journal() {  # module_journal AGE: set journal_lines to what the agent's journal holds of the module since python.d.plugin started (AGE s ago)
  command -v journalctl >/dev/null 2>&1 || return 0   # (an agent that logs to the journal)
  local since_s=
  [ -z "$1" ] || since_s=$(( $(date +%s) - $1 - 1 ))
  journal_lines="$(journalctl -q --no-pager -o short-iso -n 100000 -u netdata ${since_s:+--since "@$since_s"} 2>/dev/null \
                   | grep -F 'anomalies[' || true)"
}
no_chart_reason() {  # no_chart_reason JOB TRAIN_MIN_N_SECS AGE: why a started job may have no chart, as ': ...' or ' yet: ...' (module_journal AGE read first)
  local job="$1" min_secs="$2" age="$3" lines= where="the agent's log ($agent_log_names)" log since_s=
  [ -z "$age" ] || since_s=$(( $(date +%s) - age - 1 ))
  for log in "${agent_logs[@]}"; do
    [ -r "$log" ] || continue
    where="$log"
    lines="$(tail -n 100000 "$log" 2>/dev/null | grep -F "anomalies[$job] :" || true)"
    if [ -n "$since_s" ]; then   # what this python.d.plugin logged, not one before it (lines begin with the local time)
      local since
      since="$(date -d "@$since_s" '+%Y-%m-%d %H:%M:%S' 2>/dev/null || true)"
      [ -z "$since" ] || lines="$(SINCE="$since" awk 'substr($0, 1, 19) >= ENVIRON["SINCE"]' <<< "$lines")"
    fi
    [ -z "$lines" ] || break
  done
  if [ -n "$journal_lines" ]; then
    local said
    said="$(grep -F "anomalies[$job] :" <<< "$journal_lines" | tail -n 1000 || true)"
    # a log file's lines may be those of the agent before an upgrade to one that logs to the
    # journal: the newer last line is told (both begin with the local time, 'T' or ' ' apart)
    if [ -n "$said" ] && { [ -z "$lines" ] || [[ "$(tail -n 1 <<< "$said" | cut -c 1-19 | tr T ' ')" > \
                                                   "$(tail -n 1 <<< "$lines" | cut -c 1-19)" ]]; }; then
      lines="$said"; where="journalctl -u netdata"
    fi
  fi
  if [ -n "$age" ] && [ "$age" -lt "$(( ${min_secs:-300} + first_training_s ))" ]; then
    local error
    error="$(grep -F ' ERROR: ' <<< "$lines" | tail -n 1 || true)"   # a wait is no error: one logged is told
    printf ' yet: %s started %s s ago, and the first training waits for train_min_n_secs (%s s) of history after a fresh agent start (a child, after it connects to the parent): check again in a few minutes%s' \
      "$runner" "$age" "${min_secs:-300}" "${error:+; the last error it logged: $error}"
    return
  fi
  lines="$(tail -n 1 <<< "$lines")"
  printf '%s: the job did not start, or has no model (it reads no chart, or a node the agent does not hold); see the lines for anomalies[%s] in %s%s' \
    "${age:+ though $runner has run $age s}" "$job" "$where" "${lines:+, the last: $lines}"
}

if [ "$mode" = check ]; then
  ok=1
  started_jobs=
  [ -z "$old_pythond" ] || { say "$old_pythond"; ok=0; }
  for f in "$module" "$marker"; do
    [ -e "$f" ] && say "found $f" || { say "missing $f"; ok=0; }
  done
  # the jobs run as a plugins.d plugin instead (docs/install.md), the module off in python.d.conf
  module_runs="$(module_runs)"
  plugin_jobs="$(plugins_of_conf "$( (cat "$marker" 2>/dev/null || echo "$venv") | head -n 1)")"
  plugin_mode=0
  if [ -n "$plugin_jobs" ] && [ "$module_runs" != yes ]; then
    plugin_mode=1; runner="the plugins.d plugin $plugin_jobs"
  fi
  # an install over a running agent not run by systemd: its python.d.plugin runs the module (and
  # the packages) it loaded before, and the charts below are that version's, until it restarts
  runner_age="$(runner_age)"
  if [ -n "$runner_age" ] && [ -f "$module" ]; then
    installed_ago=$(( $(date +%s) - $(stat -c %Y "$module") ))
    if [ "$installed_ago" -lt "$runner_age" ]; then
      say "the agent's ${runner/#the /} started $runner_age s ago, before $module was installed ($installed_ago s ago): it runs the version it loaded then; restart netdata"; ok=0
    fi
  fi
  # an anomalies.conf edited since: the jobs run with the file as it was read at their start
  if [ -n "$runner_age" ] && [ -f "$user_conf" ]; then
    edited_ago=$(( $(date +%s) - $(stat -c %Y "$user_conf") ))
    if [ "$edited_ago" -lt "$runner_age" ]; then
      say "warning: $user_conf changed $edited_ago s ago, after the agent's ${runner/#the /} started ($runner_age s ago): its jobs run with the file as it was; restart netdata to apply the change"
    fi
  fi
  if [ -f "$marker" ]; then
    mvenv="$(cat "$marker")"
    agent_py="${python:-$agent_python}"
    # from /, so that a checkout in the current folder is not what gets imported
    if ! why="$(root_only "$mvenv")"; then   # (this script runs as root: not its python)
      say "the virtual environment $mvenv named in $marker is not run: $why, and --check runs it as root; run sudo ./install.sh again, which moves it to $own_dir/venv"; ok=0
    elif [ ! -x "$mvenv/bin/python" ] || ! (cd / && "$mvenv/bin/python" -c "$job_imports" 2>/dev/null); then
      say "the virtual environment $mvenv named in $marker cannot import the module's package: run sudo ./install.sh again"; ok=0
    else
      if [ "$plugin_mode" != 1 ] && [ -n "$agent_py" ] && [ "$(pyver "$mvenv/bin/python")" != "$(pyver "$agent_py")" ]; then
        say "$mvenv is Python $(pyver "$mvenv/bin/python"), python.d.plugin runs $agent_py ($(pyver "$agent_py")): the module cannot load its packages; run sudo ./install.sh again"; ok=0
      else
        say "$mvenv imports the module's package (Python $(pyver "$mvenv/bin/python"))"
      fi
      # a job file python.d.plugin cannot read, or a key the job refuses, starts no job: the
      # charts never come, which 'no chart yet' below would put down to the training's wait
      if [ -f "$user_conf" ]; then
        # checked for the user the agent runs its plugins as, not for root (who may write anywhere)
        as_agent=(); id -u netdata >/dev/null 2>&1 && as_agent=(--user netdata)
        check_config() { (cd / && "$mvenv/bin/python" -m collector check-config ${as_agent[@]+"${as_agent[@]}"} "$user_conf" 2>&1); }
        conf_said="$(check_config)" && conf_ok=1 || conf_ok=0
        if [ "$conf_ok" -eq 0 ] && grep -q 'unrecognized arguments: --user' <<< "$conf_said"; then
          as_agent=()   # the venv of an older install (this checkout not installed yet, or a downgrade)
          conf_said="$(check_config)" && conf_ok=1 || conf_ok=0
        fi
        if [ "$conf_ok" -eq 1 ]; then
          while IFS= read -r line; do say "$line"; done <<< "$conf_said"
        else
          while IFS= read -r line; do
            case "$line" in *': ok ('* | *': warning: '*) say "$line" ;; *) say "error: $line" ;; esac
          done <<< "$conf_said"
          say "a job with an error above does not start, or writes the charts of another job of its name (a file that is not valid YAML: none of its jobs starts): fix it, then restart netdata"; ok=0
        fi
        # the jobs python.d.plugin starts, each with the type of its charts, for the charts check below
        started_jobs="$(cd / && "$mvenv/bin/python" -m collector check-config --started-jobs "$user_conf" 2>/dev/null || true)"
      fi
    fi
  fi
  if [ "$module_runs" = yes ]; then
    say "enabled in $pythond_conf"
    if [ -n "$plugin_jobs" ]; then   # both: every chart of the jobs written twice
      say "$plugin_jobs runs the jobs of $user_conf too, as a plugins.d plugin: both write each of their charts (the agent logs 'collected point is in the past'); set anomalies: no in $pythond_conf and restart netdata, or remove the plugin"; ok=0
    fi
  elif [ "$plugin_mode" = 1 ]; then
    say "not enabled in $pythond_conf$module_runs: the jobs of $user_conf run as the plugins.d plugin $plugin_jobs"
  else
    say "not enabled in $pythond_conf$module_runs"; ok=0
  fi
  host_hint
  foreach_note
  if command -v curl >/dev/null 2>&1; then
    body="$(curl -fsS "http://127.0.0.1:$port/api/v1/charts" 2>/dev/null || true)"
    if [ -z "$body" ]; then
      say "agent API on 127.0.0.1:$port does not answer (an agent on another port: --check --port PORT)"; ok=0
    else
      for ctx in anomalies.probability anomalies.anomaly; do
        # a here-string, not a pipe: grep -q stops reading early, and pipefail would call that a failure
        grep -q "\"context\": *\"$ctx\"" <<< "$body" && say "chart with context $ctx exists" \
          || { if [ "${conf_ok:-1}" = 0 ]; then say "no chart with context $ctx (a job with a configuration error above does not start)"
               else say "no chart with context $ctx yet (the first training waits for train_min_n_secs of history, 300 s by default, after a fresh agent start; the agent's log says why otherwise, $agent_log_names: grep anomalies)"; fi; ok=0; }
      done
      # one job's charts do not say the others' are there: a job that never started (a child the
      # parent does not hold, a key it refuses at start) left the check above saying OK
      runner_age="$(runner_age)"
      journal_read=0
      while IFS=$'\t' read -r job kind min_secs; do
        [ -n "$job" ] && [ -n "$kind" ] || continue
        if grep -qF "\"$kind.probability\"" <<< "$body"; then
          say "job $job: chart $kind.probability exists"
        else
          [ "$journal_read" -eq 1 ] || { module_journal "$runner_age"; journal_read=1; }   # once, not once a job
          say "job $job: no chart $kind.probability$(no_chart_reason "$job" "$min_secs" "$runner_age")"; ok=0
        fi
      done <<< "$started_jobs"
      if [ "$ok" -eq 0 ] && [ "$plugin_mode" = 1 ] && command -v pgrep >/dev/null 2>&1 && [ -z "$(agents_plugin)" ]; then
        say "$runner is not running (the agent starts the plugins in custom-plugins.d within a minute of one's making, or at its start): restart netdata; the agent's log says why it stopped ($agent_log_names: grep anomalies)"
      elif [ "$ok" -eq 0 ] && [ "$plugin_mode" = 0 ] && command -v pgrep >/dev/null 2>&1 && [ -z "$(agents_pythond)" ]; then
        say "python.d.plugin is not running: the agent starts it once, and not again after it exits (as it does with no job to run when the agent starts): restart netdata"
      fi
    fi
  else
    say "curl is not installed: the agent's charts were not checked"; ok=0
  fi
  [ "$ok" -eq 1 ] && { say "OK"; exit 0; } || exit 1
fi

if [ "$mode" = uninstall ]; then
  if [ -z "$record" ]; then
    # uninstalled already (or never installed here): a second --uninstall has nothing to do, and
    # says so without failing; a module in place without its record was put there otherwise
    if [ ! -e "$module" ] && [ ! -e "$marker" ]; then
      say "nothing to undo: no install record at $state and no $module (uninstalled already, or installed with another --prefix or --lib-dir, which --uninstall takes too)"
      # a job the agent still ran after the uninstall (until it restarted) saved its models again
      [ ! -d "$lib_dir/anomalies-models" ] \
        || say "$lib_dir/anomalies-models holds models a job saved after the uninstall (the agent ran it until it restarted): remove it by hand (sudo rm -r $lib_dir/anomalies-models)"
      exit 0
    fi
    die "no install record at $state: nothing to undo, though $module is there (an install with --prefix or --lib-dir is undone with the same option; one put in place by hand is removed by hand)"
  fi
  failed=0
  step() {  # step MESSAGE COMMAND...: run it, say MESSAGE when it worked, count it when it did not
    local msg="$1"; shift
    if "$@"; then say "$msg"; else say "error: could not: $msg"; failed=1; fi
  }
  # the jobs' Prometheus textfiles (read before anomalies.conf may go): python.d.plugin kills its
  # jobs, so each stays with its last values, which node-exporter serves for as long as it is there
  textfiles=()
  if [ -f "$user_conf" ]; then
    while IFS= read -r f; do
      case "$f" in
        /*.prom) textfiles+=("$f") ;;
        *) say "left the Prometheus textfile $f ('prometheus_textfile' in $user_conf, not an absolute path here): remove it by hand, or node-exporter serves its last values" ;;
      esac
    done < <(sed -nE "s/^[[:space:]]*prometheus_textfile:[[:space:]]*['\"]?([^'\"[:space:]#]+).*/\1/p" "$user_conf" | sort -u)
  fi
  step "removed the module from $user_plugins" rm -f "$module" "$marker"
  if [ "${rec_installed_health:-0}" = 1 ] && [ -f "$health_conf" ]; then
    # (an older install's record holds no checksum of it: only this version's own file is ours)
    if { [ -n "$rec_health_sum" ] && [ "$(sum "$health_conf")" = "$rec_health_sum" ]; } \
        || cmp -s "$here/health.d/anomalies.conf" "$health_conf"; then
      step "removed $health_conf" rm -f "$health_conf"
    elif [ -z "$rec_health_sum" ]; then
      say "kept $health_conf: it differs from this version's, and an older install recorded no checksum of the one it installed, so it may have your edits (remove it by hand if not)"
    else
      say "kept $health_conf: it has your edits"
    fi
  fi
  if [ "${rec_installed_conf:-0}" = 1 ] && [ -f "$user_conf" ]; then
    if [ -n "$rec_conf_sum" ] && [ "$(sum "$user_conf")" = "$rec_conf_sum" ] || cmp -s "$user_conf" "$here/anomalies.conf"; then
      step "removed $user_conf (unchanged)" rm -f "$user_conf"
    else
      say "kept $user_conf: it has your edits"
    fi
  fi
  if [ -f "$pythond_conf" ]; then
    if [ "${rec_created_pythond:-0}" = 1 ] && [ "$(sum "$pythond_conf")" = "$rec_pythond_sum" ]; then
      step "removed $pythond_conf (the install created it)" rm -f "$pythond_conf"
    elif grep -qE '^[ ]*anomalies *: *yes *$' "$pythond_conf"; then   # our line, as the install left it
      if [ -n "$rec_had_pythond_line" ]; then
        original="$rec_pythond_line"
      else   # a record of an older version: the value it found, or no line
        original="${rec_legacy_previous:+anomalies: $rec_legacy_previous}"
      fi
      step "put the anomalies line of $pythond_conf back as it was${original:+ ($original)}" replace_pythond_line "$original"
    fi
    while IFS=$'\t' read -r stock_module original; do   # the stock modules the install quieted, as it left them
      # (not in a python.d.conf removed just above: the install made it, those lines and all)
      [ -n "$stock_module" ] && [ -f "$pythond_conf" ] && grep -qE "^[ ]*$stock_module *: *no *$" "$pythond_conf" || continue
      step "put the $stock_module line of $pythond_conf back as it was${original:+ ($original)}" \
        replace_pythond_line "$original" "$stock_module"
    done <<< "$rec_quieted"
  fi
  rm -f "$legacy_backup"
  if [ -L "${venv%/}" ]; then   # (a link's target is not this install's to remove)
    say "error: $venv is a symbolic link (to $(readlink -f "$venv")): left as it is; remove what it points to yourself"; failed=1
  elif [ -e "$venv" ] && ! ours_venv "$venv"; then
    say "error: $venv is not a virtual environment with this project installed: left as it is"; failed=1
  elif [ -e "$venv" ]; then
    step "removed $venv" remove_venv "$venv"
  fi
  # an upgrade stopped before it wrote its record (which names the older venv still) left the new one
  if [ "$venv" != "$own_dir/venv" ] && ours_venv "$own_dir/venv"; then
    step "removed $own_dir/venv" remove_venv "$own_dir/venv"
  fi
  while IFS= read -r f; do   # (it runs the venv just removed)
    say "$f runs $venv, which is removed: the agent cannot start it any more; delete it (sudo rm $f)"
  done < <(plugins_running "$venv")
  if [ -d "$lib_dir/anomalies-models" ]; then
    step "removed the saved models in $lib_dir/anomalies-models" rm -rf "$lib_dir/anomalies-models"
  fi
  # the netdata user's home is the lib dir: its debug and standalone runs keep models in its cache
  # (from within .cache, entered once and only as itself: the netdata user may make it a link, to
  # another user's cache, or to a folder of anyone's that holds a netdata-anomalies)
  if [ -L "$lib_dir/.cache" ]; then
    [ ! -d "$lib_dir/.cache/netdata-anomalies" ] \
      || say "kept $lib_dir/.cache/netdata-anomalies: $lib_dir/.cache is a link (to $(readlink -f "$lib_dir/.cache")), not followed"
  elif [ -d "$lib_dir/.cache/netdata-anomalies" ]; then
    # (the lib dir's own .cache, where the lib dir is: an admin may have made the lib dir a link)
    cache_models() { ( cd -P -- "$lib_dir/.cache" && [ "$(pwd -P)" = "$(cd -P -- "$lib_dir" && pwd -P)/.cache" ] && rm -rf ./netdata-anomalies ); }
    step "removed the standalone runs' saved models in $lib_dir/.cache/netdata-anomalies" cache_models
  fi
  # the folders the install made, deepest first, while nothing else has been put in them
  while IFS= read -r d; do
    [ -n "$d" ] && [ -d "$d" ] || continue
    if [ -z "$(ls -A "$d")" ]; then step "removed the empty folder $d" rmdir "$d"; else say "kept $d: it holds other files"; fi
  done < <(printf '%s\n' "$rec_made_dirs" | sort -r)
  [ "$failed" -eq 0 ] || die "some steps failed (above); the install record $record is kept: fix them and run --uninstall again"
  rm -f "$state" "$legacy_state"
  if [ -d "$own_dir" ] && [ -z "$(ls -A "$own_dir")" ]; then
    rmdir "$own_dir" && say "removed the empty folder $own_dir"
  fi
  restarted=0
  restart_agent
  # after the restart: until then the job may write them again at any step
  for f in ${textfiles[@]+"${textfiles[@]}"}; do   # only a file a job wrote: it has the job's update time
    [ -f "$f" ] && grep -q '^anomaly_last_update_timestamp_seconds{' "$f" 2>/dev/null || continue
    if rm -f "$f"; then
      say "removed the Prometheus textfile $f (node-exporter would serve its last values while it is there)"
    else
      say "error: could not remove the Prometheus textfile $f: node-exporter serves its last values while it is there"
    fi
  done
  # the job the agent's python.d.plugin loaded runs on until it restarts, and writes its flagged
  # steps and models again (read by a later install's job as its own)
  if [ "$restarted" -eq 0 ] && [ -n "$(agents_pythond)" ]; then
    say "until then the job it runs goes on, and saves its models in $lib_dir/anomalies-models again: remove that folder after the restart"
    for f in ${textfiles[@]+"${textfiles[@]}"}; do
      say "and writes its Prometheus textfile $f again: remove it after the restart"
    done
  fi
  exit 0
fi

# ---- install (or upgrade) ----
if [ -z "$python" ]; then
  [ -n "$agent_python" ] || ! plugin_runs_shell \
    || die "python.d.plugin runs python3 from PATH, and there is none in $agent_path: install python3, or pass --python"
  python="${agent_python:-python3}"
  [ -n "$agent_python" ] || say "warning: cannot tell which python python.d.plugin runs (its first line is not one); using $(command -v python3 || echo python3)"
fi
check_python "$python"
if [ -n "$agent_python" ] && [ "$(pyver "$python")" != "$(pyver "$agent_python")" ]; then
  die "python.d.plugin runs $agent_python (Python $(pyver "$agent_python")) and --python is $(pyver "$python"): the module's packages must be built for the agent's Python"
fi
say "agent python: $python ($("$python" -c 'import sys; print(sys.version.split()[0])'))"
# Netdata's packages and static build bring python.d.plugin's own copy of PyYAML; Debian's do not
[ -d "$plugins_dir/../python.d/python_modules/pyyaml3" ] || "$python" -c 'import yaml' 2>/dev/null \
  || say "warning: $python has no PyYAML; python.d.plugin needs it (Debian: apt-get install python3-yaml)"

# root's folder for the record and the venv, and the venv's place: no other user's to change
# (checked again once made: a folder another user made first at that name is theirs)
own_dir_refused() { die "cannot keep the install record and the venv in $own_dir: $1; the install runs the venv's python as root, so only root may change that folder (chown root:root, chmod go-w)"; }
why="$(root_only "$own_dir")" || own_dir_refused "$why"
why="$(root_only "$venv")" || die "the virtual environment cannot go in $venv: $why, and the install runs its python as root (give --venv a folder only root can write, or nothing: $own_dir/venv)"
mkdir -p "$own_dir" || die "cannot create $own_dir"
why="$(root_only "$own_dir")" || own_dir_refused "$why"
say "installing dependencies into $venv"
mkdir -p "$lib_dir"
# built from a copy, so that a root install leaves no build files in the checkout
src="$(mktemp -d)"
cleanup+=("$src")
cp -r "$here/collector" "$here/setup.cfg" "$here/pyproject.toml" "$here/README.md" "$src/"
[ ! -f "$here/requirements.lock" ] || cp "$here/requirements.lock" "$src/"
find "$src" -name __pycache__ -prune -exec rm -rf {} +
# another program's venv (a --venv mistaken, or a record the netdata user changed) is not replaced,
# nor a link (a venv moved elsewhere, the link left in its place): the folder it points to is given
if [ -L "${venv%/}" ]; then
  die "$venv is a symbolic link (to $(readlink -f "$venv")): not replaced (give --venv the folder it points to, or remove the link)"
fi
if [ -f "$venv/pyvenv.cfg" ] && ! ours_venv "$venv"; then
  die "$venv is a virtual environment without this project installed: not replaced (give --venv a folder of its own)"
fi
make_venv "$python" "$venv" "$src"
# the record first (naming the new venv), so that an install stopped halfway can still be undone
first_install=0
if [ -z "$record" ]; then
  first_install=1 rec_had_pythond_line=1 rec_pythond_line=
  [ -f "$pythond_conf" ] && rec_created_pythond=0 || rec_created_pythond=1
fi
save_state
if [ -n "$moved_venv" ]; then
  say "the virtual environment is now $venv, in place of $moved_venv: $(root_only "$moved_venv"), and the install runs its python as root"
fi
# (not one that is the new venv under another path: a link the netdata user put in the lib dir)
if [ -n "$rec_venv" ] && [ "$rec_venv" != "$venv" ] && ! [ "$rec_venv" -ef "$venv" ] && ours_venv "$rec_venv"; then
  remove_venv "$rec_venv" && say "removed the previous virtual environment $rec_venv"
fi
if [ -n "$rec_venv" ] && [ "$rec_venv" != "$venv" ]; then
  while IFS= read -r f; do
    say "warning: $f runs $rec_venv, which is now $venv: put the new path in it (the agent cannot start it as it is)"
  done < <(plugins_running "$rec_venv")
fi

make_dir "$user_plugins"
install -m 0644 "$here/anomalies.chart.py" "$module"
printf '%s\n' "$venv" > "$marker"
say "installed the module to $module (it takes precedence over a stock anomalies module)"

make_dir "$config_dir/python.d"
# the record's checksum is of the file as this install wrote it, and of nothing else: taken
# from a file the user edited, it would read as ours, and the next upgrade or --uninstall
# would replace or remove the edits
wrote_conf() {
  chgrp netdata "$user_conf" 2>/dev/null || true
  rec_installed_conf=1 rec_conf_sum="$(sum "$user_conf")"
  save_state
}
if [ ! -f "$user_conf" ]; then
  install -m 0640 "$here/anomalies.conf" "$user_conf"
  wrote_conf
  say "installed $user_conf"
elif [ "${rec_installed_conf:-0}" = 1 ] && { [ "$(sum "$user_conf")" = "$rec_conf_sum" ] \
    || { [ -z "$rec_conf_sum" ] && [[ " ${shipped_conf_sums//$'\n'/ } " == *" $(sum "$user_conf" | cut -c1-16) "* ]]; }; }; then
  # (the second: an older install's record, with no checksum, of a file as a version shipped it)
  if ! cmp -s "$here/anomalies.conf" "$user_conf"; then   # ours, never edited: this version's
    install -m 0640 "$here/anomalies.conf" "$user_conf"
    wrote_conf
    say "updated $user_conf to this version's (you had not edited it)"
  elif [ -z "$rec_conf_sum" ]; then
    wrote_conf   # this version's file: its checksum recorded
  fi
elif cmp -s "$here/anomalies.conf" "$user_conf"; then
  say "kept your $user_conf"
else   # new keys have defaults: what matters is whether the old ones are still accepted
  say "kept your $user_conf (this version's: $here/anomalies.conf; whether yours is still accepted:" \
      "$venv/bin/python -m collector check-config $user_conf)"
fi
if [ -f "$here/health.d/anomalies.conf" ]; then
  make_dir "$config_dir/health.d"
  if [ ! -f "$health_conf" ]; then
    install -m 0644 "$here/health.d/anomalies.conf" "$health_conf"
    rec_installed_health=1 rec_health_sum="$(sum "$health_conf")"
    save_state
    say "installed $health_conf"
  elif [ "${rec_installed_health:-0}" = 1 ] && [ "$(sum "$health_conf")" = "$rec_health_sum" ] \
      && ! cmp -s "$here/health.d/anomalies.conf" "$health_conf"; then   # ours, never edited: this version's
    install -m 0644 "$here/health.d/anomalies.conf" "$health_conf"
    rec_health_sum="$(sum "$health_conf")"
    save_state
    say "updated $health_conf to this version's (you had not edited it)"
  elif ! cmp -s "$here/health.d/anomalies.conf" "$health_conf"; then
    say "kept your $health_conf (this version's alarms: $here/health.d/anomalies.conf)"
    foreach_note
  elif [ "${rec_installed_health:-0}" = 1 ] && [ -z "$rec_health_sum" ]; then
    rec_health_sum="$(sum "$health_conf")"   # (an older install's record: this version's file, as shipped)
    save_state
  fi
fi
if [ ! -f "$pythond_conf" ]; then
  if [ -f "$stock_config_dir/python.d.conf" ]; then
    cp "$stock_config_dir/python.d.conf" "$pythond_conf"
  else
    printf '# python.d.plugin configuration\n' > "$pythond_conf"
  fi
elif [ "${rec_created_pythond:-0}" = 1 ] && [ -n "$rec_pythond_sum" ] && [ "$(sum "$pythond_conf")" != "$rec_pythond_sum" ]; then
  rec_created_pythond=0   # the install made it, but it has been edited since: --uninstall keeps it
fi
if [ "$first_install" = 1 ]; then   # the line as it was (in the stock copy, when the install made the file)
  rec_pythond_line="$(pythond_line)"
  save_state
fi
# the jobs run as a plugins.d plugin instead (docs/install.md): an upgrade leaves the module off
plugin_jobs="$(plugins_of_conf "$venv")"
keep_off=0
[ -z "$plugin_jobs" ] || [ "$(module_runs)" = yes ] || keep_off=1
if [ "$keep_off" = 0 ]; then
  [ "$(pythond_line)" = "anomalies: yes" ] || replace_pythond_line "anomalies: yes" || die "cannot write $pythond_conf"
fi
# python.d.plugin imports every stock module it may run, a disabled one too (to read that it
# is): with the venv on its path, zscores and pandas, which failed to import without pandas,
# now load it at each start (zscores about 45 MiB). Set to no where python.d.conf says nothing
# of them and the system's python lacks what they import (so they never ran), and put back
# by --uninstall.
quieted=()
for pair in zscores:netdata_pandas pandas:pandas; do
  stock_module="${pair%%:*}"
  grep -qE "^[ ]*$stock_module *:" "$pythond_conf" && continue
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$python" -c "import ${pair#*:}" > /dev/null 2>&1 && continue
  rec_quieted+="$stock_module"$'\t'"$(pythond_line "$stock_module")"$'\n'
  save_state
  replace_pythond_line "$stock_module: no" "$stock_module" || die "cannot write $pythond_conf"
  quieted+=("$stock_module")
done
[ "${rec_created_pythond:-0}" != 1 ] || rec_pythond_sum="$(sum "$pythond_conf")"
save_state
if [ "$keep_off" = 1 ]; then
  say "left anomalies off in $pythond_conf: $plugin_jobs runs the jobs of $user_conf as a plugins.d plugin"
else
  say "enabled anomalies in $pythond_conf"
  runs="$(module_runs)"
  [ -z "$runs" ] || [ "$runs" = yes ] || say "warning: python.d.plugin still does not run the module$runs"
  [ -z "$plugin_jobs" ] || say "warning: $plugin_jobs runs the jobs of $user_conf too, as a plugins.d plugin:" \
    "both write each of their charts; set anomalies: no in $pythond_conf, or remove the plugin"
fi
if [ ${#quieted[@]} -gt 0 ]; then
  printf -v lines "'%s: no', " "${quieted[@]}"
  say "set ${lines%, } in $pythond_conf: python.d.plugin would import these stock modules with $venv's pandas" \
      "at each start (zscores: about 45 MiB), where without it they never ran (--uninstall puts the lines back)"
fi
host_hint
restart_agent
hint="$(printf '%q ' "$0" --check ${agent_options[@]+"${agent_options[@]}"})"
say "done. Check with: sudo ${hint% }"
