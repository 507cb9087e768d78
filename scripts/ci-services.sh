#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 for the tests; install and start one if not.
# Prints nothing on a machine where it already runs. Redis needs nothing here: the tests use the one on
# 127.0.0.1:6379 when it answers and otherwise start a throwaway redis-server themselves.
set -euo pipefail
# Only the `export ...` line goes to standard output (the caller evals it); everything else to stderr.
exec 3>&1 1>&2
pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
if ! pg_up; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "installing PostgreSQL from Debian's packages"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
  fi
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
# A database `test` the tests may connect to, and trust or password auth for the postgres user.
if ! psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO -u postgres psql -qc "ALTER USER postgres PASSWORD 'postgres'" >/dev/null 2>&1 || \
    su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
  (su postgres -c "createdb test" 2>/dev/null) || true
  echo "export SESSIONWARD_TEST_PG_URL=postgresql://postgres:postgres@127.0.0.1:5432/test" >&3
fi
