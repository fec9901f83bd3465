-- Journeys whose entry reads an audience: every member enters, once or on a schedule,
-- at the entry's rate. read_schedules holds each live version's next occurrence (its
-- first one set when a worker first sees the version live); each occurrence becomes an
-- audience_reads row, read in chunks of members by profile id, each chunk one
-- transaction with the entries it makes and the cursor it advances, so a crash loses at
-- most the chunk in flight and any worker resumes from the cursor.
CREATE TABLE read_schedules (
    sandbox text NOT NULL,
    journey_id uuid NOT NULL,
    version integer NOT NULL,
    anchor timestamptz NOT NULL,        -- when the version was first seen live
    next_run_at timestamptz,            -- null: no occurrence left
    PRIMARY KEY (sandbox, journey_id, version)
);
CREATE INDEX read_schedules_due ON read_schedules (next_run_at) WHERE next_run_at IS NOT NULL;

CREATE TABLE audience_reads (
    sandbox text NOT NULL,
    journey_id uuid NOT NULL,
    version integer NOT NULL,
    occurrence timestamptz NOT NULL,
    audience_id text NOT NULL,
    status text NOT NULL CHECK (status IN ('running', 'done', 'cancelled')),
    cursor uuid,                        -- the last member read
    members_read integer NOT NULL DEFAULT 0,
    entered integer NOT NULL DEFAULT 0,
    due_at timestamptz,                 -- when the next chunk may go; null once ended
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (sandbox, journey_id, version, occurrence),
    CHECK ((status = 'running') = (due_at IS NOT NULL))
);
CREATE INDEX audience_reads_due ON audience_reads (due_at) WHERE status = 'running';
