-- The profile store: the latest record per (dataset, identity), experience events
-- (one row per event _id), and merge policies.

CREATE TABLE fragments (
    sandbox text NOT NULL,
    dataset_id text NOT NULL,
    namespace text NOT NULL,
    value text NOT NULL,
    record jsonb NOT NULL,
    record_time timestamptz NOT NULL,
    ce_id text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, dataset_id, namespace, value)
);
CREATE INDEX fragments_by_identity ON fragments (sandbox, namespace, value);

CREATE TABLE events (
    sandbox text NOT NULL,
    event_id text NOT NULL,
    dataset_id text NOT NULL,
    namespace text NOT NULL,
    value text NOT NULL,
    occurred_at timestamptz NOT NULL,
    body jsonb NOT NULL,
    PRIMARY KEY (sandbox, event_id)
);
CREATE INDEX events_by_identity ON events (sandbox, namespace, value, occurred_at DESC);

CREATE TABLE merge_policies (
    sandbox text NOT NULL,
    id uuid NOT NULL,
    name text NOT NULL,
    attribute_merge text NOT NULL CHECK (attribute_merge IN ('timestampOrdered', 'dataSetPrecedence')),
    dataset_order text[] NOT NULL DEFAULT '{}',
    identity_graph text NOT NULL CHECK (identity_graph IN ('none', 'pdg')),
    is_default boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, id),
    UNIQUE (sandbox, name)
);
CREATE UNIQUE INDEX one_default_merge_policy ON merge_policies (sandbox) WHERE is_default;
