-- The identity graph. Observations (identities and links, with when they were first
-- and last seen) are kept whole; the graph (members, refused links, evicted
-- identities) is derived from them by the linking rules and rewritten for the part
-- of the graph a change touches.

CREATE TABLE namespaces (
    sandbox text NOT NULL,
    code text NOT NULL,
    id bigint GENERATED ALWAYS AS IDENTITY (START WITH 100000),  -- standard ones are below
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    id_type text NOT NULL,
    unique_per_graph boolean NOT NULL DEFAULT false,
    priority integer NOT NULL DEFAULT 0,
    custom boolean NOT NULL DEFAULT true,  -- false: settings of a standard namespace
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, code)
);
CREATE UNIQUE INDEX namespaces_by_code_ci ON namespaces (sandbox, lower(code));

CREATE TABLE identities (
    sandbox text NOT NULL,
    namespace text NOT NULL,
    value text NOT NULL,
    first_seen timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    PRIMARY KEY (sandbox, namespace, value)
);

CREATE TABLE links (
    sandbox text NOT NULL,
    a_namespace text NOT NULL,
    a_value text NOT NULL,
    b_namespace text NOT NULL,
    b_value text NOT NULL,
    last_seen timestamptz NOT NULL,
    PRIMARY KEY (sandbox, a_namespace, a_value, b_namespace, b_value)
);
CREATE INDEX links_by_b ON links (sandbox, b_namespace, b_value);

-- Derived: which profile each identity belongs to (absent when evicted).
CREATE TABLE members (
    sandbox text NOT NULL,
    namespace text NOT NULL,
    value text NOT NULL,
    profile_id uuid NOT NULL,
    PRIMARY KEY (sandbox, namespace, value)
);
CREATE INDEX members_by_profile ON members (sandbox, profile_id);

-- Derived: links the rules refused and identities they evicted, for the API.
CREATE TABLE link_decisions (
    sandbox text NOT NULL,
    a_namespace text NOT NULL,
    a_value text NOT NULL,
    b_namespace text NOT NULL,
    b_value text NOT NULL,
    decision text NOT NULL CHECK (decision IN ('refused', 'evicted')),
    decided_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, a_namespace, a_value, b_namespace, b_value)
);
CREATE TABLE evictions (
    sandbox text NOT NULL,
    namespace text NOT NULL,
    value text NOT NULL,
    evicted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, namespace, value)
);

-- Profile ids that were merged into another (a redirect for old ids).
CREATE TABLE merged_profiles (
    sandbox text NOT NULL,
    profile_id uuid NOT NULL,
    merged_into uuid NOT NULL,
    merged_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, profile_id)
);

-- Records already applied (ce_id), so a redelivery changes nothing.
CREATE TABLE applied (
    sandbox text NOT NULL,
    ce_id text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, ce_id)
);
