-- Who is in which audience: realized (entered at the last change), existing (still
-- qualifies), exited (left), with when it entered and left. An audience's memberships
-- go with it.
CREATE TABLE memberships (
    sandbox text NOT NULL,
    audience_id uuid NOT NULL,
    profile_id uuid NOT NULL,
    status text NOT NULL CHECK (status IN ('realized', 'existing', 'exited')),
    entered_at timestamptz,
    exited_at timestamptz,
    evaluated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, audience_id, profile_id),
    FOREIGN KEY (sandbox, audience_id) REFERENCES segment_definitions (sandbox, id) ON DELETE CASCADE
);
CREATE INDEX memberships_by_profile ON memberships (sandbox, profile_id);
CREATE INDEX memberships_members ON memberships (sandbox, audience_id, status, profile_id);
