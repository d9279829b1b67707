#!/usr/bin/env bash
# tests/stack.sh — the REAL test stack for nightshift's integration tests, on loopback:
# PostgreSQL 15 (Debian), Redis 7 (Debian), Apache Kafka 3.9.x (KRaft, broker+controller
# in one JVM, jars from Maven Central via tests/kafka/pom.xml) and an SMTP server
# (Debian's python3-aiosmtpd, tests/fakes/smtp_sink.py: AUTH, STARTTLS, keeps every message).
#
#   tests/stack.sh install              apt-get what is missing (postgresql, redis-server, kcat,
#                                       maven, openjdk-17-jre-headless, python3-aiosmtpd,
#                                       openssl); no-op when present
#   tests/stack.sh up                   install, then start all four fresh on free ports
#   eval "$(tests/stack.sh env)"        export NS_PG_DSN, NS_REDIS_URL, NS_KAFKA_BROKERS,
#                                       NS_STACK_DIR, NS_SMTP_URL, NS_SMTP_USER,
#                                       NS_SMTP_PASSWORD, NS_SMTP_MAILDIR, NS_SMTP_CA_FILE
#   tests/stack.sh status               what is running, ports, pids, log files
#   tests/stack.sh down                 stop everything, remove the stack dir (idempotent)
#   tests/stack.sh stop    SERVICE...   fault injection; SERVICE = kafka | postgres | redis |
#                                       smtp | all
#   tests/stack.sh start   SERVICE...     (same ports, same data; Kafka is not re-formatted)
#   tests/stack.sh restart SERVICE...
#   tests/stack.sh kill    SERVICE...   crash instead of a clean stop: SIGKILL for Kafka,
#                                       Redis and SMTP, `pg_ctl stop -m immediate` for
#                                       PostgreSQL
#
# Environment (all optional):
#   NS_STACK_DIR   data, logs, pid and state files      (default /tmp/nightshift-stack)
#   NS_CACHE_DIR   Kafka jar cache, kafka-<version>/    (default $HOME/.cache/nightshift)
#   NS_STACK_PG_PORT, NS_STACK_REDIS_PORT, NS_STACK_KAFKA_PORT,
#   NS_STACK_KAFKA_CONTROLLER_PORT, NS_STACK_SMTP_PORT  fixed ports instead of free random ones
#   NS_KAFKA_START_TIMEOUT (90 s), NS_KAFKA_STOP_TIMEOUT (30 s, then SIGKILL),
#   NS_KAFKA_HEAP_OPTS ("-Xms256m -Xmx768m"), NS_PG_TIMEOUT (60 s), NS_REDIS_TIMEOUT (20 s),
#   NS_MVN_TIMEOUT (900 s), NS_PG_BIN (/usr/lib/postgresql/15/bin), NS_SMTP_TIMEOUT (20 s)
#
# Layout of the stack dir:
#   stack.env                 state written by `up` (ports, versions); read by env/stop/start
#   pg/data/                  PostgreSQL cluster (postmaster.pid inside), pg/postgres.log
#   pg/run/                   PostgreSQL unix socket
#   redis/redis.conf          redis.pid, redis.log
#   kafka/server.properties   kafka.pid, data/ (log.dirs), logs/server.log, stdout.log
#   smtp/cert.pem, key.pem    self-signed (127.0.0.1, localhost) for STARTTLS; smtp.pid,
#                             smtp.log; smtp/mail/<n>.eml + <n>.json (envelope) per message
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
KAFKA_POM=$SCRIPT_DIR/kafka/pom.xml
KAFKA_LOG4J=$SCRIPT_DIR/kafka/log4j.properties

STACK_DIR=${NS_STACK_DIR:-/tmp/nightshift-stack}
CACHE_DIR=${NS_CACHE_DIR:-${HOME:-/root}/.cache/nightshift}
PG_BIN=${NS_PG_BIN:-/usr/lib/postgresql/15/bin}
KAFKA_START_TIMEOUT=${NS_KAFKA_START_TIMEOUT:-90}
KAFKA_STOP_TIMEOUT=${NS_KAFKA_STOP_TIMEOUT:-30}
KAFKA_HEAP_OPTS=${NS_KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}
PG_TIMEOUT=${NS_PG_TIMEOUT:-60}
REDIS_TIMEOUT=${NS_REDIS_TIMEOUT:-20}
MVN_TIMEOUT=${NS_MVN_TIMEOUT:-900}
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
# Fixed ports asked for by the caller (captured now: load_state sources variables of the same name).
WANT_PG_PORT=${NS_STACK_PG_PORT:-}
WANT_REDIS_PORT=${NS_STACK_REDIS_PORT:-}
WANT_KAFKA_PORT=${NS_STACK_KAFKA_PORT:-}
WANT_KAFKA_CTL_PORT=${NS_STACK_KAFKA_CONTROLLER_PORT:-}
WANT_SMTP_PORT=${NS_STACK_SMTP_PORT:-}
PG_OS_USER=postgres   # initdb/pg_ctl refuse root; used only when running as root

die() { echo "stack.sh: error: $*" >&2 || true; exit 1; }
warn() { echo "stack.sh: $*" >&2 || true; }

# ---------------------------------------------------------------- paths and state

case $STACK_DIR in
    /*) ;;
    *) STACK_DIR=$PWD/$STACK_DIR ;;
esac
STACK_DIR=${STACK_DIR%/}
# The path ends up unquoted-safe in postgresql.conf, redis.conf and server.properties.
[[ $STACK_DIR =~ ^/[A-Za-z0-9._+/-]+$ ]] || die "NS_STACK_DIR must be a plain absolute path: '$STACK_DIR'"
case $STACK_DIR in
    / | /tmp | /root | /home | /var | /usr | /etc | /opt) die "refusing NS_STACK_DIR=$STACK_DIR" ;;
esac

MARKER=$STACK_DIR/.nightshift-stack
STATE=$STACK_DIR/stack.env
PG_DIR=$STACK_DIR/pg
PG_DATA=$PG_DIR/data
PG_RUN=$PG_DIR/run
PG_LOG=$PG_DIR/postgres.log
REDIS_DIR=$STACK_DIR/redis
REDIS_CONF=$REDIS_DIR/redis.conf
REDIS_PIDFILE=$REDIS_DIR/redis.pid
REDIS_LOG=$REDIS_DIR/redis.log
KAFKA_DIR=$STACK_DIR/kafka
KAFKA_PROPS=$KAFKA_DIR/server.properties
KAFKA_PIDFILE=$KAFKA_DIR/kafka.pid
KAFKA_DATA=$KAFKA_DIR/data
KAFKA_LOGS=$KAFKA_DIR/logs
KAFKA_STDOUT=$KAFKA_DIR/stdout.log
SMTP_DIR=$STACK_DIR/smtp
SMTP_PIDFILE=$SMTP_DIR/smtp.pid
SMTP_LOG=$SMTP_DIR/smtp.log
SMTP_MAILDIR=$SMTP_DIR/mail
SMTP_CERT=$SMTP_DIR/cert.pem
SMTP_KEY=$SMTP_DIR/key.pem
SMTP_SINK=$SCRIPT_DIR/fakes/smtp_sink.py
SMTP_USER=nightshift
SMTP_TIMEOUT=${NS_SMTP_TIMEOUT:-20}
# Debian's python3: python3-aiosmtpd lives there, not in a pyenv interpreter first on PATH.
SMTP_PYTHON=python3
[[ -x /usr/bin/python3 ]] && SMTP_PYTHON=/usr/bin/python3

# Filled from the state file.
PG_PORT='' REDIS_PORT='' KAFKA_PORT='' KAFKA_CTL_PORT='' KAFKA_VERSION='' KAFKA_LIBS=''
SMTP_PORT='' SMTP_PASSWORD=''

load_state() {
    [[ -f $STATE ]] || die "no stack in $STACK_DIR (run: tests/stack.sh up)"
    # shellcheck disable=SC1090
    . "$STATE"
    PG_PORT=$NS_STACK_PG_PORT REDIS_PORT=$NS_STACK_REDIS_PORT
    KAFKA_PORT=$NS_STACK_KAFKA_PORT KAFKA_CTL_PORT=$NS_STACK_KAFKA_CONTROLLER_PORT
    KAFKA_VERSION=$NS_STACK_KAFKA_VERSION KAFKA_LIBS=$NS_STACK_KAFKA_LIBS
    # Absent from the state of a stack started before SMTP was added.
    SMTP_PORT=${NS_STACK_SMTP_PORT:-} SMTP_PASSWORD=${NS_STACK_SMTP_PASSWORD:-}
}

write_state() { # $1 = ready (0|1)
    cat >"$STATE.tmp" <<EOF
# written by tests/stack.sh up; do not edit
NS_STACK_PG_PORT=$PG_PORT
NS_STACK_REDIS_PORT=$REDIS_PORT
NS_STACK_KAFKA_PORT=$KAFKA_PORT
NS_STACK_KAFKA_CONTROLLER_PORT=$KAFKA_CTL_PORT
NS_STACK_KAFKA_VERSION=$KAFKA_VERSION
NS_STACK_KAFKA_LIBS=$(printf '%q' "$KAFKA_LIBS")
NS_STACK_SMTP_PORT=$SMTP_PORT
NS_STACK_SMTP_PASSWORD=$SMTP_PASSWORD
NS_STACK_READY=$1
EOF
    mv -f "$STATE.tmp" "$STATE"
}

# Serialise state-changing commands (up/down/stop/start/...). fd 9 must not leak into the
# daemons (they would hold the lock forever): every daemon launch goes through close_fds.
take_lock() {
    mkdir -p "$(dirname "$STACK_DIR")"
    exec 9>>"$STACK_DIR.lock"
    flock -w 600 9 || die "another tests/stack.sh holds $STACK_DIR.lock"
}

# ---------------------------------------------------------------- process helpers

pid_alive() { # alive and not a zombie (pid 1 of a container may never reap)
    local pid=$1 st
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    st=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n $st && $st != Z ]]
}

pid_cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }

wait_gone() { # pid timeout_s
    local pid=$1 deadline=$((SECONDS + $2))
    while pid_alive "$pid"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# Stop pid with signal $2, wait $3 s, then SIGKILL and wait 15 s more.
terminate() { # pid signal timeout_s name
    local pid=$1 sig=$2 timeout=$3 name=$4
    kill -s "$sig" "$pid" 2>/dev/null || true
    wait_gone "$pid" "$timeout" && return 0
    [[ $sig == KILL ]] || warn "$name (pid $pid) still running after ${timeout}s: SIGKILL"
    kill -s KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 15 || { warn "$name (pid $pid) does not die"; return 1; }
}

# Close every fd but 0-2 (daemons must not keep the caller's pipes or our lock open).
close_fds() {
    local fd
    for fd in "/proc/$BASHPID/fd"/*; do
        fd=${fd##*/}
        if [[ $fd =~ ^[0-9]+$ ]] && ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
}

# Run a PostgreSQL server binary (in a subshell with clean fds, cwd /): as the postgres
# system user when we are root.
run_pg() {
    (
        cd /
        close_fds
        if ((EUID != 0)); then
            exec "$@"
        elif command -v runuser >/dev/null 2>&1; then
            exec runuser -u "$PG_OS_USER" -- "$@"
        else
            exec su "$PG_OS_USER" -s /bin/sh -c "$(printf '%q ' "$@")"
        fi
    )
}

free_ports() { # n -> n distinct free loopback ports below the ephemeral range
    python3 - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
try:
    lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except Exception:
    lo = 32768
lo = max(lo, 20000)
held, ports = [], []
for _ in range(2000):
    if len(ports) == n:
        break
    p = random.randrange(15000, lo)
    if p in ports:
        continue
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        s.close()
        continue
    held.append(s)
    ports.append(p)
if len(ports) != n:
    sys.exit("no free ports")
print(" ".join(map(str, ports)))
EOF
}

tail_log() { # file [lines]
    [[ -f $1 ]] || return 0
    echo "----- tail of $1 -----" >&2
    tail -n "${2:-40}" "$1" >&2 || true
    echo "-----" >&2
}

# ---------------------------------------------------------------- install

pkg_installed() { dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'; }

cmd_install() {
    local missing=() p
    if command -v dpkg >/dev/null 2>&1; then
        for p in postgresql redis-server kcat python3-aiosmtpd openssl; do
            pkg_installed "$p" || missing+=("$p")
        done
        [[ -x $PG_BIN/initdb ]] || pkg_installed postgresql-15 || missing+=(postgresql-15)
    fi
    command -v mvn >/dev/null 2>&1 || missing+=(maven)
    command -v "$JAVA" >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    ((${#missing[@]} == 0)) && return 0

    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get"
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]}; run as root or install them"
        sudo=(sudo -n)
    fi
    local log
    log=$(mktemp /tmp/nightshift-apt.XXXXXX)
    warn "installing ${missing[*]} (apt log: $log)"
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        timeout 900 apt-get -o DPkg::Lock::Timeout=300 update -q >"$log" 2>&1 ||
        ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            timeout 1800 apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends \
            "${missing[@]}" >>"$log" 2>&1; then
        tail_log "$log" 30
        die "apt-get failed"
    fi
    rm -f "$log"
}

check_tools() {
    local t
    for t in "$PG_BIN/initdb" "$PG_BIN/pg_ctl" "$PG_BIN/postgres"; do
        [[ -x $t ]] || die "$t not found (tests/stack.sh install)"
    done
    for t in psql redis-server redis-cli kcat python3 flock timeout openssl "$JAVA"; do
        command -v "$t" >/dev/null 2>&1 || die "$t not found (tests/stack.sh install)"
    done
    "$SMTP_PYTHON" -c 'import aiosmtpd' 2>/dev/null ||
        die "$SMTP_PYTHON cannot import aiosmtpd (tests/stack.sh install)"
    if ((EUID == 0)); then
        getent passwd "$PG_OS_USER" >/dev/null || die "no '$PG_OS_USER' system user (install postgresql)"
    fi
}

# ---------------------------------------------------------------- Kafka jars (Maven)

pom_kafka_version() {
    sed -n 's:.*<kafka\.version>[[:space:]]*\([^<[:space:]]*\)[[:space:]]*</kafka\.version>.*:\1:p' \
        "$KAFKA_POM" | head -n 1
}

# Sets KAFKA_VERSION and KAFKA_LIBS; runs Maven only when the cache is not complete.
ensure_kafka_libs() {
    [[ -f $KAFKA_POM ]] || die "$KAFKA_POM missing"
    KAFKA_VERSION=$(pom_kafka_version)
    [[ -n $KAFKA_VERSION ]] || die "no <kafka.version> in $KAFKA_POM"
    KAFKA_LIBS=$CACHE_DIR/kafka-$KAFKA_VERSION
    local stamp
    stamp=$(sha256sum <"$KAFKA_POM" | cut -c1-64)
    if [[ -f $KAFKA_LIBS/.complete && $(<"$KAFKA_LIBS/.complete") == "$stamp" &&
        -f $KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar ]]; then
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "mvn not found (tests/stack.sh install)"
    mkdir -p "$CACHE_DIR"
    local tmp log
    tmp=$(mktemp -d "$CACHE_DIR/.kafka-$KAFKA_VERSION.XXXXXX")
    log=$tmp.log
    if ! (cd "$tmp" && timeout "$MVN_TIMEOUT" mvn -q -B -f "$KAFKA_POM" \
        dependency:copy-dependencies -DoutputDirectory="$tmp" -DincludeScope=runtime) \
        </dev/null >"$log" 2>&1; then
        tail_log "$log" 40
        rm -rf "$tmp" "$log"
        die "maven could not fetch Kafka $KAFKA_VERSION"
    fi
    local j
    for j in "kafka_2.13-$KAFKA_VERSION.jar" "kafka-clients-$KAFKA_VERSION.jar" \
        "kafka-server-$KAFKA_VERSION.jar" "kafka-raft-$KAFKA_VERSION.jar"; do
        [[ -f $tmp/$j ]] || { rm -rf "$tmp" "$log"; die "maven output lacks $j"; }
    done
    if ! compgen -G "$tmp/reload4j-*.jar" >/dev/null || ! compgen -G "$tmp/slf4j-reload4j-*.jar" >/dev/null; then
        rm -rf "$tmp" "$log"
        die "maven output lacks reload4j / slf4j-reload4j"
    fi
    echo "$stamp" >"$tmp/.complete"
    rm -rf "$KAFKA_LIBS"
    mv -T "$tmp" "$KAFKA_LIBS" 2>/dev/null || rm -rf "$tmp" # lost a race: theirs is as good
    rm -f "$log"
    [[ -f $KAFKA_LIBS/.complete ]] || die "could not populate $KAFKA_LIBS"
}

# ---------------------------------------------------------------- PostgreSQL

pg_pid() { # prints the postmaster pid when ours is running
    local pid
    [[ -f $PG_DATA/postmaster.pid ]] || return 1
    pid=$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null) || return 1
    pid_alive "$pid" || return 1
    [[ $(pid_cmdline "$pid") == *postgres*"$PG_DATA"* ]] || return 1
    echo "$pid"
}

pg_init() {
    mkdir -p "$PG_DATA" "$PG_RUN"
    chmod 700 "$PG_DATA"
    if ((EUID == 0)); then
        chown -R "$PG_OS_USER:" "$PG_DIR"
        run_pg test -w "$PG_DIR" ||
            die "user $PG_OS_USER cannot reach $PG_DIR (is a parent of NS_STACK_DIR private?)"
    fi
    if ! run_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --no-locale \
        --no-instructions >"$PG_DIR/initdb.log" 2>&1; then
        tail_log "$PG_DIR/initdb.log"
        die "initdb failed"
    fi
    cat >>"$PG_DATA/postgresql.conf" <<EOF

# ---- tests/stack.sh (test settings: fast, not durable)
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_RUN'
max_connections = 300
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
timezone = 'UTC'
log_timezone = 'UTC'
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
EOF
    cat >"$PG_DATA/pg_hba.conf" <<EOF
# tests/stack.sh: trust on the private socket dir and on 127.0.0.1 only
local   all   all                 trust
host    all   all   127.0.0.1/32  trust
EOF
}

pg_start() {
    if pg_pid >/dev/null; then return 0; fi
    if ! run_pg timeout $((PG_TIMEOUT + 10)) "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" \
        -w -t "$PG_TIMEOUT" -s start </dev/null >/dev/null 2>>"$PG_DIR/pg_ctl.log"; then
        tail_log "$PG_DIR/pg_ctl.log" 10
        tail_log "$PG_LOG"
        return 1
    fi
    local deadline=$((SECONDS + PG_TIMEOUT))
    until psql -X -q -At "host=127.0.0.1 port=$PG_PORT dbname=postgres user=postgres connect_timeout=5" \
        -c 'select 1' >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { tail_log "$PG_LOG"; warn "postgres does not answer"; return 1; }
        sleep 0.2
    done
}

pg_bootstrap() {
    psql -X -q -v ON_ERROR_STOP=1 "host=127.0.0.1 port=$PG_PORT dbname=postgres user=postgres" \
        -c "CREATE ROLE nightshift SUPERUSER LOGIN" \
        -c "CREATE DATABASE nightshift OWNER nightshift" >/dev/null ||
        die "could not create role/database nightshift"
}

pg_stop() { # fast|immediate
    local mode=${1:-fast} pid
    pid=$(pg_pid) || return 0
    if ! run_pg timeout 60 "$PG_BIN/pg_ctl" -D "$PG_DATA" -m "$mode" -w -t 45 -s stop \
        </dev/null >/dev/null 2>>"$PG_DIR/pg_ctl.log"; then
        warn "pg_ctl stop failed: SIGQUIT/SIGKILL postmaster $pid"
        terminate "$pid" QUIT 10 postgres || return 1
    fi
    wait_gone "$pid" 15 || terminate "$pid" KILL 5 postgres
}

# ---------------------------------------------------------------- Redis

redis_pid() {
    local pid
    [[ -f $REDIS_PIDFILE ]] || return 1
    pid=$(<"$REDIS_PIDFILE") || return 1
    pid_alive "$pid" || return 1
    [[ $(pid_cmdline "$pid") == *redis-server*":$REDIS_PORT"* ]] || return 1
    echo "$pid"
}

redis_config() {
    mkdir -p "$REDIS_DIR"
    cat >"$REDIS_CONF" <<EOF
# tests/stack.sh: throw-away Redis on loopback
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize yes
supervised no
pidfile $REDIS_PIDFILE
logfile $REDIS_LOG
loglevel notice
dir $REDIS_DIR
save ""
appendonly no
databases 16
EOF
}

redis_ping() {
    [[ $(timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
}

redis_start() {
    if redis_pid >/dev/null; then return 0; fi
    rm -f "$REDIS_PIDFILE"
    if ! (close_fds && exec redis-server "$REDIS_CONF") </dev/null >/dev/null 2>>"$REDIS_DIR/start.log"; then
        tail_log "$REDIS_DIR/start.log"
        tail_log "$REDIS_LOG"
        return 1
    fi
    local deadline=$((SECONDS + REDIS_TIMEOUT))
    until redis_ping && redis_pid >/dev/null; do
        ((SECONDS < deadline)) || { tail_log "$REDIS_LOG"; warn "redis does not answer"; return 1; }
        sleep 0.1
    done
}

redis_stop() { # TERM|KILL
    local pid
    pid=$(redis_pid) || { rm -f "$REDIS_PIDFILE"; return 0; }
    terminate "$pid" "${1:-TERM}" 15 redis || return 1
    rm -f "$REDIS_PIDFILE"
}

# ---------------------------------------------------------------- Kafka

kafka_pid() {
    local pid
    [[ -f $KAFKA_PIDFILE ]] || return 1
    pid=$(<"$KAFKA_PIDFILE") || return 1
    pid_alive "$pid" || return 1
    [[ $(pid_cmdline "$pid") == *kafka.Kafka*"$KAFKA_PROPS"* ]] || return 1
    echo "$pid"
}

kafka_config() {
    mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
    cat >"$KAFKA_PROPS" <<EOF
# tests/stack.sh: single-node KRaft (broker + controller in one JVM) on loopback
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CTL_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CTL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DATA

# one replica of everything
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
# fewer internal partitions than the defaults (50): faster first group join on 2 cores
offsets.topic.num.partitions=8
transaction.state.log.num.partitions=4

# test-friendly behaviour
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
auto.create.topics.enable=true
delete.topic.enable=true
num.partitions=4
# the tests send a 10 MB poison message
message.max.bytes=16777216
replica.fetch.max.bytes=16777216
# small footprint
log.cleaner.dedupe.buffer.size=33554432
num.recovery.threads.per.data.dir=1
num.network.threads=2
num.io.threads=4
EOF
}

kafka_java_opts=(-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
    -Djava.awt.headless=true)

kafka_format() {
    local cid
    # Like Kafka's own random-uuid: never one that starts with "-", which
    # the option parser would take for an option (1 run in 64 failed so).
    cid=$(python3 -c 'import base64, uuid
while True:
    c = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not c.startswith("-"):
        break
print(c)')
    if ! timeout 120 "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 "${kafka_java_opts[@]}" \
        -Dlog4j.configuration="file:$KAFKA_LOG4J" -Dkafka.logs.dir="$KAFKA_LOGS" \
        -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format -t "$cid" -c "$KAFKA_PROPS" \
        </dev/null >"$KAFKA_DIR/format.log" 2>&1; then
        tail_log "$KAFKA_DIR/format.log"
        die "kafka storage format failed"
    fi
}

kafka_launch() { # starts the JVM in its own session; does not wait
    if kafka_pid >/dev/null; then return 0; fi
    mkdir -p "$KAFKA_LOGS"
    rm -f "$KAFKA_PIDFILE"
    local -a heap
    read -r -a heap <<<"$KAFKA_HEAP_OPTS"
    {
        echo "=== $(date -Is) starting kafka $KAFKA_VERSION"
    } >>"$KAFKA_STDOUT"
    # Own session (survives the caller's process group being killed); the child writes its
    # own pid, then execs java, so the pid is the JVM's whatever setsid does.
    (
        close_fds
        # shellcheck disable=SC2016 # $$, $0, $@ are the inner shell's
        exec setsid /bin/sh -c 'echo $$ >"$0.tmp" && mv -f "$0.tmp" "$0" && exec "$@"' \
            "$KAFKA_PIDFILE" "$JAVA" "${heap[@]}" "${kafka_java_opts[@]}" \
            -Dlog4j.configuration="file:$KAFKA_LOG4J" -Dkafka.logs.dir="$KAFKA_LOGS" \
            -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS"
    ) </dev/null >>"$KAFKA_STDOUT" 2>&1 &
}

kafka_fail() {
    warn "$*"
    if grep -Eq '\] (ERROR|FATAL) ' "$KAFKA_LOGS/server.log" 2>/dev/null; then
        echo "----- errors in $KAFKA_LOGS/server.log -----" >&2
        grep -E -A3 '\] (ERROR|FATAL) ' "$KAFKA_LOGS/server.log" | tail -n 20 >&2 || true
    fi
    tail_log "$KAFKA_LOGS/server.log" 30
    tail_log "$KAFKA_STDOUT" 20
    return 1
}

# Ready = a metadata request answers with our broker, and no partition lacks a leader.
kafka_wait_ready() {
    local deadline=$((SECONDS + KAFKA_START_TIMEOUT)) pid='' out
    while [[ ! -s $KAFKA_PIDFILE ]]; do
        ((SECONDS < deadline)) || { kafka_fail "kafka wrote no pid file"; return 1; }
        sleep 0.05
    done
    pid=$(<"$KAFKA_PIDFILE")
    while :; do
        if ! pid_alive "$pid"; then
            kafka_fail "kafka (pid $pid) exited during start-up"
            return 1
        fi
        if out=$(timeout 10 kcat -L -b "127.0.0.1:$KAFKA_PORT" -m 3 2>/dev/null) &&
            [[ $out == *" 1 brokers:"* && $out == *"broker 1 at 127.0.0.1:$KAFKA_PORT"* ]] &&
            ! grep -Eq 'leader -1|Broker:' <<<"$out"; then
            kafka_pid >/dev/null || { kafka_fail "pid $pid is not our kafka"; return 1; }
            return 0
        fi
        if ((SECONDS >= deadline)); then
            kafka_fail "kafka not ready on 127.0.0.1:$KAFKA_PORT after ${KAFKA_START_TIMEOUT}s"
            return 1
        fi
        sleep 0.5
    done
}

kafka_start() {
    if kafka_pid >/dev/null; then return 0; fi
    kafka_launch
    kafka_wait_ready || { kafka_stop KILL; return 1; }
}

kafka_stop() { # TERM|KILL
    local pid
    pid=$(kafka_pid) || { rm -f "$KAFKA_PIDFILE"; return 0; }
    terminate "$pid" "${1:-TERM}" "$KAFKA_STOP_TIMEOUT" kafka || return 1
    rm -f "$KAFKA_PIDFILE"
}

# ---------------------------------------------------------------- SMTP (aiosmtpd)

smtp_pid() {
    local pid
    [[ -f $SMTP_PIDFILE ]] || return 1
    pid=$(<"$SMTP_PIDFILE") || return 1
    pid_alive "$pid" || return 1
    [[ $(pid_cmdline "$pid") == *smtp_sink.py*" --maildir $SMTP_MAILDIR "* ]] || return 1
    echo "$pid"
}

# A password per stack (tests read it from NS_SMTP_PASSWORD) and a self-signed certificate
# for 127.0.0.1 and localhost (tests trust it through NS_SMTP_CA_FILE).
smtp_config() {
    mkdir -p "$SMTP_MAILDIR"
    SMTP_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
    if ! openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=nightshift test smtp" \
        -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        -keyout "$SMTP_KEY" -out "$SMTP_CERT" </dev/null >"$SMTP_DIR/openssl.log" 2>&1; then
        tail_log "$SMTP_DIR/openssl.log"
        die "openssl could not make the SMTP test certificate"
    fi
    chmod 644 "$SMTP_CERT"
}

smtp_banner() { # the server greets with 220
    local line
    line=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && head -n 1 <&3' _ "$SMTP_PORT" \
        2>/dev/null) || return 1
    [[ $line == 220* ]]
}

smtp_start() {
    if smtp_pid >/dev/null; then return 0; fi
    [[ -n $SMTP_PORT ]] || { warn "this stack has no smtp (it was started before smtp existed)"; return 1; }
    rm -f "$SMTP_PIDFILE"
    echo "=== $(date -Is) starting smtp_sink" >>"$SMTP_LOG"
    (
        close_fds
        # shellcheck disable=SC2016 # $$, $0, $@ are the inner shell's
        exec setsid /bin/sh -c 'echo $$ >"$0.tmp" && mv -f "$0.tmp" "$0" && exec "$@"' \
            "$SMTP_PIDFILE" "$SMTP_PYTHON" "$SMTP_SINK" --host 127.0.0.1 --port "$SMTP_PORT" \
            --maildir "$SMTP_MAILDIR" --user "$SMTP_USER" --password "$SMTP_PASSWORD" \
            --cert "$SMTP_CERT" --key "$SMTP_KEY"
    ) </dev/null >>"$SMTP_LOG" 2>&1 &
    local deadline=$((SECONDS + SMTP_TIMEOUT))
    until smtp_pid >/dev/null && smtp_banner; do
        if ((SECONDS >= deadline)); then
            tail_log "$SMTP_LOG"
            warn "smtp does not answer on 127.0.0.1:$SMTP_PORT"
            smtp_stop KILL
            return 1
        fi
        sleep 0.1
    done
}

smtp_stop() { # TERM|KILL
    local pid
    pid=$(smtp_pid) || { rm -f "$SMTP_PIDFILE"; return 0; }
    terminate "$pid" "${1:-TERM}" 15 smtp || return 1
    rm -f "$SMTP_PIDFILE"
}

# ---------------------------------------------------------------- commands

stop_all() { # best effort, for down and for a failed up
    local rc=0
    smtp_stop || rc=1
    kafka_stop || rc=1
    redis_stop || rc=1
    pg_stop || rc=1
    return $rc
}

# Tear down whatever lives in STACK_DIR and remove it.
teardown() {
    [[ -e $STACK_DIR ]] || return 0
    [[ -d $STACK_DIR ]] || die "$STACK_DIR is not a directory"
    if [[ ! -f $MARKER ]] && [[ -n $(ls -A "$STACK_DIR") ]]; then
        die "$STACK_DIR is not a nightshift stack dir (no $MARKER): not touching it"
    fi
    if [[ -f $STATE ]]; then
        load_state
    else # partial up: ports unknown; the pid checks then match more loosely
        PG_PORT='' REDIS_PORT='' KAFKA_PORT='' SMTP_PORT=''
    fi
    stop_all || die "could not stop everything in $STACK_DIR; not removing it"
    rm -rf "$STACK_DIR"
}

cmd_down() {
    take_lock
    teardown
}

UP_DONE=0
up_cleanup() {
    local rc=$?
    ((UP_DONE)) && return 0
    # Finish the teardown even if stderr is a closed pipe (`up 2>&1 | head`) or on ^C.
    trap '' PIPE INT TERM HUP
    set +e
    warn "up failed (exit $rc): tearing down what was started"
    stop_all
    rm -rf "$STACK_DIR"
    exit $((rc == 0 ? 1 : rc))
}

now_ms() { local t=${EPOCHREALTIME//[.,]/}; echo $((10#$t / 1000)); }

cmd_up() {
    local t0
    t0=$(now_ms)
    cmd_install
    check_tools
    take_lock
    teardown # the previous stack, if any (this also loads its state)
    ensure_kafka_libs

    trap up_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM HUP
    trap 'exit 141' PIPE
    mkdir -p "$STACK_DIR"
    chmod 755 "$STACK_DIR"
    touch "$MARKER"

    local ports
    ports=$(free_ports 5) || die "could not find free ports"
    read -r PG_PORT REDIS_PORT KAFKA_PORT KAFKA_CTL_PORT SMTP_PORT <<<"$ports"
    PG_PORT=${WANT_PG_PORT:-$PG_PORT}
    REDIS_PORT=${WANT_REDIS_PORT:-$REDIS_PORT}
    KAFKA_PORT=${WANT_KAFKA_PORT:-$KAFKA_PORT}
    KAFKA_CTL_PORT=${WANT_KAFKA_CTL_PORT:-$KAFKA_CTL_PORT}
    SMTP_PORT=${WANT_SMTP_PORT:-$SMTP_PORT}
    smtp_config
    write_state 0

    # Kafka first: its JVM boots while PostgreSQL and Redis come up.
    kafka_config
    kafka_format
    kafka_launch
    pg_init
    pg_start || die "postgres did not start"
    pg_bootstrap
    redis_config
    redis_start || die "redis did not start"
    smtp_start || die "smtp did not start"
    kafka_wait_ready || die "kafka did not start"
    psql -X -q -At "host=127.0.0.1 port=$PG_PORT dbname=nightshift user=nightshift" \
        -c 'select 1' >/dev/null || die "cannot connect as nightshift"

    write_state 1
    UP_DONE=1
    trap - EXIT INT TERM HUP PIPE

    local t1 pgv redisv
    t1=$(now_ms)
    pgv=$("$PG_BIN/postgres" --version | awk '{print $3}')
    redisv=$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
    printf 'nightshift test stack up in %d.%ds (%s)\n' $(((t1 - t0) / 1000)) $((((t1 - t0) % 1000) / 100)) "$STACK_DIR"
    printf '  postgres %-7s 127.0.0.1:%-5s pid %s\n' "$pgv" "$PG_PORT" "$(pg_pid)"
    printf '  redis    %-7s 127.0.0.1:%-5s pid %s\n' "$redisv" "$REDIS_PORT" "$(redis_pid)"
    printf '  kafka    %-7s 127.0.0.1:%-5s pid %s (controller :%s)\n' "$KAFKA_VERSION" "$KAFKA_PORT" "$(kafka_pid)" "$KAFKA_CTL_PORT"
    printf '  smtp     %-7s 127.0.0.1:%-5s pid %s (aiosmtpd, STARTTLS, AUTH)\n' "$("$SMTP_PYTHON" -c 'import aiosmtpd; print(aiosmtpd.__version__)')" "$SMTP_PORT" "$(smtp_pid)"
    local envp=''
    [[ $STACK_DIR == /tmp/nightshift-stack ]] || envp="NS_STACK_DIR=$STACK_DIR "
    # shellcheck disable=SC2016
    printf '  load it: eval "$(%s%s env)"\n' "$envp" "$SCRIPT_DIR/stack.sh"
}

sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

cmd_env() {
    load_state
    [[ ${NS_STACK_READY:-0} == 1 ]] || die "the stack in $STACK_DIR is not (fully) up"
    echo "export NS_STACK_DIR=$(sq "$STACK_DIR")"
    echo "export NS_PG_DSN=$(sq "host=127.0.0.1 port=$PG_PORT dbname=nightshift user=nightshift")"
    echo "export NS_REDIS_URL=$(sq "redis://127.0.0.1:$REDIS_PORT/0")"
    echo "export NS_KAFKA_BROKERS=$(sq "127.0.0.1:$KAFKA_PORT")"
    if [[ -n $SMTP_PORT ]]; then
        echo "export NS_SMTP_URL=$(sq "smtp://127.0.0.1:$SMTP_PORT")"
        echo "export NS_SMTP_USER=$(sq "$SMTP_USER")"
        echo "export NS_SMTP_PASSWORD=$(sq "$SMTP_PASSWORD")"
        echo "export NS_SMTP_MAILDIR=$(sq "$SMTP_MAILDIR")"
        echo "export NS_SMTP_CA_FILE=$(sq "$SMTP_CERT")"
    fi
}

cmd_status() {
    [[ -f $STATE ]] || { echo "no stack in $STACK_DIR"; return 0; }
    load_state
    local pid
    if pid=$(pg_pid); then echo "postgres running  127.0.0.1:$PG_PORT pid $pid  log $PG_LOG"; else echo "postgres stopped  127.0.0.1:$PG_PORT  log $PG_LOG"; fi
    if pid=$(redis_pid); then echo "redis    running  127.0.0.1:$REDIS_PORT pid $pid  log $REDIS_LOG"; else echo "redis    stopped  127.0.0.1:$REDIS_PORT  log $REDIS_LOG"; fi
    if pid=$(kafka_pid); then echo "kafka    running  127.0.0.1:$KAFKA_PORT pid $pid  log $KAFKA_LOGS/server.log"; else echo "kafka    stopped  127.0.0.1:$KAFKA_PORT  log $KAFKA_LOGS/server.log"; fi
    if [[ -n $SMTP_PORT ]]; then
        if pid=$(smtp_pid); then echo "smtp     running  127.0.0.1:$SMTP_PORT pid $pid  log $SMTP_LOG  mail $SMTP_MAILDIR"; else echo "smtp     stopped  127.0.0.1:$SMTP_PORT  log $SMTP_LOG  mail $SMTP_MAILDIR"; fi
    fi
}

services_of() { # args -> normalised service names
    local s
    (($#)) || die "which service? kafka | postgres | redis | smtp | all"
    for s in "$@"; do
        case $s in
            kafka) echo kafka ;;
            postgres | postgresql | pg) echo postgres ;;
            redis) echo redis ;;
            smtp | mail) echo smtp ;;
            all) echo postgres redis kafka smtp ;;
            *) die "unknown service '$s' (kafka | postgres | redis | smtp | all)" ;;
        esac
    done
}

svc_stop() {
    case $1 in
        kafka) kafka_stop TERM ;;
        postgres) pg_stop fast ;;
        redis) redis_stop TERM ;;
        smtp) smtp_stop TERM ;;
    esac
}

svc_kill() {
    case $1 in
        kafka) kafka_stop KILL ;;
        postgres) pg_stop immediate ;;
        redis) redis_stop KILL ;;
        smtp) smtp_stop KILL ;;
    esac
}

svc_start() {
    case $1 in
        kafka) kafka_start ;;
        postgres) pg_start ;;
        redis) redis_start ;;
        smtp) smtp_start ;;
    esac
}

cmd_service() { # verb services...
    local verb=$1 s
    shift
    local -a svcs
    read -r -a svcs <<<"$(services_of "$@" | tr '\n' ' ')"
    ((${#svcs[@]})) || exit 1
    take_lock
    load_state
    [[ -f $MARKER ]] || die "$STACK_DIR is not a nightshift stack dir"
    for s in "${svcs[@]}"; do
        case $verb in
            stop) svc_stop "$s" || die "could not stop $s" ;;
            kill) svc_kill "$s" || die "could not kill $s" ;;
            start) svc_start "$s" || die "$s did not start" ;;
            restart)
                svc_stop "$s" || die "could not stop $s"
                svc_start "$s" || die "$s did not start"
                ;;
        esac
    done
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

main() {
    local cmd=${1:-}
    (($#)) && shift
    case $cmd in
        up) cmd_up ;;
        down) cmd_down ;;
        env) cmd_env ;;
        status) cmd_status ;;
        install) cmd_install ;;
        start | stop | restart | kill) cmd_service "$cmd" "$@" ;;
        -h | --help | help) usage ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
