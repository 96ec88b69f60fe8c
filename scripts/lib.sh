# Functions shared by the scripts in scripts/; not run by itself:
#
#   source "$(dirname "$0")/lib.sh"
#
# run_sampled DIR COMMAND...   run COMMAND, sampling its resident memory (VmRSS)
# status_rows DIR              pair each status line of that run with its nearest RSS sample
# rss_csv_append DIR LABEL CSV append those rows to a CSV (scripts/plot_rss.sh plots it)
# plot_python                  the repository's Python with matplotlib, for the plot_*.py
# median VALUE...              the median of the numbers (the lower one of an even count)

LIB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Runs COMMAND in the background, its stdout discarded and its stderr (the status lines of
# `diffmill run --status-every N` and the summary) in DIR/stderr. Until it exits, samples
# its VmRSS from /proc every RSS_EVERY seconds (default 0.5) into DIR/rss, one line
# `unix_seconds kB` a sample, the first taken as it starts. Returns COMMAND's exit status,
# after the end of its stderr when that is not 0.
run_sampled() {
    local dir=$1 pid rss status=0
    shift
    "$@" 2>"$dir/stderr" >/dev/null &
    pid=$!
    : >"$dir/rss"
    while kill -0 "$pid" 2>/dev/null; do
        # No VmRSS line once the process has exited and is not yet reaped: no sample.
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        [ -n "$rss" ] && echo "$(date +%s.%N) $rss" >>"$dir/rss"
        sleep "${RSS_EVERY:-0.5}"
    done
    wait "$pid" || status=$?
    if [ "$status" -ne 0 ]; then
        tail -20 "$dir/stderr" >&2
    fi
    return "$status"
}

# Prints one row a status line of DIR/stderr: `wall_s records_read held frontier rss_mb`,
# where rss_mb is the sample of DIR/rss nearest in time (both count from the start of the
# run) and frontier is the sinks' frontier, `-` before the first batch and `complete`
# once the input is. A status line reads
#   [  12.0s] read R (bid B, impression I, ...) · late ... · N records/s ·
#   H records held in state · frontier 2024-01-01T00:30:00Z (...) · K batches
status_rows() {
    awk '
        function abs(x) { return x < 0 ? -x : x }
        FILENAME == ARGV[1] {
            if (n == 0) start = $1
            n++; at[n] = $1 - start; kb[n] = $2
            next
        }
        /^\[ *[0-9.]+s\] read [0-9]+ / {
            t = $0; sub(/^\[ */, "", t); sub(/s\].*/, "", t)
            read = $0; sub(/.*s\] read /, "", read); sub(/ .*/, "", read)
            held = $0; sub(/ records held in state.*/, "", held); sub(/.* /, "", held)
            frontier = "-"
            if (match($0, /frontier [^ ]+/)) frontier = substr($0, RSTART + 9, RLENGTH - 9)
            else if (index($0, "input complete")) frontier = "complete"
            # Status lines and samples both go forward in time: move on while the next
            # sample is nearer.
            if (i == 0) i = 1
            while (i < n && abs(at[i + 1] - t) <= abs(at[i] - t)) i++
            print t, read, held, frontier, (n ? int(kb[i] / 1024) : "-")
        }' "$1/rss" "$1/stderr"
}

# Appends the rows of status_rows DIR to CSV (its header first when it is new or empty):
# wall_s,records_read,held,rss_mb,label.
rss_csv_append() {
    local dir=$1 label=$2 csv=$3
    mkdir -p "$(dirname "$csv")"
    [ -s "$csv" ] || echo "wall_s,records_read,held,rss_mb,label" >"$csv"
    status_rows "$dir" | awk -v label="$label" '
        BEGIN { gsub(/"/, "\"\"", label) }
        { printf "%s,%s,%s,%s,\"%s\"\n", $1, $2, $3, $5, label }' >>"$csv"
}

# Prints the path of the repository's own Python for the plots: .venv-plot, created with
# the pinned matplotlib on first use (needs python3 with venv; pip reaches PyPI).
plot_python() {
    local venv=$LIB_ROOT/.venv-plot matplotlib=matplotlib==3.10.8
    if ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
        echo "plot: installing $matplotlib into $venv" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "$matplotlib" >&2
    fi
    echo "$venv/bin/python"
}

# Prints the median of its arguments (numbers, each may also be a space-separated list):
# the middle one, or of an even count the lower of the two middle ones.
median() {
    printf '%s\n' $* | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
