-- A namespace's graph settings (unique per graph, priority) changed: every graph
-- holding one of its identities is resolved again under the new rules by the rebuild
-- worker, a chunk of the namespace's identities at a time (``after_value`` is how far
-- it got, in value order). At most one unfinished rebuild per namespace: a second
-- change restarts it from the beginning.
CREATE TABLE graph_rebuilds (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sandbox text NOT NULL,
    namespace text NOT NULL,
    settings jsonb NOT NULL,  -- the settings that asked for it: {uniquePerGraph, priority}
    requested_at timestamptz NOT NULL DEFAULT now(),
    after_value text,
    identities bigint NOT NULL DEFAULT 0,
    profiles_changed bigint NOT NULL DEFAULT 0,
    merges bigint NOT NULL DEFAULT 0,
    finished_at timestamptz
);
CREATE UNIQUE INDEX graph_rebuilds_open ON graph_rebuilds (sandbox, namespace) WHERE finished_at IS NULL;
CREATE INDEX graph_rebuilds_by_sandbox ON graph_rebuilds (sandbox, id);
