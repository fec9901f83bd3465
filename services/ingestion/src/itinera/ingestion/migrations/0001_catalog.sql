-- Schema registry, datasets, streaming connections and dead letters.
-- Every row belongs to one sandbox; nothing is shared across sandboxes.

CREATE TABLE tenant_schemas (
    sandbox text NOT NULL,
    id text NOT NULL,                 -- the $id, https://ns.adobe.com/<tenant>/schemas/<hex>
    alt_id text NOT NULL,             -- meta:altId, _<tenant>.schemas.<hex>
    kind text NOT NULL CHECK (kind IN ('schemas', 'mixins')),
    title text NOT NULL,
    document jsonb NOT NULL,          -- the resource as stored, without registry metadata
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, id),
    UNIQUE (sandbox, alt_id)
);
CREATE UNIQUE INDEX tenant_schemas_title ON tenant_schemas (sandbox, kind, title);

CREATE TABLE descriptors (
    sandbox text NOT NULL,
    id text NOT NULL,
    type text NOT NULL,
    source_schema text NOT NULL,
    document jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, id)
);
CREATE INDEX descriptors_by_schema ON descriptors (sandbox, source_schema);

CREATE TABLE datasets (
    sandbox text NOT NULL,
    id text NOT NULL,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    schema_id text NOT NULL,
    content_type text NOT NULL,
    class_id text NOT NULL,
    profile_enabled boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, id),
    UNIQUE (sandbox, name)
);

CREATE TABLE connections (
    sandbox text NOT NULL,
    id text NOT NULL,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    dataset_id text NOT NULL,
    source_name text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, id),
    UNIQUE (sandbox, name),
    FOREIGN KEY (sandbox, dataset_id) REFERENCES datasets (sandbox, id)
);
CREATE UNIQUE INDEX connections_id ON connections (id);

CREATE TABLE dead_letters (
    id text PRIMARY KEY,
    sandbox text NOT NULL,
    kind text NOT NULL,
    received_at timestamptz NOT NULL,
    connection_id text,
    dataset_id text,
    origin jsonb NOT NULL,
    reasons jsonb NOT NULL,
    payload jsonb,
    payload_base64 text
);
CREATE INDEX dead_letters_by_dataset ON dead_letters (sandbox, dataset_id, received_at DESC, id);
CREATE INDEX dead_letters_by_time ON dead_letters (sandbox, received_at DESC, id);
