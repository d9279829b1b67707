-- items.run_id loses its foreign key: checking it cost every inserted item
-- a lookup and a row lock in runs, a quarter of the time a run took to
-- record its items (bench/throughput.py). Only the planner inserts items,
-- for the run it has just read under that run's advisory lock, so the
-- parent always exists. What the key also did, deleting a run's items
-- with the run, stays: a statement trigger on runs does it.
ALTER TABLE items DROP CONSTRAINT IF EXISTS items_run_id_fkey;

CREATE FUNCTION ns_delete_run_items() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM items i USING gone g WHERE i.run_id = g.run_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER runs_delete_items AFTER DELETE ON runs
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION ns_delete_run_items();
