-- Dead letters are looked up by the item they belong to: `dlq replay
-- --item KEY`, and whether a run's item was dead-lettered.
CREATE INDEX dead_letters_item ON dead_letters (run_id, item_key);
