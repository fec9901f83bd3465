-- Templates and fragments, each with its versions. A version holds the whole document as
-- sent (name, channel or type, locale variants or content) and the fragment ids its
-- text includes directly (`fragments`), so that the fragments a template reaches, and
-- the templates that reach a fragment, are found without parsing anything.
--
-- A version is a draft until published; there is at most one draft. Publishing a draft
-- makes it the item's published version (`published_version`), the one the channels
-- receive on itinera.content.v1; earlier published versions stay readable.

CREATE TABLE templates (
    sandbox text NOT NULL,
    id text NOT NULL,
    name text NOT NULL,                  -- the latest version's
    description text NOT NULL DEFAULT '',
    channel text NOT NULL CHECK (channel IN ('email', 'sms', 'push', 'webhook')),
    latest_version integer NOT NULL CHECK (latest_version >= 1),
    published_version integer,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, id)
);
CREATE INDEX templates_by_update ON templates (sandbox, updated_at DESC, id);

CREATE TABLE template_versions (
    sandbox text NOT NULL,
    template_id text NOT NULL,
    version integer NOT NULL CHECK (version >= 1),
    status text NOT NULL CHECK (status IN ('draft', 'published')),
    document jsonb NOT NULL,
    fragments text[] NOT NULL DEFAULT '{}',
    revision integer NOT NULL DEFAULT 1,  -- bumped by each replacement of a draft
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    PRIMARY KEY (sandbox, template_id, version),
    FOREIGN KEY (sandbox, template_id) REFERENCES templates (sandbox, id) ON DELETE CASCADE,
    CHECK ((status = 'draft') = (published_at IS NULL))
);
CREATE UNIQUE INDEX template_versions_one_draft ON template_versions (sandbox, template_id)
    WHERE status = 'draft';
-- Which published versions include a fragment (deleting one they use is refused).
CREATE INDEX template_versions_by_fragment ON template_versions USING gin (fragments)
    WHERE status = 'published';

CREATE TABLE fragments (
    sandbox text NOT NULL,
    id text NOT NULL,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    type text NOT NULL CHECK (type IN ('visual', 'expression')),
    latest_version integer NOT NULL CHECK (latest_version >= 1),
    published_version integer,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, id)
);
CREATE INDEX fragments_by_update ON fragments (sandbox, updated_at DESC, id);

CREATE TABLE fragment_versions (
    sandbox text NOT NULL,
    fragment_id text NOT NULL,
    version integer NOT NULL CHECK (version >= 1),
    status text NOT NULL CHECK (status IN ('draft', 'published')),
    document jsonb NOT NULL,
    fragments text[] NOT NULL DEFAULT '{}',
    revision integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    PRIMARY KEY (sandbox, fragment_id, version),
    FOREIGN KEY (sandbox, fragment_id) REFERENCES fragments (sandbox, id) ON DELETE CASCADE,
    CHECK ((status = 'draft') = (published_at IS NULL))
);
CREATE UNIQUE INDEX fragment_versions_one_draft ON fragment_versions (sandbox, fragment_id)
    WHERE status = 'draft';
CREATE INDEX fragment_versions_by_fragment ON fragment_versions USING gin (fragments)
    WHERE status = 'published';

-- The last version number of deleted templates and fragments: one created again with
-- the same id continues after it, so the channels, which ignore a version older than
-- the one they hold, never ignore the new one.
CREATE TABLE retired (
    sandbox text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('template', 'fragment')),
    id text NOT NULL,
    last_version integer NOT NULL,
    PRIMARY KEY (sandbox, kind, id)
);
