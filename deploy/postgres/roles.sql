-- deploy/postgres/roles.sql: nightshift's database and its three roles,
-- run once by a DBA (a superuser; on a managed service its admin role)
-- with psql. Safe to run again: what exists is kept, privileges converge.
--
--   psql "host=db dbname=postgres user=postgres" -v ON_ERROR_STOP=1 \
--        -f deploy/postgres/roles.sql
--   psql "host=db dbname=postgres user=postgres" \
--        -c '\password nightshift_migrator' -c '\password nightshift_app'
--
-- Names (psql -v NAME=VALUE; these are the defaults):
--   db=nightshift              the database
--   ddl_role=nightshift_ddl    NOLOGIN: owns the schema and every object
--                              the migrations create (seed 003's
--                              DB_DDL_ROLE)
--   ddl_user=nightshift_migrator
--                              LOGIN, member of ddl_role without its
--                              privileges until it SETs ROLE to it (what
--                              `nightshift migrate` does with
--                              NS_PG_DDL_ROLE): DB_DDL_USER
--   app_role=nightshift_app    LOGIN: the daemons (producer, worker,
--                              ingest, the operator verbs); rows only,
--                              granted by `nightshift migrate` with
--                              NS_PG_RUNTIME_ROLE: DB_USER
--   schema=public              where the migrations put the tables
--
-- Passwords are never in this file. Set them afterwards with psql's
-- \password (it sends only a SCRAM hash: the password reaches neither the
-- server's log nor the shell's history), or pass -v ddl_password=... and
-- -v app_password=... from a secret store (visible in `ps` meanwhile, and
-- in the server's log if it logs DDL statements).
--
-- What each role may do, rotation and moving an existing single-role
-- database over: docs/database-roles.md.

\set ON_ERROR_STOP on
\if :{?db}
\else
  \set db nightshift
\endif
\if :{?ddl_role}
\else
  \set ddl_role nightshift_ddl
\endif
\if :{?ddl_user}
\else
  \set ddl_user nightshift_migrator
\endif
\if :{?app_role}
\else
  \set app_role nightshift_app
\endif
\if :{?schema}
\else
  \set schema public
\endif

-- The roles. None may create databases or roles, replicate or bypass row
-- security; the DDL login holds nothing until it SETs ROLE.
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'ddl_role')
    AS missing \gset
\if :missing
  CREATE ROLE :"ddl_role" NOLOGIN;
\endif
ALTER ROLE :"ddl_role" NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    NOBYPASSRLS NOLOGIN;

SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'ddl_user')
    AS missing \gset
\if :missing
  CREATE ROLE :"ddl_user" LOGIN;
\endif
ALTER ROLE :"ddl_user" NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    NOBYPASSRLS NOINHERIT LOGIN;
GRANT :"ddl_role" TO :"ddl_user";

SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app_role')
    AS missing \gset
\if :missing
  CREATE ROLE :"app_role" LOGIN;
\endif
ALTER ROLE :"app_role" NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    NOBYPASSRLS LOGIN;

\if :{?ddl_password}
  ALTER ROLE :"ddl_user" PASSWORD :'ddl_password';
\endif
\if :{?app_password}
  ALTER ROLE :"app_role" PASSWORD :'app_password';
\endif

-- The database, owned by the DDL role when created here (an existing one
-- keeps its owner).
SELECT NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db')
    AS missing \gset
\if :missing
  CREATE DATABASE :"db" OWNER :"ddl_role";
\endif
-- Only the two logins connect; nobody makes temporary tables or schemas
-- (the DDL role owns the one schema it needs).
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"ddl_user", :"app_role";

\connect :"db"
CREATE SCHEMA IF NOT EXISTS :"schema";
ALTER SCHEMA :"schema" OWNER TO :"ddl_role";
-- Before PostgreSQL 15 every role could create objects in public.
REVOKE ALL ON SCHEMA :"schema" FROM PUBLIC;
-- Name resolution only; `nightshift migrate` grants this too, with the
-- rows, sequences and functions.
GRANT USAGE ON SCHEMA :"schema" TO :"app_role";
-- The migrations create unqualified names in the first schema of the
-- search_path; the daemons look them up the same way (a login's setting:
-- SET ROLE keeps it).
ALTER ROLE :"ddl_user" IN DATABASE :"db" SET search_path = :"schema";
ALTER ROLE :"app_role" IN DATABASE :"db" SET search_path = :"schema";
