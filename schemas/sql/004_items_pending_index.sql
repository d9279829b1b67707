-- Pending items are looked up by (run_id, item_key). With the old partial
-- index on run_id alone, a fresh table without statistics made Postgres scan
-- every pending item of the run for each lookup (quadratic over a run).
DROP INDEX IF EXISTS items_open;
CREATE INDEX items_open ON items (run_id, item_key) WHERE status = 'pending';
