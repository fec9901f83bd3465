-- Audience (segment) definitions, AEP-shaped: one PQL rule per audience, with what the
-- PQL engine found in it when it was saved (attribute paths read, audiences named,
-- streaming eligibility, look-back, time dependence), so that the services evaluating
-- it know what a rule needs without parsing it again.

CREATE TABLE segment_definitions (
    sandbox text NOT NULL,
    id uuid NOT NULL,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    expression text NOT NULL,              -- pql/text
    merge_policy_id text,                  -- as given; the default policy when null
    batch_enabled boolean NOT NULL,
    continuous_enabled boolean NOT NULL,   -- streaming
    synchronous_enabled boolean NOT NULL,  -- edge
    paths_read text[] NOT NULL DEFAULT '{}',
    audiences text[] NOT NULL DEFAULT '{}',  -- inSegment ids, as written in the rule
    streaming boolean NOT NULL,
    streaming_reasons text[] NOT NULL DEFAULT '{}',
    lookback interval,                     -- null: no event condition bounded in time
    time_dependent boolean NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, id),
    CHECK (batch_enabled OR continuous_enabled OR synchronous_enabled),
    CHECK (streaming OR NOT (continuous_enabled OR synchronous_enabled))
);
-- Names are unique per sandbox, whatever their case.
CREATE UNIQUE INDEX segment_definitions_name ON segment_definitions (sandbox, lower(name));
-- The list's default order (newest first).
CREATE INDEX segment_definitions_by_creation ON segment_definitions (sandbox, created_at DESC, id);

-- Which audiences a definition names with inSegment. The foreign key on the audience
-- named keeps one that is referenced from being deleted.
CREATE TABLE segment_references (
    sandbox text NOT NULL,
    definition_id uuid NOT NULL,
    referenced_id uuid NOT NULL,
    PRIMARY KEY (sandbox, definition_id, referenced_id),
    FOREIGN KEY (sandbox, definition_id) REFERENCES segment_definitions (sandbox, id) ON DELETE CASCADE,
    FOREIGN KEY (sandbox, referenced_id) REFERENCES segment_definitions (sandbox, id)
);
CREATE INDEX segment_references_by_referenced ON segment_references (sandbox, referenced_id);
