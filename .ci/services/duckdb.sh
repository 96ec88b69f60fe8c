# shellcheck shell=bash
# Sourced by .ci/run: installs DuckDB's Python package (pinned) into .venv-duckdb if
# missing and exports DIFFMILL_TEST_DUCKDB_PYTHON, the interpreter with which the tests
# read the Parquet sink's files back (tests/parquet.rs). DuckDB runs in that process:
# there is no server to stop. Test it alone with:
#   STOP_SERVICES=(); source .ci/services/duckdb.sh; <use it>

DUCKDB_VERSION=2.0.0
DUCKDB_VENV="$PWD/.venv-duckdb"
if ! "$DUCKDB_VENV/bin/python" -c "import duckdb, sys; sys.exit(duckdb.__version__ != '$DUCKDB_VERSION')" 2>/dev/null; then
    echo "duckdb: installing duckdb==$DUCKDB_VERSION into $DUCKDB_VENV"
    python3 -m venv "$DUCKDB_VENV"
    "$DUCKDB_VENV/bin/pip" install --quiet --disable-pip-version-check "duckdb==$DUCKDB_VERSION"
fi
export DIFFMILL_TEST_DUCKDB_PYTHON="$DUCKDB_VENV/bin/python"
echo "duckdb: $("$DIFFMILL_TEST_DUCKDB_PYTHON" -c 'import duckdb; print(duckdb.__version__)') in $DUCKDB_VENV, DIFFMILL_TEST_DUCKDB_PYTHON set"
unset DUCKDB_VENV DUCKDB_VERSION
