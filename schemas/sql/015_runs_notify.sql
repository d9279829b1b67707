-- A run's change of status is announced on the channel nightshift_runs
-- (payload: the run id), delivered when the changing transaction commits:
-- `nightshift run --wait`, and anyone else LISTENing, hears of a finished
-- run at once instead of finding it at its next poll. A row trigger with
-- a WHEN clause: the counters and timestamps updated without a change of
-- status do not fire it.
CREATE FUNCTION ns_notify_run_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('nightshift_runs', NEW.run_id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER runs_status_notify AFTER UPDATE OF status ON runs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION ns_notify_run_status();
