#!/usr/bin/env bash
# A PostgreSQL primary, a streaming replica of it, and PgBouncer in transaction pooling
# mode in front of the primary: the servers of the replica and PgBouncer tests
# (tests/test_replicas_servers.py, tests/test_scale_out_servers.py). From Debian's
# packages; PgBouncer is installed when missing. Each runs on a port and in a data
# directory of its own, under $SCALE_OUT_DIR; the machine's own PostgreSQL (its clusters,
# data, config, port and Debian's cluster registry) is never touched. See README.md here.
#
#   tests/servers/scale_out.sh start          # idempotent; run as root
#   eval "$(tests/servers/scale_out.sh env)"  # TEST_PRIMARY_URL, TEST_REPLICA_URL, ...
#   tests/servers/scale_out.sh stop-replica   # what the tests do to stop the replica
#   tests/servers/scale_out.sh start-replica
#   tests/servers/scale_out.sh status         # exit status 0 only when all three run
#   tests/servers/scale_out.sh stop           # stops what start started
#   tests/servers/scale_out.sh destroy        # stop, and remove $SCALE_OUT_DIR
set -euo pipefail

BASE=${SCALE_OUT_DIR:-/var/tmp/flask-typed-db-scale-out}
PRIMARY_PORT=${SCALE_OUT_PRIMARY_PORT:-5441}
REPLICA_PORT=${SCALE_OUT_REPLICA_PORT:-5442}
PGBOUNCER_PORT=${SCALE_OUT_PGBOUNCER_PORT:-6441}
HOST=127.0.0.1
DATABASE="test"
OWNER=postgres

PRIMARY=$BASE/primary
REPLICA=$BASE/replica
BOUNCER=$BASE/pgbouncer
BOUNCER_INI=$BOUNCER/pgbouncer.ini
BOUNCER_PID=$BOUNCER/pgbouncer.pid
BOUNCER_LOG=$BASE/pgbouncer.log
# What marks $BASE as this script's: destroy removes nothing else.
MARKER=$BASE/.flask-typed-db-scale-out
SCRIPT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")

fail() {
    echo "scale_out.sh: $*" >&2
    exit 1
}

# An unexpected failure (set -e) names the command and the line.
on_error() { # status, line, command
    echo "scale_out.sh: failed (exit status $1) at line $2: $3" >&2
}
set -E
trap 'on_error $? $LINENO "$BASH_COMMAND"' ERR

# fail, with the end of the log that explains it.
fail_log() { # log, message
    if [ -s "$1" ]; then
        echo "scale_out.sh: the end of $1:" >&2
        tail -n 15 "$1" | sed 's/^/    /' >&2
    fi
    fail "$2; see $1"
}

say() {
    echo "scale_out.sh: $*"
}

# Debian's PostgreSQL 15 server binaries, or the newest installed; SCALE_OUT_PG_BIN to choose.
PG_BIN=${SCALE_OUT_PG_BIN:-}
if [ -z "$PG_BIN" ]; then
    if [ -x /usr/lib/postgresql/15/bin/postgres ]; then
        PG_BIN=/usr/lib/postgresql/15/bin
    else
        PG_BIN=$(printf '%s\n' /usr/lib/postgresql/*/bin | grep -v '\*' | sort -V | tail -n 1 || true)
    fi
fi

need_pg_bin() {
    [ -n "$PG_BIN" ] && [ -x "$PG_BIN/postgres" ] \
        || fail "no PostgreSQL server binaries under /usr/lib/postgresql (Debian's postgresql package); set SCALE_OUT_PG_BIN"
}

# Close every file descriptor but 0, 1 and 2 in this (sub)shell: the servers it starts run
# on, and must not hold our lock, or a caller's ('flock FILE scale_out.sh ...' hands its
# lock's descriptor down), until they stop.
close_fds() {
    local fd
    for fd in /proc/"$BASHPID"/fd/*; do
        fd=${fd##*/}
        if [ "$fd" -gt 2 ]; then
            eval "exec $fd>&-"
        fi
    done 2>/dev/null
}

# Run a command as the servers' owner, from a directory it can read.
as_owner() {
    (
        cd "$BASE"
        close_fds
        if [ "$(id -un)" = "$OWNER" ]; then
            exec "$@"
        else
            exec runuser -u "$OWNER" -- "$@"
        fi
    )
}

# Run a command as root with no inherited descriptors (apt-get and the services it runs).
detached() {
    (
        close_fds
        exec "$@"
    )
}

# Whether the cluster in data directory $1 is running.
running() {
    [ -f "$1/postmaster.pid" ] && as_owner "$PG_BIN/pg_ctl" status -D "$1" >/dev/null 2>&1
}

psql_at() { # port, database, sql
    as_owner "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$HOST" -p "$1" -U "$OWNER" -d "$2" -c "$3"
}

# Wait until $what on $port accepts connections; give up early if the process whose pid
# is in $pidfile (when given) is gone.
wait_ready() { # port, database, what, log, [pidfile]
    local tries=0
    until "$PG_BIN/pg_isready" -q -h "$HOST" -p "$1" -U "$OWNER" -d "$2"; do
        if [ -n "${5:-}" ] && ! alive "$5"; then
            fail_log "$4" "$3 on port $1 exited instead of accepting connections"
        fi
        tries=$((tries + 1))
        [ "$tries" -lt 300 ] || fail_log "$4" "$3 on port $1 did not accept connections within 30 s"
        sleep 0.1
    done
}

# Whether the pgbouncer of pid file $1 runs: that pid, and its command line names our config.
alive() {
    local pid
    [ -f "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    local cmdline
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ "$cmdline" == *"$BOUNCER_INI"* ]]
}

# Fail unless the server answering on $port runs from data directory $dir (not a stranger's).
is_ours() { # port, data directory, what
    local directory
    directory=$(psql_at "$1" postgres "SHOW data_directory") || directory="(no answer)"
    [ "$directory" = "$2" ] \
        || fail "the server on $HOST:$1 runs from $directory, not from $2: is the port taken? (SCALE_OUT_*_PORT)"
}

system_identifier() { # data directory
    as_owner "$PG_BIN/pg_controldata" -D "$1" 2>/dev/null | sed -n 's/^Database system identifier: *//p'
}

start_primary() {
    if [ ! -f "$PRIMARY/PG_VERSION" ]; then
        say "making the primary in $PRIMARY (initdb)"
        rm -rf "$PRIMARY"
        # A replica of an earlier primary cannot follow this one.
        if running "$REPLICA"; then
            as_owner "$PG_BIN/pg_ctl" stop -D "$REPLICA" -m immediate -w -t 30 >/dev/null || true
        fi
        rm -rf "$REPLICA"
        as_owner "$PG_BIN/initdb" -D "$PRIMARY" -U "$OWNER" --auth=trust -E UTF8 --locale=C.UTF-8 \
            >"$BASE/primary-initdb.log" 2>&1 || fail_log "$BASE/primary-initdb.log" "initdb of the primary failed"
        # Copied into the replica by pg_basebackup, which sets its own port after these.
        cat >>"$PRIMARY/postgresql.conf" <<EOF

# flask-typed-db's test primary (tests/servers/scale_out.sh)
listen_addresses = '$HOST'
port = $PRIMARY_PORT
unix_socket_directories = '$BASE'
wal_level = replica
max_wal_senders = 5
# A replica stopped by the tests catches up from here when it starts again.
wal_keep_size = 256MB
hot_standby = on
# Throwaway test data: no durability, no waiting for the disk.
fsync = off
full_page_writes = off
max_connections = 100
log_line_prefix = '%m [%p] '
EOF
        cat >"$PRIMARY/pg_hba.conf" <<EOF
# flask-typed-db's test servers: only this machine, no passwords.
local all all trust
host all all $HOST/32 trust
local replication all trust
host replication all $HOST/32 trust
EOF
    fi
    if ! running "$PRIMARY"; then
        as_owner "$PG_BIN/pg_ctl" start -D "$PRIMARY" -l "$BASE/primary.log" -w -t 30 >/dev/null \
            || fail_log "$BASE/primary.log" "the primary did not start on port $PRIMARY_PORT"
    fi
    wait_ready "$PRIMARY_PORT" postgres "the primary" "$BASE/primary.log"
    is_ours "$PRIMARY_PORT" "$PRIMARY" "the primary"
    if [ "$(psql_at "$PRIMARY_PORT" postgres "SELECT count(*) FROM pg_database WHERE datname = '$DATABASE'")" = 0 ]; then
        psql_at "$PRIMARY_PORT" postgres "CREATE DATABASE $DATABASE" \
            || fail_log "$BASE/primary.log" "could not create the database $DATABASE on the primary"
    fi
}

start_replica() {
    if [ -f "$REPLICA/PG_VERSION" ] && [ -f "$PRIMARY/PG_VERSION" ] \
        && [ "$(system_identifier "$REPLICA")" != "$(system_identifier "$PRIMARY")" ]; then
        say "the replica in $REPLICA is of another primary: making it again"
        if running "$REPLICA"; then
            as_owner "$PG_BIN/pg_ctl" stop -D "$REPLICA" -m immediate -w -t 30 >/dev/null || true
        fi
        rm -rf "$REPLICA"
    fi
    if [ ! -f "$REPLICA/PG_VERSION" ]; then
        say "making the replica in $REPLICA (pg_basebackup -R)"
        rm -rf "$REPLICA"
        as_owner "$PG_BIN/pg_basebackup" -h "$HOST" -p "$PRIMARY_PORT" -U "$OWNER" -D "$REPLICA" \
            -R -X stream -c fast >"$BASE/replica-basebackup.log" 2>&1 \
            || { rm -rf "$REPLICA"; fail_log "$BASE/replica-basebackup.log" "pg_basebackup from the primary failed"; }
        cat >>"$REPLICA/postgresql.conf" <<EOF

# flask-typed-db's test replica (tests/servers/scale_out.sh): the primary's settings, and
port = $REPLICA_PORT
hot_standby = on
hot_standby_feedback = on
EOF
    fi
    if ! running "$REPLICA"; then
        as_owner "$PG_BIN/pg_ctl" start -D "$REPLICA" -l "$BASE/replica.log" -w -t 30 >/dev/null \
            || fail_log "$BASE/replica.log" "the replica did not start on port $REPLICA_PORT"
    fi
    wait_ready "$REPLICA_PORT" postgres "the replica" "$BASE/replica.log"
    is_ours "$REPLICA_PORT" "$REPLICA" "the replica"
    [ "$(psql_at "$REPLICA_PORT" postgres "SELECT pg_is_in_recovery()")" = t ] \
        || fail_log "$BASE/replica.log" "the server on port $REPLICA_PORT is not in recovery: not a replica"
    # A replica that comes back after the tests paused its replay: replay again.
    psql_at "$REPLICA_PORT" postgres "SELECT pg_wal_replay_resume()" >/dev/null
    local tries=0
    until [ "$(psql_at "$REPLICA_PORT" postgres "SELECT count(*) FROM pg_database WHERE datname = '$DATABASE'")" = 1 ]; do
        tries=$((tries + 1))
        [ "$tries" -lt 300 ] || fail_log "$BASE/replica.log" "the replica did not replay the database $DATABASE within 30 s"
        sleep 0.1
    done
}

# Debian's pgbouncer, installed without starting its own service (which would take 6432).
POLICY=/usr/sbin/policy-rc.d
MADE_POLICY=
remove_policy() {
    if [ -n "$MADE_POLICY" ]; then
        rm -f "$POLICY"
        MADE_POLICY=
    fi
}

install_pgbouncer() {
    command -v pgbouncer >/dev/null && return
    [ "$(id -u)" = 0 ] || fail "PgBouncer is not installed; run this as root to install Debian's package"
    local log=$BASE/pgbouncer-install.log
    say "installing Debian's pgbouncer package (log: $log)"
    # Installed, never started as a service: unless the machine has a policy-rc.d already
    # (Docker's images do, refusing every start), one of ours refuses every service start
    # while apt runs, and goes with it, also when this script fails or is interrupted.
    if [ ! -e "$POLICY" ]; then
        trap remove_policy EXIT
        printf '#!/bin/sh\n# flask-typed-db tests/servers/scale_out.sh, while it installs pgbouncer\nexit 101\n' >"$POLICY"
        chmod 755 "$POLICY"
        MADE_POLICY=yes
    fi
    local system_pid=/run/postgresql/pgbouncer.pid had_service=
    [ -e "$system_pid" ] && had_service=yes
    if ! detached env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends pgbouncer >"$log" 2>&1; then
        say "apt-get install failed; updating the package lists and trying again"
        detached apt-get update -q >>"$log" 2>&1 || fail_log "$log" "apt-get update failed"
        detached env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends pgbouncer >>"$log" 2>&1 \
            || fail_log "$log" "installing Debian's pgbouncer package failed"
    fi
    remove_policy
    command -v pgbouncer >/dev/null || fail_log "$log" "pgbouncer is not on PATH after installing it"
    # Should the package's service have started anyway (a policy-rc.d allowing it), stop
    # that one service it started: never one that ran before.
    if [ -z "$had_service" ] && [ -e "$system_pid" ]; then
        say "stopping the pgbouncer service the package started"
        if [ -d /run/systemd/system ]; then
            detached systemctl stop pgbouncer.service >>"$log" 2>&1 || true
        else
            detached /etc/init.d/pgbouncer stop >>"$log" 2>&1 || true
        fi
    fi
}

start_pgbouncer() {
    install_pgbouncer
    mkdir -p "$BOUNCER"
    cat >"$BOUNCER_INI.new" <<EOF
; flask-typed-db's test PgBouncer (tests/servers/scale_out.sh), in front of the test primary
[databases]
$DATABASE = host=$HOST port=$PRIMARY_PORT dbname=$DATABASE

[pgbouncer]
listen_addr = $HOST
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
; No passwords: the user must still be in auth_file.
auth_type = trust
auth_file = $BOUNCER/users.txt
admin_users = $OWNER
; What the tests are about: a server connection per transaction, not per client.
pool_mode = transaction
; Fewer server connections than the tests' clients, so that clients share them.
default_pool_size = 4
max_client_conn = 200
logfile = $BOUNCER_LOG
pidfile = $BOUNCER_PID
log_connections = 0
log_disconnections = 0
EOF
    mv "$BOUNCER_INI.new" "$BOUNCER_INI"
    echo "\"$OWNER\" \"\"" >"$BOUNCER/users.txt"
    chown -R "$OWNER" "$BOUNCER"
    if alive "$BOUNCER_PID"; then
        # Running: it reads this config again (it may be of an earlier version of this script).
        kill -HUP "$(cat "$BOUNCER_PID")"
    fi
    if ! alive "$BOUNCER_PID"; then
        rm -f "$BOUNCER_PID"
        touch "$BOUNCER_LOG"
        chown "$OWNER" "$BOUNCER_LOG"
        local logged
        logged=$(stat -c %s "$BOUNCER_LOG")
        as_owner pgbouncer -d -q "$BOUNCER_INI" >>"$BOUNCER_LOG" 2>&1 \
            || fail_log "$BOUNCER_LOG" "PgBouncer did not start"
        # -d returns before PgBouncer listens; the pid file appears once it runs.
        local tries=0
        until alive "$BOUNCER_PID"; do
            if tail -c +$((logged + 1)) "$BOUNCER_LOG" | grep -q ' FATAL '; then
                fail_log "$BOUNCER_LOG" "PgBouncer did not start"
            fi
            tries=$((tries + 1))
            [ "$tries" -lt 100 ] || fail_log "$BOUNCER_LOG" "PgBouncer did not start (no process for $BOUNCER_PID)"
            sleep 0.1
        done
    fi
    wait_ready "$PGBOUNCER_PORT" "$DATABASE" "PgBouncer" "$BOUNCER_LOG" "$BOUNCER_PID"
    # Ours answers on the port (not another PgBouncer): its admin console names our pid file.
    local pidfile tries=0
    until pidfile=$(psql_at "$PGBOUNCER_PORT" pgbouncer "SHOW CONFIG" 2>/dev/null | awk -F'|' '$1 == "pidfile" { print $2 }') \
        && [ "$pidfile" = "$BOUNCER_PID" ]; do
        tries=$((tries + 1))
        [ "$tries" -lt 20 ] || break
        sleep 0.1
    done
    if [ "$pidfile" != "$BOUNCER_PID" ] || ! alive "$BOUNCER_PID"; then
        fail_log "$BOUNCER_LOG" "the PgBouncer on $HOST:$PGBOUNCER_PORT is not the one of $BOUNCER_INI: is the port taken? (SCALE_OUT_PGBOUNCER_PORT)"
    fi
    # Through PgBouncer to the primary's database.
    [ "$(psql_at "$PGBOUNCER_PORT" "$DATABASE" "SELECT 1")" = 1 ] \
        || fail_log "$BOUNCER_LOG" "PgBouncer on port $PGBOUNCER_PORT does not reach the primary's database $DATABASE"
}

stop_cluster() { # data directory, what
    if running "$1"; then
        as_owner "$PG_BIN/pg_ctl" stop -D "$1" -m fast -w -t 60 >/dev/null \
            || fail_log "$BASE/$2.log" "the $2 did not stop (pg_ctl stop -m fast -D $1)"
    fi
}

stop_pgbouncer() {
    # Only the process this script started: named in its own pid file, with our config.
    if alive "$BOUNCER_PID"; then
        local pid
        pid=$(cat "$BOUNCER_PID")
        kill -TERM "$pid"
        for _ in $(seq 100); do
            [ -d "/proc/$pid" ] || break
            sleep 0.1
        done
        [ ! -d "/proc/$pid" ] || fail_log "$BOUNCER_LOG" "PgBouncer (pid $pid) did not stop within 10 s"
    fi
    rm -f "$BOUNCER_PID"
}

prepare_base() {
    if [ -d "$BASE" ] && [ ! -e "$MARKER" ] && [ -n "$(ls -A "$BASE")" ] && [ ! -f "$PRIMARY/PG_VERSION" ]; then
        fail "$BASE is not empty and not one of this script's: set SCALE_OUT_DIR to another directory"
    fi
    mkdir -p "$BASE"
    touch "$MARKER"
    chown "$OWNER" "$BASE"
    chmod 700 "$BASE"
}

# One invocation at a time changes the servers (two 'start's at once would both initdb).
lock() {
    [ -d "$(dirname "$BASE")" ] || fail "the parent directory of $BASE does not exist"
    exec 9>>"$BASE.lock"
    flock -w 300 9 || fail "another scale_out.sh held $BASE.lock for 5 minutes"
}

show_status() {
    local all=0 what
    for what in primary replica; do
        local port=$PRIMARY_PORT
        [ "$what" = replica ] && port=$REPLICA_PORT
        if running "$BASE/$what"; then
            echo "$what: running on $HOST:$port ($BASE/$what)"
        else
            echo "$what: stopped"
            all=3
        fi
    done
    if alive "$BOUNCER_PID"; then
        echo "pgbouncer: running on $HOST:$PGBOUNCER_PORT (pid $(cat "$BOUNCER_PID"))"
    else
        echo "pgbouncer: stopped"
        all=3
    fi
    return "$all"
}

case "${1:-}" in
start)
    need_pg_bin
    lock
    prepare_base
    start_primary
    start_replica
    start_pgbouncer
    chown "$OWNER" "$MARKER" "$BASE"/*.log
    say "primary on $HOST:$PRIMARY_PORT, replica on $HOST:$REPLICA_PORT, PgBouncer on $HOST:$PGBOUNCER_PORT (under $BASE)"
    ;;
start-replica)
    need_pg_bin
    lock
    prepare_base
    running "$PRIMARY" || fail "the primary is not running: run '$SCRIPT start'"
    start_replica
    ;;
stop-replica)
    need_pg_bin
    lock
    stop_cluster "$REPLICA" replica
    ;;
stop)
    need_pg_bin
    lock
    stop_pgbouncer
    stop_cluster "$REPLICA" replica
    stop_cluster "$PRIMARY" primary
    ;;
destroy)
    need_pg_bin
    lock
    stop_pgbouncer
    stop_cluster "$REPLICA" replica
    stop_cluster "$PRIMARY" primary
    if [ -d "$BASE" ]; then
        [ -e "$MARKER" ] || fail "$BASE is not one of this script's (no $MARKER): not removing it"
        rm -rf "$BASE"
    fi
    rm -f "$BASE.lock"
    ;;
status)
    need_pg_bin
    show_status || exit $?
    ;;
env)
    printf 'export TEST_PRIMARY_URL=%q\n' "postgresql+psycopg://$OWNER@$HOST:$PRIMARY_PORT/$DATABASE"
    printf 'export TEST_REPLICA_URL=%q\n' "postgresql+psycopg://$OWNER@$HOST:$REPLICA_PORT/$DATABASE"
    printf 'export TEST_PGBOUNCER_URL=%q\n' "postgresql+psycopg://$OWNER@$HOST:$PGBOUNCER_PORT/$DATABASE"
    printf 'export TEST_SCALE_OUT_SCRIPT=%q\n' "$SCRIPT"
    ;;
*)
    echo "usage: $0 start|stop|start-replica|stop-replica|status|env|destroy" >&2
    exit 2
    ;;
esac
