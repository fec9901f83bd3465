-- Uploaded audiences: a list of people (a CSV of identities) instead of a rule written by
-- hand. Each person goes to the profile service as a profile record of the audience's
-- own dataset, carrying a marker the audience's rule reads; 'upload' marks the
-- definitions made that way, whose rule is not edited by hand.
ALTER TABLE segment_definitions
    ADD COLUMN origin text NOT NULL DEFAULT 'rule' CHECK (origin IN ('rule', 'upload'));

-- Each upload into such an audience: what was sent, for its history.
CREATE TABLE audience_uploads (
    sandbox text NOT NULL,
    id uuid NOT NULL,
    audience_id uuid NOT NULL,
    namespaces text[] NOT NULL,   -- the CSV's columns
    rows integer NOT NULL,        -- people sent
    identities integer NOT NULL,  -- identities sent, over all rows
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, id),
    FOREIGN KEY (sandbox, audience_id) REFERENCES segment_definitions (sandbox, id) ON DELETE CASCADE
);
CREATE INDEX audience_uploads_by_audience ON audience_uploads (sandbox, audience_id, created_at);
