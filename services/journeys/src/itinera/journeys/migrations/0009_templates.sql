-- The templates the content service has published, as itinera.content.v1 announces
-- them: what publishing a journey checks its message nodes against (the template
-- exists in the sandbox and is for the node's channel). One row per template, the
-- latest version announced; a deleted template keeps its row, marked.
CREATE TABLE templates (
    sandbox text NOT NULL,
    id text NOT NULL,
    channel text NOT NULL,
    version integer NOT NULL,
    deleted boolean NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, id)
);
