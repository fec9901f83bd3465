-- Custom actions: the HTTP calls journeys make to outside systems. `config` holds the
-- configuration as accepted (secrets included; the API never shows them); the columns
-- beside it are what is looked up: the endpoint (scheme, host and port, which the rate
-- cap applies to), the parameters the templates use and the response fields declared.

CREATE TABLE actions (
    sandbox text NOT NULL,
    id uuid NOT NULL,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    config jsonb NOT NULL,
    endpoint text NOT NULL,
    parameters text[] NOT NULL DEFAULT '{}',
    response_fields text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, id)
);
-- Names are unique per sandbox, whatever their case.
CREATE UNIQUE INDEX actions_name ON actions (sandbox, lower(name));
CREATE INDEX actions_by_creation ON actions (sandbox, created_at DESC, id);
