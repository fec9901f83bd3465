-- Journeys and their versions. A version holds the journey's whole document (its graph
-- of nodes and its properties) as sent, with the defaults filled in, and what the
-- runtime looks versions up by: the entry (event type or audience) of live versions and
-- what they name elsewhere (templates, audiences, custom actions, journeys).
--
-- A version is a draft until published (live); a live version ends stopped (its
-- instances end at once) or closed (no new entries; running instances finish). A
-- journey has at most one draft and one live version at a time.

CREATE TABLE journeys (
    sandbox text NOT NULL,
    id uuid NOT NULL,
    name text NOT NULL,                  -- the latest version's
    description text NOT NULL DEFAULT '',
    latest_version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, id)
);
-- The list's order (most recently changed first).
CREATE INDEX journeys_by_update ON journeys (sandbox, updated_at DESC, id);

CREATE TABLE journey_versions (
    sandbox text NOT NULL,
    journey_id uuid NOT NULL,
    version integer NOT NULL CHECK (version >= 1),
    status text NOT NULL CHECK (status IN ('draft', 'live', 'stopped', 'closed')),
    definition jsonb NOT NULL,
    entry_node text,                     -- the entry node's id; null while a draft has none
    entry_type text CHECK (entry_type IN ('event', 'audience', 'readAudience')),
    entry_key text,                      -- the entry's event type or audience id
    templates text[] NOT NULL DEFAULT '{}',
    audiences text[] NOT NULL DEFAULT '{}',
    actions uuid[] NOT NULL DEFAULT '{}',
    jumps uuid[] NOT NULL DEFAULT '{}',  -- journeys it jumps to
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    stopped_at timestamptz,
    closed_at timestamptz,
    PRIMARY KEY (sandbox, journey_id, version),
    FOREIGN KEY (sandbox, journey_id) REFERENCES journeys (sandbox, id) ON DELETE CASCADE,
    CHECK ((status = 'draft') = (published_at IS NULL)),
    CHECK (status <> 'live' OR entry_type IS NOT NULL)
);
CREATE UNIQUE INDEX journey_versions_one_draft ON journey_versions (sandbox, journey_id)
    WHERE status = 'draft';
CREATE UNIQUE INDEX journey_versions_one_live ON journey_versions (sandbox, journey_id)
    WHERE status = 'live';
-- How the runtime finds the journeys an event or an audience change enters.
CREATE INDEX journey_versions_live_entries ON journey_versions (sandbox, entry_type, entry_key)
    WHERE status = 'live';
-- Which versions still run a custom action (live, or closed with instances finishing).
CREATE INDEX journey_versions_by_action ON journey_versions USING gin (actions)
    WHERE status IN ('live', 'closed');
