-- What the rules of audiences read, kept from the profile service's topics: each
-- profile's merged view (default merge policy) and its experience events.
CREATE TABLE profiles (
    sandbox text NOT NULL,
    profile_id uuid NOT NULL,
    attributes jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, profile_id)
);

CREATE TABLE profile_events (
    sandbox text NOT NULL,
    event_id text NOT NULL,
    profile_id uuid NOT NULL,
    occurred_at timestamptz NOT NULL,
    body jsonb NOT NULL,
    PRIMARY KEY (sandbox, event_id)
);
CREATE INDEX profile_events_by_profile ON profile_events (sandbox, profile_id, occurred_at DESC);
