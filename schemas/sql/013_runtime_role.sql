-- Least privilege: the daemons change rows, never the schema. The two
-- things they did that need a table's owner, the stopword merge's
-- partition swap (007) and the planner's statistics refresh, are done by
-- the functions below as their owner (SECURITY DEFINER: the role that
-- migrates), so the runtime role needs only row privileges and EXECUTE on
-- them. `nightshift migrate` grants those to NS_PG_RUNTIME_ROLE through
-- ns_grant_runtime_role (docs/database-roles.md).
--
-- The functions act only on stopword_terms and on tables named
-- stopword_terms_<first 16 hex digits of md5(job)>[_new]: a caller
-- cannot name another table. Their search_path is pinned (at the end:
-- this schema, then pg_temp, so a caller's temporary table never shadows
-- ours) and only the roles granted EXECUTE may call them. All they let a
-- caller do is what row privileges on stopword_terms already allow:
-- replace one job's rows.

-- A fresh, empty table for job's terms, created in the caller's
-- transaction (so COPY ... WITH (FREEZE) into it works; no EXCEPTION
-- block here, which would make a subtransaction) and holding exactly the
-- privileges stopword_terms has: the runtime role may COPY into it, and
-- the partition it becomes grants no more than the table it joins.
-- Returns the table's name.
CREATE FUNCTION ns_stopword_terms_stage(job text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    fresh text := 'stopword_terms_' || left(md5(job), 16) || '_new';
    g record;
BEGIN
    IF job IS NULL THEN
        RAISE EXCEPTION 'ns_stopword_terms_stage: job is NULL';
    END IF;
    -- Left over only if someone staged outside a merge's transaction.
    EXECUTE format('DROP TABLE IF EXISTS %I', fresh);
    EXECUTE format('CREATE TABLE %I (LIKE stopword_terms, CHECK (job = %L))',
                   fresh, job);
    -- Default privileges may have granted something already: start from
    -- the owner's alone, then copy the parent's grants.
    FOR g IN
        SELECT DISTINCT CASE a.grantee WHEN 0 THEN 'PUBLIC'
                        ELSE quote_ident(r.rolname) END AS grantee
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
        LEFT JOIN pg_roles r ON r.oid = a.grantee
        WHERE c.oid = fresh::regclass AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('REVOKE ALL ON %I FROM %s', fresh, g.grantee);
    END LOOP;
    FOR g IN
        SELECT a.privilege_type, a.is_grantable,
               CASE a.grantee WHEN 0 THEN 'PUBLIC'
               ELSE quote_ident(r.rolname) END AS grantee
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
        LEFT JOIN pg_roles r ON r.oid = a.grantee
        WHERE c.oid = 'stopword_terms'::regclass AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('GRANT %s ON %I TO %s%s', g.privilege_type, fresh,
                       g.grantee,
                       CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION'
                       ELSE '' END);
    END LOOP;
    RETURN fresh;
END
$$;

-- The staged table (filled by the caller) becomes job's partition: one
-- sorted index build, the old partition dropped, the new one renamed and
-- attached (its CHECK matches the bound: no validation scan). Readers of
-- stopword_terms wait only from here to the caller's commit.
CREATE FUNCTION ns_stopword_terms_publish(job text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    part text := 'stopword_terms_' || left(md5(job), 16);
    fresh text := part || '_new';
BEGIN
    IF job IS NULL THEN
        RAISE EXCEPTION 'ns_stopword_terms_publish: job is NULL';
    END IF;
    IF to_regclass(quote_ident(fresh)) IS NULL THEN
        RAISE EXCEPTION 'ns_stopword_terms_publish: nothing staged for job %',
                        quote_literal(job)
            USING HINT = 'call ns_stopword_terms_stage(job) first';
    END IF;
    EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (job, lang, term)', fresh);
    EXECUTE format('DROP TABLE IF EXISTS %I', part);
    EXECUTE format('ALTER TABLE %I RENAME TO %I', fresh, part);
    EXECUTE format('ALTER INDEX %I RENAME TO %I', fresh || '_pkey',
                   part || '_pkey');
    EXECUTE format('ALTER TABLE stopword_terms ATTACH PARTITION %I '
                   'FOR VALUES IN (%L)', part, job);
END
$$;

-- The planner refreshes the items statistics after a big run at once
-- instead of waiting for autovacuum (producer/planner.c); ANALYZE needs
-- the table's owner.
CREATE FUNCTION ns_analyze_items() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    ANALYZE items (run_id, item_key, status);
END
$$;

-- What the daemons' role may do, granted by `nightshift migrate` (in its
-- lock, after the migrations) when NS_PG_RUNTIME_ROLE names the role:
-- USAGE on this schema; SELECT, INSERT, UPDATE, DELETE on its tables
-- (SELECT only on schema_migrations and the views); USAGE, SELECT on its
-- sequences; EXECUTE on the functions above; and, by default privileges,
-- the same on tables and sequences the migrating role creates later. It
-- converges: anything else the role held on these objects is revoked.
-- It refuses a role that could alter the schema (a superuser, a member of
-- the schema's or the objects' owner, a role that may CREATE in it) and
-- objects the migrating role cannot grant on (another owner: REASSIGN
-- OWNED first). Runs as its caller (the migrating role).
CREATE FUNCTION ns_grant_runtime_role(runtime text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    nsp oid;
    nsp_name text := current_schema();
    role record;
    rel record;
    others text;
BEGIN
    SELECT oid INTO nsp FROM pg_namespace WHERE nspname = nsp_name;
    SELECT rolname, rolsuper INTO role FROM pg_roles WHERE rolname = runtime;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'role "%" does not exist', runtime
            USING HINT = 'create it first: deploy/postgres/roles.sql';
    END IF;
    IF role.rolsuper THEN
        RAISE EXCEPTION 'role "%" is a superuser: it could alter the schema',
                        runtime;
    END IF;
    IF pg_has_role(runtime, current_user, 'MEMBER') THEN
        RAISE EXCEPTION 'role "%" can act as "%", the role that migrates: '
                        'it could alter the schema', runtime, current_user
            USING HINT = 'the daemons need a role of their own';
    END IF;
    SELECT string_agg(DISTINCT quote_ident(o.rolname), ', ') INTO others
    FROM pg_class c JOIN pg_roles o ON o.oid = c.relowner
    WHERE c.relnamespace = nsp AND pg_has_role(runtime, c.relowner, 'MEMBER');
    IF others IS NOT NULL OR pg_has_role(runtime, (SELECT nspowner FROM
            pg_namespace WHERE oid = nsp), 'MEMBER') THEN
        RAISE EXCEPTION 'role "%" can act as an owner of schema "%" or of '
                        'its tables (%)', runtime, nsp_name,
                        coalesce(others, 'the schema''s owner');
    END IF;
    SELECT string_agg(format('%I (owner %I)', c.relname, o.rolname), ', ')
        INTO others
    FROM pg_class c JOIN pg_roles o ON o.oid = c.relowner
    WHERE c.relnamespace = nsp AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
      AND NOT pg_has_role(current_user, c.relowner, 'USAGE');
    IF others IS NOT NULL THEN
        RAISE EXCEPTION 'role "%" does not own %', current_user, others
            USING HINT = 'REASSIGN OWNED BY <their owner> TO '
                         || quote_ident(current_user)
                         || ' (as a superuser), then migrate again';
    END IF;

    EXECUTE format('REVOKE ALL ON SCHEMA %I FROM %I', nsp_name, runtime);
    IF has_schema_privilege(runtime, nsp, 'CREATE') THEN
        RAISE EXCEPTION 'role "%" may create objects in schema "%"', runtime,
                        nsp_name
            USING HINT = format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC '
                                '(and from the roles "%s" is a member of)',
                                nsp_name, runtime);
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', nsp_name, runtime);
    IF NOT has_schema_privilege(runtime, nsp, 'USAGE') THEN
        RAISE EXCEPTION 'could not grant USAGE on schema "%" to "%" (is "%" '
                        'its owner?)', nsp_name, runtime, current_user;
    END IF;
    FOR rel IN
        SELECT c.relname, c.relkind
        FROM pg_class c
        WHERE c.relnamespace = nsp AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
        ORDER BY c.relname
    LOOP
        -- A stopword merge may drop a partition meanwhile: skip it.
        BEGIN
            IF rel.relkind = 'S' THEN
                EXECUTE format('REVOKE ALL ON SEQUENCE %I.%I FROM %I',
                               nsp_name, rel.relname, runtime);
                EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %I.%I TO %I',
                               nsp_name, rel.relname, runtime);
            ELSE
                EXECUTE format('REVOKE ALL ON %I.%I FROM %I', nsp_name,
                               rel.relname, runtime);
                EXECUTE format('GRANT %s ON %I.%I TO %I',
                               CASE WHEN rel.relkind IN ('v', 'm') OR
                                         rel.relname = 'schema_migrations'
                                    THEN 'SELECT'
                                    ELSE 'SELECT, INSERT, UPDATE, DELETE' END,
                               nsp_name, rel.relname, runtime);
            END IF;
        EXCEPTION WHEN undefined_table THEN
            NULL;
        END;
    END LOOP;
    EXECUTE format('GRANT EXECUTE ON FUNCTION ns_stopword_terms_stage(text), '
                   'ns_stopword_terms_publish(text), ns_analyze_items() '
                   'TO %I', runtime);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, '
                   'INSERT, UPDATE, DELETE ON TABLES TO %I', nsp_name,
                   runtime);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, '
                   'SELECT ON SEQUENCES TO %I', nsp_name, runtime);
END
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION ns_stopword_terms_stage(text) '
                   'SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION ns_stopword_terms_publish(text) '
                   'SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION ns_analyze_items() '
                   'SET search_path = %I, pg_temp', current_schema());
END
$$;
REVOKE ALL ON FUNCTION ns_stopword_terms_stage(text),
    ns_stopword_terms_publish(text), ns_analyze_items(),
    ns_grant_runtime_role(text) FROM PUBLIC;
