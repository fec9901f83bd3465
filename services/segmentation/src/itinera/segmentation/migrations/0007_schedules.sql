-- Why a segment job runs: asked for over the API, a definition saved (its rule is
-- re-evaluated over every profile, with the audiences that name it), or a schedule.
ALTER TABLE segment_jobs
    ADD COLUMN trigger text NOT NULL DEFAULT 'requested'
        CHECK (trigger IN ('requested', 'saved', 'scheduled')),
    ADD COLUMN schedule_id uuid;

-- AEP's schedules (/config/schedules): a daily batch evaluation of some audiences, or
-- of every audience evaluated in batch ("*"). A worker takes the due ones
-- (FOR UPDATE SKIP LOCKED), creates their job and moves next_run_at to the next
-- occurrence, in one transaction: a schedule fires once per occurrence, whatever the
-- number of workers.
CREATE TABLE segment_schedules (
    sandbox text NOT NULL,
    id uuid NOT NULL,
    name text NOT NULL,
    type text NOT NULL CHECK (type = 'batch_segmentation'),
    segments text[] NOT NULL,              -- definition ids, or {"*"}
    schedule text NOT NULL,                -- the cron expression as given (Quartz's fields)
    state text NOT NULL CHECK (state IN ('active', 'inactive')),
    next_run_at timestamptz NOT NULL,      -- the next occurrence; only active ones fire
    last_run_at timestamptz,
    last_job_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, id)
);
CREATE INDEX segment_schedules_by_creation ON segment_schedules (sandbox, created_at, id);
CREATE INDEX segment_schedules_due ON segment_schedules (next_run_at) WHERE state = 'active';
