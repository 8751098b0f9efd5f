#!/bin/sh
# Run once by the clickhouse-server image on an empty data volume (/docker-entrypoint-initdb.d).
set -eu
: "${CLICKHOUSE_ANALYST_PASSWORD:?set CLICKHOUSE_ANALYST_PASSWORD}"
sed "s/__ANALYST_PASSWORD__/${CLICKHOUSE_ANALYST_PASSWORD}/" /opt/opsmeter/analyst-user.sql \
    | clickhouse client --user "${CLICKHOUSE_USER:-default}" --password "${CLICKHOUSE_PASSWORD}" --multiquery
