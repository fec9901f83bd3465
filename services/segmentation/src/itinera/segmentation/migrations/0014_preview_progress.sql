-- How far a RUNNING preview's evaluation has got, for its estimate: the evaluating worker
-- writes it after each chunk on a connection of its own (the evaluation's transaction
-- shows nothing until it commits, and must not write rows others change), and removes it
-- once the evaluation's transaction has ended. Rows of previews no longer RUNNING (a
-- worker that died) go when expired previews are removed.
CREATE TABLE preview_progress (
    sandbox text NOT NULL,
    preview_id uuid NOT NULL,
    profiles_total bigint NOT NULL,
    profiles_read bigint NOT NULL,
    profiles_matched bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, preview_id)
);
