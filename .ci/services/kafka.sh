# shellcheck shell=bash
# Sourced by .ci/run: installs the Kafka-protocol broker of the PyPI package noida-db
# (pinned) into .venv-kafka, starts it on a free local port with a throwaway data folder,
# waits until it accepts connections, exports KAFKA_BROKERS for tests/kafka.rs and
# appends its stop command (kill by PID) to STOP_SERVICES. Test it alone with:
#   STOP_SERVICES=(); source .ci/services/kafka.sh; <use it>
#   for stop in "${STOP_SERVICES[@]}"; do eval "$stop"; done

KAFKA_VENV="$PWD/.venv-kafka"
if [ ! -x "$KAFKA_VENV/bin/noida-db" ]; then
    echo "kafka: installing noida-db==0.2.3 into $KAFKA_VENV"
    python3 -m venv "$KAFKA_VENV"
    "$KAFKA_VENV/bin/pip" install --quiet --disable-pip-version-check noida-db==0.2.3
fi

# A free local port: the first from 39092 that nothing listens on.
KAFKA_PORT=39092
while (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null; do
    KAFKA_PORT=$((KAFKA_PORT + 1))
done
KAFKA_DIR="$(mktemp -d /tmp/diffmill-kafka.XXXXXX)"
# The package's `noida-db` script runs the broker binary as a child process, so killing
# the script would leave the broker running: start the binary itself.
KAFKA_BIN="$("$KAFKA_VENV/bin/python" -c \
    'from importlib.resources import files; print(files("noida_db").joinpath("noida-db"))')"
chmod +x "$KAFKA_BIN"
"$KAFKA_BIN" start --only kafka --host 127.0.0.1 --kafka-port "$KAFKA_PORT" \
    --data-dir "$KAFKA_DIR/data" >"$KAFKA_DIR/broker.log" 2>&1 &
KAFKA_PID=$!
STOP_SERVICES+=("kill $KAFKA_PID 2>/dev/null; wait $KAFKA_PID 2>/dev/null; rm -rf '$KAFKA_DIR'")

kafka_waited=0
until (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null; do
    if ! kill -0 "$KAFKA_PID" 2>/dev/null || [ "$kafka_waited" -ge 600 ]; then
        echo "kafka: the broker did not start; its log:" >&2
        cat "$KAFKA_DIR/broker.log" >&2
        return 1 2>/dev/null || exit 1
    fi
    sleep 0.1
    kafka_waited=$((kafka_waited + 1))
done
unset kafka_waited
export KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
echo "kafka: noida-db 0.2.3 (pid $KAFKA_PID) on $KAFKA_BROKERS, KAFKA_BROKERS set"
