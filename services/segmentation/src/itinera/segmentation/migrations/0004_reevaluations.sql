-- When time alone can change whether a profile qualifies (a look-back window, today),
-- the moment it can next change; the scheduled evaluation picks due rows with
-- FOR UPDATE SKIP LOCKED, so any number of workers share them.
CREATE TABLE reevaluations (
    sandbox text NOT NULL,
    audience_id uuid NOT NULL,
    profile_id uuid NOT NULL,
    due_at timestamptz NOT NULL,
    PRIMARY KEY (sandbox, audience_id, profile_id),
    FOREIGN KEY (sandbox, audience_id) REFERENCES segment_definitions (sandbox, id) ON DELETE CASCADE
);
CREATE INDEX reevaluations_due ON reevaluations (due_at);
