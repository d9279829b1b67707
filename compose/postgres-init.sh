#!/bin/sh
# The dev stack's database roles: deploy/postgres/roles.sql with the
# passwords from compose/.env, run by the postgres image's entrypoint once,
# when the data volume is new (its temporary server listens on the socket
# only, where the superuser needs no password).
set -eu
psql -X -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v db="$POSTGRES_DB" \
    -v ddl_password="$NIGHTSHIFT_DDL_PASSWORD" \
    -v app_password="$NIGHTSHIFT_APP_PASSWORD" \
    -f /nightshift/roles.sql
