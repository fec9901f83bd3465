-- An outbox record's headers are kept as the JSON text enqueue wrote ([[name, value],
-- ...]) rather than as jsonb: nothing queries them, and jsonb cost a parse on every
-- insert and a conversion back to text on every read by the relay (the relay's read
-- took about three times as long).
ALTER TABLE outbox ALTER COLUMN headers TYPE text USING headers::text;
ALTER TABLE outbox_failed ALTER COLUMN headers TYPE text USING headers::text;
