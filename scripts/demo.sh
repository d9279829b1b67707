#!/usr/bin/env bash
# scripts/demo.sh: nightshift end to end on one machine, in about half a minute.
#
# Installs the Debian packages that are missing, builds, then starts a private,
# throw-away stack in a temp dir: PostgreSQL 15, Redis, the embedded Kafka
# broker (librdkafka's mock cluster), two workers and a producer. It loads
# config/demo-data.sql, runs the batch-analyzer job once through the real path
# (run recorded in Postgres, one Kafka message per project, the two workers
# share them, the finalizer sends the summary) and prints what happened.
# Everything it started is stopped on exit, also on Ctrl-C or failure.
#
# Without NS_LLM_API_KEY / NS_TELEGRAM_BOT_TOKEN the bundled fakes
# (tests/fakes/) stand in for the LLM and Telegram APIs. With them set the
# real APIs are used; Telegram then also needs NS_TELEGRAM_CHAT_ID.
#
# Optional: NS_BUILD_DIR (default build), NS_DEMO_TIMEOUT (run timeout in
# seconds, default 120), NS_DEMO_KEEP=1 keeps the temp dir (logs) at the end.
set -euo pipefail

cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."
NS_ROOT=$(pwd -P)
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

JOB=batch-analyzer
PG_BIN=/usr/lib/postgresql/15/bin
RUN_TIMEOUT=${NS_DEMO_TIMEOUT:-120}
case $NS_BUILD_DIR in
    /*) NS=$NS_BUILD_DIR/nightshift ;;
    *) NS=$NS_ROOT/$NS_BUILD_DIR/nightshift ;;
esac

say() { printf '%s\n' "$*"; }
section() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
[[ -t 1 ]] || section() { printf '\n== %s\n' "$*"; }

# Check what only the user can fix before doing anything slow.
if [[ -n ${NS_TELEGRAM_BOT_TOKEN:-} && -z ${NS_TELEGRAM_CHAT_ID:-} ]]; then
    ns_die "NS_TELEGRAM_BOT_TOKEN is set but NS_TELEGRAM_CHAT_ID is not: set the chat" \
        "to send the reports to (or unset the token to use the bundled fake Telegram)"
fi
if ((EUID == 0)) && ! command -v runuser >/dev/null 2>&1; then
    ns_die "runuser not found (util-linux); it is needed to run PostgreSQL as 'postgres'"
fi

# ---------------------------------------------------------------- clean-up

TMP=''
STARTED=()    # "name pid" of every process we started, in start order
PG_STARTED=0
FAILED_STEP=''
STEP_LOGS=()  # the logs that explain a failure of the current step
INTERRUPTED=0
DEMO_START=$SECONDS

show_logs() {
    local f
    [[ -n $TMP && -d $TMP ]] || return 0
    for f in "${STEP_LOGS[@]}"; do
        ns_tail_log "$TMP/$f" 20
    done
}

cleanup() {
    local rc=$? i entry name pid
    # A second Ctrl-C must not cut the clean-up short (it takes seconds).
    trap '' INT TERM HUP
    trap - EXIT
    set +e
    if ((INTERRUPTED)); then
        echo "interrupted${FAILED_STEP:+ while $FAILED_STEP}; stopping everything" >&2
    elif ((rc != 0)); then
        echo >&2
        echo "demo FAILED${FAILED_STEP:+ while $FAILED_STEP} (exit $rc)" >&2
        show_logs
    fi
    # nightshift's clients first (workers and producer drain in parallel and
    # leave the consumer group while the broker is still there), then the
    # servers in reverse start order.
    for entry in "${STARTED[@]}"; do
        read -r name pid <<<"$entry"
        case $name in worker-* | producer | run) kill -TERM "$pid" 2>/dev/null ;; esac
    done
    for entry in "${STARTED[@]}"; do
        read -r name pid <<<"$entry"
        case $name in worker-* | producer | run) ns_stop_pid "$pid" "$name" 20 ;; esac
    done
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        read -r name pid <<<"${STARTED[i]}"
        ns_stop_pid "$pid" "$name" 15
        wait "$pid" 2>/dev/null
    done
    if ((PG_STARTED)); then
        as_postgres "$PG_BIN/pg_ctl" -D "$TMP/pg/data" -m fast -w -t 30 -s stop \
            >/dev/null 2>&1 || {
            local pg_pid
            pg_pid=$(head -n 1 "$TMP/pg/data/postmaster.pid" 2>/dev/null)
            [[ -n $pg_pid ]] && ns_stop_pid "$pg_pid" postgres 10
        }
    fi
    if [[ -n $TMP && -d $TMP ]]; then
        if [[ ${NS_DEMO_KEEP:-0} == 1 ]]; then
            echo "kept the logs in $TMP"
        else
            rm -rf -- "$TMP"
        fi
    fi
    if ((rc == 0)); then
        say "demo finished in $((SECONDS - DEMO_START)) s; everything stopped"
    else
        echo "demo failed; everything it started is stopped" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'INTERRUPTED=1; exit 130' INT
trap 'INTERRUPTED=1; exit 143' TERM
trap 'INTERRUPTED=1; exit 129' HUP

step() { # description [log file, relative to the temp dir]...
    FAILED_STEP=$1
    shift
    STEP_LOGS=("$@")
    ns_note "$FAILED_STEP"
}

# Runs a command as the postgres OS user when we are root (initdb refuses
# root); from / so that user needs no access to our cwd.
as_postgres() {
    if ((EUID == 0)); then
        (cd / && exec runuser -u postgres -- "$@")
    else
        (cd / && exec "$@")
    fi
}

# Starts a daemon in its own session (Ctrl-C reaches only this script, which
# then stops everything in order), stdout+stderr to a log file.
start() { # name logfile command...
    local name=$1 log=$2
    shift 2
    setsid "$@" </dev/null >"$log" 2>&1 &
    STARTED+=("$name $!")
}

pid_of() { # name
    local entry
    for entry in "${STARTED[@]}"; do
        [[ ${entry%% *} == "$1" ]] && { echo "${entry#* }"; return 0; }
    done
    return 1
}

# Fails the demo at once when the named process has exited.
alive() { # name...
    local name
    for name in "$@"; do
        ns_pid_alive "$(pid_of "$name")" || {
            echo "error: $name exited early" >&2
            exit 1
        }
    done
}

# A non-empty file written by the named process (which must still run).
file_ready() { # name file
    alive "$1"
    [[ -s $2 ]]
}

# ---------------------------------------------------------------- 1. packages

TMP=$(mktemp -d -t nightshift-demo.XXXXXX)
chmod 711 "$TMP" # the postgres user must reach its data dir inside

step "checking packages"
ns_install_packages "$NS_BUILD_PACKAGES"
for tool in "$PG_BIN/initdb" "$PG_BIN/pg_ctl"; do
    [[ -x $tool ]] || ns_die "$tool not found (is postgresql-15 installed?)"
done

# ---------------------------------------------------------------- 2. build

step "building nightshift ($NS_BUILD_DIR/, RelWithDebInfo)"
# Only the binary: the demo needs no test programs.
if ! ns_build -- --target nightshift >"$TMP/build.log" 2>&1; then
    ns_tail_log "$TMP/build.log" 40
    ns_die "the build failed"
fi
[[ -x $NS ]] || ns_die "the build did not produce $NS"

# ---------------------------------------------------------------- 3. stack

step "starting PostgreSQL 15" pg/initdb.log pg/pg_ctl.log pg/postgres.log
PG_PORT=$(ns_free_port)
mkdir -p "$TMP/pg/data" "$TMP/pg/run"
chmod 700 "$TMP/pg/data"
((EUID != 0)) || chown -R postgres: "$TMP/pg"
as_postgres test -w "$TMP/pg" ||
    ns_die "the postgres user cannot write to $TMP/pg (is \$TMPDIR private?)"
if ! as_postgres "$PG_BIN/initdb" -D "$TMP/pg/data" -U postgres -A trust -E UTF8 \
    --no-locale --no-sync --no-instructions >"$TMP/pg/initdb.log" 2>&1; then
    ns_tail_log "$TMP/pg/initdb.log"
    ns_die "initdb failed"
fi
cat >>"$TMP/pg/data/postgresql.conf" <<EOF

# scripts/demo.sh: private, throw-away, fast
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$TMP/pg/run'
fsync = off
synchronous_commit = off
full_page_writes = off
timezone = 'UTC'
log_min_messages = warning
EOF
PG_STARTED=1
as_postgres "$PG_BIN/pg_ctl" -D "$TMP/pg/data" -l "$TMP/pg/postgres.log" -w -t 30 -s start \
    </dev/null >/dev/null 2>"$TMP/pg/pg_ctl.log" ||
    { ns_tail_log "$TMP/pg/pg_ctl.log"; ns_die "PostgreSQL did not start"; }
PG_ADMIN="host=127.0.0.1 port=$PG_PORT dbname=postgres user=postgres connect_timeout=5"
ns_wait_until 30 "PostgreSQL to accept connections" \
    psql -X -q -At "$PG_ADMIN" -c 'SELECT 1' >/dev/null 2>&1
psql -X -q -v ON_ERROR_STOP=1 "$PG_ADMIN" -c 'CREATE DATABASE nightshift' >/dev/null
export NS_PG_DSN="host=127.0.0.1 port=$PG_PORT dbname=nightshift user=postgres"

step "starting Redis" redis/redis.log
REDIS_PORT=$(ns_free_port)
mkdir -p "$TMP/redis"
cat >"$TMP/redis/redis.conf" <<EOF
bind 127.0.0.1
port $REDIS_PORT
daemonize no
save ""
appendonly no
dir $TMP/redis
logfile ""
EOF
start redis "$TMP/redis/redis.log" redis-server "$TMP/redis/redis.conf"
redis_up() {
    alive redis
    [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
}
ns_wait_until 20 "Redis to answer" redis_up
export NS_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"

# ---------------------------------------------------------------- 4. LLM / Telegram

LLM_FAKE=0 TG_FAKE=0
if [[ -z ${NS_LLM_API_KEY:-} ]]; then
    step "starting the bundled fake LLM API" fake-llm.log
    LLM_FAKE=1
    start fake-llm "$TMP/fake-llm.log" python3 tests/fakes/fake_llm.py \
        --port 0 --port-file "$TMP/fake-llm.port"
    ns_wait_until 20 "the fake LLM API" file_ready fake-llm "$TMP/fake-llm.port"
    LLM_URL="http://127.0.0.1:$(<"$TMP/fake-llm.port")"
fi
if [[ -z ${NS_TELEGRAM_BOT_TOKEN:-} ]]; then
    step "starting the bundled fake Telegram Bot API" fake-telegram.log
    TG_FAKE=1
    start fake-telegram "$TMP/fake-telegram.log" python3 tests/fakes/fake_telegram.py \
        --port 0 --port-file "$TMP/fake-telegram.port"
    ns_wait_until 20 "the fake Telegram API" file_ready fake-telegram "$TMP/fake-telegram.port"
    TG_URL="http://127.0.0.1:$(<"$TMP/fake-telegram.port")"
fi

# ---------------------------------------------------------------- demo config

# Prints the top-level block KEY of a YAML file (the key line and every
# indented or blank line after it).
yaml_block() { # key file
    awk -v key="$1" '
        /^[^[:space:]#-]/ { on = (index($0, key ":") == 1) }
        on' "$2"
}

# Prints the item of the top-level `jobs:` list whose name is $1, with
# `suspend: true` (the demo starts the job by hand; the producer must not
# fire a scheduled run of it meanwhile, whatever the time of day).
job_item() { # name file
    awk -v want="$1" '
        function flush() {
            if (keep) {
                printf "%s", buf
                if (!suspended)
                    printf "%*ssuspend: true   # scripts/demo.sh\n", keycol, ""
            }
            buf = ""; keep = 0; suspended = 0
        }
        function lead(s) { match(s, /^[ ]*/); return RLENGTH }
        /^[^[:space:]#-]/ {                     # a top-level key
            if (injobs) flush()
            injobs = ($0 ~ /^jobs:[[:space:]]*(#.*)?$/)
            next
        }
        !injobs { next }
        {
            line = $0
            if (dash < 0 && line ~ /^[ ]*-[ ]/) dash = lead(line)
            if (dash >= 0 && lead(line) == dash && substr(line, dash + 1, 2) ~ /^-[ ]$/) {
                flush()
                rest = substr(line, dash + 2)
                keycol = dash + 1 + lead(rest)
                key = substr(line, keycol + 1)
            } else if (dash >= 0 && lead(line) == keycol && line !~ /^[ ]*#/) {
                key = substr(line, keycol + 1)
            } else {
                key = ""
            }
            if (key ~ /^name:/) {
                v = key; sub(/^name:[ ]*/, "", v); sub(/[ ]+#.*$/, "", v)
                gsub(/^["\047]|["\047][ ]*$/, "", v); sub(/[ ]+$/, "", v)
                if (v == want) keep = 1
            }
            if (key ~ /^suspend:/) {
                line = sprintf("%*ssuspend: true   # scripts/demo.sh", keycol, "")
                suspended = 1
            }
            buf = buf line "\n"
        }
        END { if (injobs) flush() }
    ' dash=-1 "$2"
}

step "writing the demo config"
CONFIG=$TMP/jobs.yaml
{
    say "# Generated by scripts/demo.sh from config/jobs.yaml: the $JOB job with"
    say "# the demo's LLM / Telegram endpoints and ephemeral metrics ports."
    grep -m1 '^version:' config/jobs.yaml || say "version: 1"
    say "worker: {metrics_port: 0}"
    say "producer: {metrics_port: 0}"
    if ((LLM_FAKE)); then
        say "llm: {base_url: \"$LLM_URL\", api_key: demo-key}"
    else
        yaml_block llm config/jobs.yaml # else the defaults; key: ${NS_LLM_API_KEY}
    fi
    if ((TG_FAKE)); then
        say "telegram: {api_url: \"$TG_URL\", bot_token: \"123456:demo\"}"
    else
        yaml_block telegram config/jobs.yaml
    fi
    say "jobs:"
    job_item "$JOB" config/jobs.yaml
} >"$CONFIG"
grep -q "^[[:space:]-]*name:" "$CONFIG" || ns_die "config/jobs.yaml has no job named $JOB"
"$NS" config check "$CONFIG" >"$TMP/config-check.out" 2>&1 || {
    cat "$TMP/config-check.out" >&2
    ns_die "the generated demo config $CONFIG is not valid"
}

# ---------------------------------------------------------------- Kafka

step "starting the embedded Kafka broker" broker.log
start dev-broker "$TMP/broker.log" "$NS" dev-broker -c "$CONFIG" --port-file "$TMP/broker"
ns_wait_until 20 "the embedded Kafka broker" file_ready dev-broker "$TMP/broker"
NS_KAFKA_BROKERS=$(head -n 1 "$TMP/broker")
export NS_KAFKA_BROKERS

# ---------------------------------------------------------------- 5. schema + data

step "migrating the database and loading config/demo-data.sql" pg/postgres.log
"$NS" migrate >"$TMP/migrate.out" 2>&1 || { cat "$TMP/migrate.out" >&2; exit 1; }
psql -X -q -v ON_ERROR_STOP=1 "$NS_PG_DSN" -f config/demo-data.sql >/dev/null

# ---------------------------------------------------------------- 6. workers, producer, run

step "starting 2 workers and the producer" worker-1.log worker-2.log producer.log broker.log
start worker-1 "$TMP/worker-1.log" "$NS" worker -c "$CONFIG"
start worker-2 "$TMP/worker-2.log" "$NS" worker -c "$CONFIG"
start producer "$TMP/producer.log" "$NS" producer -c "$CONFIG"

# The last rebalance event a worker logged: "assigned N" or "revoking N".
last_rebalance() { # log
    grep -oE '(assigned|revoking) [0-9]+ partition' "$1" 2>/dev/null | tail -n 1
}
# Both workers hold partitions after the last rebalance: items produced now
# are shared between them instead of all going to the first one up.
workers_settled() {
    local w last
    alive worker-1 worker-2 producer
    for w in worker-1 worker-2; do
        last=$(last_rebalance "$TMP/$w.log")
        [[ $last == assigned* ]] || return 1
    done
    grep -q 'producer started' "$TMP/producer.log"
}
ns_wait_until 45 "both workers to join the consumer group" workers_settled
metrics_port() { # log
    grep -oE 'metrics on port [0-9]+' "$1" | head -n 1 | grep -oE '[0-9]+$'
}
WORKER_METRICS=("" "$(metrics_port "$TMP/worker-1.log")" "$(metrics_port "$TMP/worker-2.log")")

if ((LLM_FAKE)); then
    say "using the bundled fake LLM API at $LLM_URL (set NS_LLM_API_KEY to use the real one)"
else
    url=$(sed -n 's/^[[:space:]]*base_url:[[:space:]]*//p' "$CONFIG" | head -n 1)
    say "using the real LLM API at ${url:-https://api.perplexity.ai} (key from NS_LLM_API_KEY)"
fi
if ((TG_FAKE)); then
    say "using the bundled fake Telegram Bot API at $TG_URL (set NS_TELEGRAM_BOT_TOKEN and NS_TELEGRAM_CHAT_ID to use the real one)"
else
    url=$(sed -n 's/^[[:space:]]*api_url:[[:space:]]*//p' "$CONFIG" | head -n 1)
    say "using the real Telegram Bot API at ${url:-https://api.telegram.org}, chat $NS_TELEGRAM_CHAT_ID"
fi

step "running $JOB" worker-1.log worker-2.log producer.log fake-llm.log fake-telegram.log
section "nightshift run $JOB --wait --timeout $RUN_TIMEOUT"
# In the background, so that a signal to this script is handled at once.
timeout $((RUN_TIMEOUT + 30)) "$NS" run "$JOB" --wait --timeout "$RUN_TIMEOUT" -c "$CONFIG" \
    </dev/null >"$TMP/run.out" 2>&1 &
STARTED+=("run $!")
run_rc=0
wait "$!" || run_rc=$?
grep -v '^{.*"level":"info"' "$TMP/run.out" || true
RUN_ID=$(sed -n "s/^run \([0-9][0-9]*\) of $JOB started.*/\1/p" "$TMP/run.out" | head -n 1)
[[ -n $RUN_ID ]] || exit 1

q() { psql -X -q -At -v ON_ERROR_STOP=1 "$NS_PG_DSN" -c "$1"; }
# The reports leave through the outbox once their item has committed, the
# summary once the run is finalized: wait until none is pending, or, when
# deliveries keep failing (they are retried with backoff), for 15 s.
OUTBOX_WAIT_START=$SECONDS
outbox_settled() {
    local pending failing
    read -r pending failing < <(q "SELECT count(*), count(last_error) FROM outbox
                                    WHERE run_id = $RUN_ID AND status = 'pending'" | tr '|' ' ')
    ((pending == 0)) || { ((failing > 0 && SECONDS - OUTBOX_WAIT_START >= 15)); }
}
step "waiting for the Telegram messages of run $RUN_ID to go out" worker-1.log worker-2.log fake-telegram.log
ns_wait_until 60 "the outbox of run $RUN_ID to drain" outbox_settled || true

# ---------------------------------------------------------------- 7. summary
FAILED_STEP="printing the summary"
STEP_LOGS=(worker-1.log worker-2.log)

section "analyses stored by run $RUN_ID (psql)"
psql -X -q -P pager=off "$NS_PG_DSN" -c "
    SELECT p.id, left(p.name, 36) AS project, a.model,
           a.prompt_tokens || '+' || a.completion_tokens AS tokens,
           a.latency_ms AS ms,
           left(split_part(a.content, E'\n', 1), 40) AS \"content (first line)\"
      FROM analyses a JOIN projects p ON p.id = a.project_id
     WHERE a.run_id = $RUN_ID ORDER BY p.id"
say "not analysed (not active): $(q "SELECT coalesce(string_agg(name || ' (' || status || ')', ', ' ORDER BY id), 'none') FROM projects WHERE status <> 'active'")"

section "Kafka: topic ns.items.$JOB, consumer group nightshift-workers"
# From each worker's own /metrics: the items it finished
# (nightshift_items_processed_total) and the partitions it read from
# (nightshift_consumer_lag, one series per partition consumed; a worker
# publishes it every 5 s, so give it that long).
scrape_workers() {
    local w
    for w in 1 2; do
        curl -sf --max-time 5 "http://127.0.0.1:${WORKER_METRICS[w]}/metrics" \
            >"$TMP/worker-$w.metrics" || return 1
    done
}
partitions_published() {
    local w
    scrape_workers || return 1
    for w in 1 2; do
        if grep -q "^nightshift_items_processed_total{.*job=\"$JOB\"" "$TMP/worker-$w.metrics"; then
            grep -q "^nightshift_consumer_lag{.*topic=\"ns.items.$JOB\"" \
                "$TMP/worker-$w.metrics" || return 1
        fi
    done
}
ns_wait_until 8 "the workers' metrics" partitions_published 2>/dev/null || true
worker_summary() { # metrics file
    awk -v job="$JOB" '
        /^nightshift_items_processed_total\{/ && index($0, "job=\"" job "\"") {
            match($0, /outcome="[^"]*"/)
            outcome = substr($0, RSTART + 9, RLENGTH - 10)
            if (outcome == "done") done += $NF; else other = other ", " $NF " " outcome
        }
        /^nightshift_consumer_lag\{/ && index($0, "topic=\"ns.items." job "\"") {
            match($0, /partition="[0-9]+"/)
            parts = parts (parts == "" ? "" : ",") substr($0, RSTART + 11, RLENGTH - 12)
        }
        END {
            printf "%d items done%s, read from partition(s) %s", done, other,
                (parts == "" ? "?" : parts)
        }' "$1" 2>/dev/null
}
for w in 1 2; do
    extra=''
    grep -qE "\"run_id\":${RUN_ID}[,}].*run (succeeded|failed):" "$TMP/worker-$w.log" &&
        extra='; ran the finalizer (summary message)'
    say "worker-$w (pid $(pid_of worker-$w)): $(worker_summary "$TMP/worker-$w.metrics")$extra"
done
# The partition of each item key, as librdkafka's default partitioner
# (consistent_random: CRC-32 of the key modulo the partition count) picks it.
PARTS=$(awk '/^[[:space:]-]*max_parallelism:/ { print $2; exit }' "$CONFIG")
q "SELECT item_key FROM items WHERE run_id = $RUN_ID ORDER BY item_key" |
    python3 -c '
import sys, zlib
n = int(sys.argv[1]); by = {}
for key in sorted(sys.stdin.read().split(), key=lambda k: (len(k), k)):
    by.setdefault(zlib.crc32(key.encode()) % n, []).append(key)
print("items (key = project id) by partition: " + "   ".join(
    "p%d: %s" % (p, ",".join(by[p])) for p in sorted(by)))' "${PARTS:-4}"

section "Telegram"
outbox=$(q "SELECT count(*) FILTER (WHERE status = 'sent') || ' sent, ' ||
                   count(*) FILTER (WHERE status = 'pending') || ' pending, ' ||
                   count(*) FILTER (WHERE status = 'failed') || ' failed'
              FROM outbox WHERE run_id = $RUN_ID")
say "outbox of run $RUN_ID: $outbox"
q "SELECT '  not sent: ' || idempotency_key || ' (' || status || ', ' || attempts ||
          ' attempts)' || coalesce(': ' || last_error, '')
     FROM outbox WHERE run_id = $RUN_ID AND status <> 'sent' ORDER BY id"
if ((TG_FAKE)); then
    say "what the fake Telegram received (sendMessage text as sent, HTML):"
    curl -s --max-time 5 "$TG_URL/_control/requests" | python3 -c '
import json, sys
n = 0
for r in json.load(sys.stdin):
    if not r.get("path", "").endswith("/sendMessage"):
        continue
    body = r.get("json") or {}
    n += 1
    text = " ".join(str(body.get("text", "")).split())
    print("  %d. HTTP %s, chat %s: %s" % (n, r.get("status"), body.get("chat_id"),
          text if len(text) <= 120 else text[:117] + "..."))
if n == 0:
    print("  (none)")'
else
    say "(chat $NS_TELEGRAM_CHAT_ID, through the real Bot API)"
fi

# ---------------------------------------------------------------- 8. verdict

echo
unsent=$(q "SELECT count(*) FROM outbox WHERE run_id = $RUN_ID AND status <> 'sent'")
if ((run_rc != 0)); then
    FAILED_STEP="running $JOB (run $RUN_ID did not succeed; nightshift run exited $run_rc)"
    exit 1
fi
if ((unsent != 0)); then
    FAILED_STEP="delivering the Telegram messages of run $RUN_ID ($outbox)"
    STEP_LOGS=(worker-1.log worker-2.log fake-telegram.log)
    exit 1
fi
FAILED_STEP=''
say "run $RUN_ID of $JOB succeeded: $(q "SELECT count(*) FROM analyses WHERE run_id = $RUN_ID") projects analysed, $(q "SELECT count(*) FROM outbox WHERE run_id = $RUN_ID") Telegram messages sent"
