#!/usr/bin/env bash
# A PostgreSQL primary, a streaming replica of it, and PgBouncer in transaction pooling
# mode in front of the primary: the servers of the replica and PgBouncer tests
# (tests/test_replicas_servers.py). From Debian's packages; PgBouncer is installed when
# missing. Each runs on a port and in a data directory of its own, under $SCALE_OUT_DIR;
# the machine's own PostgreSQL (its clusters, data, config and port) is never touched.
#
#   tests/servers/scale_out.sh start          # idempotent; run as root
#   eval "$(tests/servers/scale_out.sh env)"  # TEST_PRIMARY_URL, TEST_REPLICA_URL, ...
#   tests/servers/scale_out.sh stop-replica   # what the tests do to stop the replica
#   tests/servers/scale_out.sh start-replica
#   tests/servers/scale_out.sh status
#   tests/servers/scale_out.sh stop           # stops what start started
#   tests/servers/scale_out.sh destroy        # stop, and remove $SCALE_OUT_DIR
set -euo pipefail

BASE=${SCALE_OUT_DIR:-/var/tmp/flask-typed-db-scale-out}
PRIMARY_PORT=${SCALE_OUT_PRIMARY_PORT:-5441}
REPLICA_PORT=${SCALE_OUT_REPLICA_PORT:-5442}
PGBOUNCER_PORT=${SCALE_OUT_PGBOUNCER_PORT:-6441}
HOST=127.0.0.1
DATABASE=test
OWNER=postgres

PRIMARY=$BASE/primary
REPLICA=$BASE/replica
BOUNCER=$BASE/pgbouncer
SCRIPT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")

fail() {
    echo "scale_out.sh: $*" >&2
    exit 1
}

pg_bin() {
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$found" ] || fail "no PostgreSQL server binaries under /usr/lib/postgresql (Debian's postgresql package)"
    echo "$found"
}

# Run a command as the servers' owner, from a directory it can read.
as_owner() {
    if [ "$(id -un)" = "$OWNER" ]; then
        (cd "$BASE" && "$@")
    else
        (cd "$BASE" && runuser -u "$OWNER" -- "$@")
    fi
}

# Whether the cluster in data directory $1 is running.
running() {
    [ -f "$1/postmaster.pid" ] && as_owner "$(pg_bin)/pg_ctl" status -D "$1" >/dev/null 2>&1
}

wait_ready() { # port, what
    local tries=0
    until "$(pg_bin)/pg_isready" -q -h "$HOST" -p "$1"; do
        tries=$((tries + 1))
        [ "$tries" -lt 300 ] || fail "$2 on port $1 did not accept connections within 30 s; see $BASE/*.log"
        sleep 0.1
    done
}

psql_at() { # port, sql
    as_owner psql -X -q -A -t -h "$HOST" -p "$1" -U "$OWNER" -d postgres -c "$2"
}

start_primary() {
    if [ ! -f "$PRIMARY/PG_VERSION" ]; then
        echo "scale_out.sh: making the primary in $PRIMARY"
        rm -rf "$PRIMARY"
        as_owner "$(pg_bin)/initdb" -D "$PRIMARY" -U "$OWNER" --auth=trust -E UTF8 --locale=C.UTF-8 \
            >"$BASE/primary-initdb.log" 2>&1 || fail "initdb of the primary failed; see $BASE/primary-initdb.log"
        cat >>"$PRIMARY/postgresql.conf" <<EOF
# flask-typed-db's test primary
listen_addresses = '$HOST'
port = $PRIMARY_PORT
unix_socket_directories = '$BASE'
wal_level = replica
max_wal_senders = 5
wal_keep_size = 256MB
hot_standby = on
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
EOF
        cat >"$PRIMARY/pg_hba.conf" <<EOF
local all all trust
host all all $HOST/32 trust
local replication all trust
host replication all $HOST/32 trust
EOF
    fi
    if ! running "$PRIMARY"; then
        as_owner "$(pg_bin)/pg_ctl" start -D "$PRIMARY" -l "$BASE/primary.log" -w -t 30 >/dev/null \
            || fail "the primary did not start; see $BASE/primary.log"
    fi
    wait_ready "$PRIMARY_PORT" "the primary"
    if [ "$(psql_at "$PRIMARY_PORT" "SELECT count(*) FROM pg_database WHERE datname = '$DATABASE'")" = 0 ]; then
        psql_at "$PRIMARY_PORT" "CREATE DATABASE $DATABASE" || fail "could not create the database $DATABASE"
    fi
}

start_replica() {
    if [ ! -f "$REPLICA/PG_VERSION" ]; then
        echo "scale_out.sh: making the replica in $REPLICA (pg_basebackup -R)"
        rm -rf "$REPLICA"
        as_owner "$(pg_bin)/pg_basebackup" -h "$HOST" -p "$PRIMARY_PORT" -U "$OWNER" -D "$REPLICA" \
            -R -X stream -c fast >"$BASE/replica-basebackup.log" 2>&1 \
            || fail "pg_basebackup from the primary failed; see $BASE/replica-basebackup.log"
        cat >>"$REPLICA/postgresql.conf" <<EOF
# flask-typed-db's test replica
port = $REPLICA_PORT
EOF
    fi
    if ! running "$REPLICA"; then
        as_owner "$(pg_bin)/pg_ctl" start -D "$REPLICA" -l "$BASE/replica.log" -w -t 30 >/dev/null \
            || fail "the replica did not start; see $BASE/replica.log"
    fi
    wait_ready "$REPLICA_PORT" "the replica"
    # A replica that comes back after the tests paused its replay: replay again.
    psql_at "$REPLICA_PORT" "SELECT pg_wal_replay_resume()" >/dev/null
    local tries=0
    until [ "$(psql_at "$REPLICA_PORT" "SELECT count(*) FROM pg_database WHERE datname = '$DATABASE'")" = 1 ]; do
        tries=$((tries + 1))
        [ "$tries" -lt 300 ] || fail "the replica did not replay the database $DATABASE within 30 s"
        sleep 0.1
    done
}

install_pgbouncer() {
    command -v pgbouncer >/dev/null && return
    [ "$(id -u)" = 0 ] || fail "PgBouncer is not installed; run this as root to install Debian's package"
    echo "scale_out.sh: installing Debian's pgbouncer package"
    # Installed, never started as a service: a policy-rc.d of our own refuses every
    # service start while apt runs, and goes with it.
    local policy=/usr/sbin/policy-rc.d made_policy=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        made_policy=yes
    fi
    local status=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends pgbouncer \
        >"$BASE/pgbouncer-install.log" 2>&1 || status=$?
    if [ "$status" != 0 ]; then
        apt-get update -q >>"$BASE/pgbouncer-install.log" 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends pgbouncer \
            >>"$BASE/pgbouncer-install.log" 2>&1 || status=$?
        [ "$status" = 0 ] || true
    fi
    [ -n "$made_policy" ] && rm -f "$policy"
    command -v pgbouncer >/dev/null || fail "installing pgbouncer failed; see $BASE/pgbouncer-install.log"
}

start_pgbouncer() {
    install_pgbouncer
    mkdir -p "$BOUNCER"
    cat >"$BOUNCER/pgbouncer.ini" <<EOF
; flask-typed-db's test PgBouncer, in front of the test primary
[databases]
$DATABASE = host=$HOST port=$PRIMARY_PORT dbname=$DATABASE

[pgbouncer]
listen_addr = $HOST
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $BOUNCER/users.txt
pool_mode = transaction
max_client_conn = 200
default_pool_size = 4
server_reset_query =
logfile = $BASE/pgbouncer.log
pidfile = $BOUNCER/pgbouncer.pid
EOF
    echo "\"$OWNER\" \"\"" >"$BOUNCER/users.txt"
    chown -R "$OWNER" "$BOUNCER"
    if [ -f "$BOUNCER/pgbouncer.pid" ] && kill -0 "$(cat "$BOUNCER/pgbouncer.pid")" 2>/dev/null; then
        return
    fi
    rm -f "$BOUNCER/pgbouncer.pid"
    as_owner pgbouncer -d "$BOUNCER/pgbouncer.ini" || fail "PgBouncer did not start; see $BASE/pgbouncer.log"
    wait_ready "$PGBOUNCER_PORT" "PgBouncer"
}

stop_cluster() { # data directory
    if running "$1"; then
        as_owner "$(pg_bin)/pg_ctl" stop -D "$1" -m fast -w -t 30 >/dev/null
    fi
}

stop_pgbouncer() {
    local pidfile=$BOUNCER/pgbouncer.pid
    if [ -f "$pidfile" ]; then
        local pid
        pid=$(cat "$pidfile")
        # Only the process this script started, named in its own pid file.
        if kill -0 "$pid" 2>/dev/null && grep -q pgbouncer "/proc/$pid/cmdline" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -f "$pidfile"
    fi
}

prepare_base() {
    mkdir -p "$BASE"
    chown "$OWNER" "$BASE"
    chmod 700 "$BASE"
}

case "${1:-}" in
start)
    prepare_base
    start_primary
    start_replica
    start_pgbouncer
    echo "scale_out.sh: primary on $HOST:$PRIMARY_PORT, replica on $HOST:$REPLICA_PORT, PgBouncer on $HOST:$PGBOUNCER_PORT"
    ;;
start-replica)
    prepare_base
    start_replica
    ;;
stop-replica)
    stop_cluster "$REPLICA"
    ;;
stop)
    stop_pgbouncer
    stop_cluster "$REPLICA"
    stop_cluster "$PRIMARY"
    ;;
destroy)
    "$SCRIPT" stop
    rm -rf "$BASE"
    ;;
status)
    for what in primary replica; do
        if running "$BASE/$what"; then echo "$what: running"; else echo "$what: stopped"; fi
    done
    if [ -f "$BOUNCER/pgbouncer.pid" ] && kill -0 "$(cat "$BOUNCER/pgbouncer.pid")" 2>/dev/null; then
        echo "pgbouncer: running"
    else
        echo "pgbouncer: stopped"
    fi
    ;;
env)
    echo "export TEST_PRIMARY_URL=postgresql+psycopg://$OWNER@$HOST:$PRIMARY_PORT/$DATABASE"
    echo "export TEST_REPLICA_URL=postgresql+psycopg://$OWNER@$HOST:$REPLICA_PORT/$DATABASE"
    echo "export TEST_PGBOUNCER_URL=postgresql+psycopg://$OWNER@$HOST:$PGBOUNCER_PORT/$DATABASE"
    echo "export TEST_SCALE_OUT_SCRIPT=$SCRIPT"
    ;;
*)
    echo "usage: $0 start|stop|start-replica|stop-replica|status|env|destroy" >&2
    exit 2
    ;;
esac
