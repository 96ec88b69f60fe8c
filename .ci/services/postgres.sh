# shellcheck shell=bash
# Sourced by .ci/run: installs PostgreSQL from Debian's packages if missing, starts a
# throwaway cluster on a free local port, creates the test database, exports
# DIFFMILL_TEST_POSTGRES_URL for tests/postgres.rs and appends its stop command to
# STOP_SERVICES. Test it alone with:
#   STOP_SERVICES=(); source .ci/services/postgres.sh; <use it>
#   for stop in "${STOP_SERVICES[@]}"; do eval "$stop"; done

postgres_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

if [ -z "$(postgres_bin)" ]; then
    echo "postgres: installing PostgreSQL from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
PG_BIN="$(postgres_bin)"

# The server refuses to run as root: as root, run it as the `postgres` user the package
# creates, in a folder that user owns.
PG_AS=""
[ "$(id -u)" = 0 ] && PG_AS="runuser -u postgres --"
pg_as() { $PG_AS "$@"; }

PG_DIR="$(mktemp -d /tmp/diffmill-postgres.XXXXXX)"
chmod 755 "$PG_DIR"
[ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
PG_PASSWORD="diffmill-test"
echo "$PG_PASSWORD" >"$PG_DIR/pwfile"
[ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR/pwfile"
pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --pwfile="$PG_DIR/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 >"$PG_DIR/initdb.log"

# A free local port: the first from 55432 that nothing listens on.
PG_PORT=55432
while (exec 3<>"/dev/tcp/127.0.0.1/$PG_PORT") 2>/dev/null; do
    PG_PORT=$((PG_PORT + 1))
done

pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$PG_DIR -c max_connections=100 -c fsync=off" \
    start >/dev/null
STOP_SERVICES+=("$PG_AS '$PG_BIN/pg_ctl' -D '$PG_DIR/data' -m fast -w stop >/dev/null; rm -rf '$PG_DIR'")
pg_as "$PG_BIN/createdb" -h "$PG_DIR" -p "$PG_PORT" -U postgres diffmill_test
export DIFFMILL_TEST_POSTGRES_URL="postgresql://postgres:$PG_PASSWORD@127.0.0.1:$PG_PORT/diffmill_test"
echo "postgres: $("$PG_BIN/postgres" --version) on 127.0.0.1:$PG_PORT, DIFFMILL_TEST_POSTGRES_URL set"
unset -f pg_as postgres_bin
