-- The default merge policy's view of each live profile, kept up to date as records
-- arrive, so downstream services get fresh profiles without re-reading fragments.
CREATE TABLE profile_views (
    sandbox text NOT NULL,
    profile_id uuid NOT NULL,
    entity jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, profile_id)
);
