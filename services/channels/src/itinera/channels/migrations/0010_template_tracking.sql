-- What a template asks of tracking (its record's `tracking`: {opens, clicks}); null, as
-- for templates stored before, tracks both.
ALTER TABLE content_items ADD COLUMN tracking jsonb;
