-- What a materialised view was merged from and by which policy, so the default
-- policy's reads are answered from profile_views alone. A view whose policy is not
-- the current default (or was edited after the view was computed) is not used.
ALTER TABLE profile_views
    ADD COLUMN sources jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN last_modified timestamptz,
    ADD COLUMN policy_id uuid;
