-- Previews and estimates (AEP's /preview and /estimate): a PQL rule evaluated once over
-- the sandbox's projection (all of it, or a deterministic sample beyond a bound), kept
-- until it expires or is deleted. A preview and its estimate share the id.

CREATE TABLE previews (
    sandbox text NOT NULL,
    id uuid NOT NULL,
    expression text NOT NULL,              -- pql/text
    predicate_model text NOT NULL,
    graph_type text,
    merge_policy_id text,                  -- as given; the projection is the default policy's view
    profiles_total bigint NOT NULL,        -- profiles in the projection when evaluated
    profiles_read bigint NOT NULL,         -- profiles evaluated: all of them, or the sample
    profiles_matched bigint NOT NULL,      -- qualifying profiles among those read
    evaluated_at timestamptz NOT NULL,     -- the rule's `now`
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (sandbox, id),
    CHECK (profiles_matched <= profiles_read AND profiles_read <= profiles_total)
);
-- Expired previews are removed a few at a time when previews are created.
CREATE INDEX previews_expiry ON previews (expires_at);

-- The qualifying profiles, as they were when the rule was evaluated, paged by profile id.
CREATE TABLE preview_profiles (
    sandbox text NOT NULL,
    preview_id uuid NOT NULL,
    profile_id uuid NOT NULL,
    attributes jsonb NOT NULL,
    PRIMARY KEY (sandbox, preview_id, profile_id),
    FOREIGN KEY (sandbox, preview_id) REFERENCES previews (sandbox, id) ON DELETE CASCADE
);
