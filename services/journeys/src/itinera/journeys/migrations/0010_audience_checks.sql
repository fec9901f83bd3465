-- What the segmentation service last answered about each audience this service's
-- journeys and campaigns name: found or not, when it was asked, and since when it has
-- been missing (null while it is found). Written by the periodic audience check and by
-- publish attempts; read by the API (a live journey's or campaign's warnings, what a
-- draft's audiences are known to be) and by audience runs, which end failed when their
-- audience is missing rather than read an audience that no longer exists.
CREATE TABLE audience_checks (
    sandbox text NOT NULL,
    audience_id text NOT NULL,
    found boolean NOT NULL,
    checked_at timestamptz NOT NULL,
    missing_since timestamptz,
    PRIMARY KEY (sandbox, audience_id),
    CHECK (found = (missing_since IS NULL))
);
CREATE INDEX audience_checks_missing ON audience_checks (sandbox) WHERE NOT found;

-- When a check of every sandbox last started: workers claim the next one by moving it
-- on, so that any number of them check once per interval between them.
CREATE TABLE audience_check_passes (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    started_at timestamptz NOT NULL
);

-- The draft and live versions that name an audience, found from the audience.
CREATE INDEX journey_versions_by_audience ON journey_versions USING gin (audiences)
    WHERE status IN ('draft', 'live');

-- A read of an audience found missing ends failed, with the reason.
ALTER TABLE audience_reads
    DROP CONSTRAINT audience_reads_status_check,
    ADD CONSTRAINT audience_reads_status_check
        CHECK (status IN ('running', 'done', 'cancelled', 'failed')),
    ADD COLUMN reason text;
