-- Segment jobs (AEP's batch evaluation): every profile of the sandbox's projection,
-- evaluated against the job's audiences in chunks by profile id. For each chunk a
-- worker takes the job row (FOR NO KEY UPDATE SKIP LOCKED) in the chunk's own
-- transaction and moves the cursor there: a crash loses at most the chunk in flight.
-- The audiences are kept as they were when the job was created (what AEP shows of a
-- job's segments), without a foreign key: deleting one mid-run fails the job instead.

CREATE TABLE segment_jobs (
    sandbox text NOT NULL,
    id uuid NOT NULL,
    status text NOT NULL DEFAULT 'NEW'
        CHECK (status IN ('NEW', 'PROCESSING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    segments jsonb NOT NULL,               -- [{id, expression, mergePolicyId}], as created
    last_profile_id uuid,                  -- the cursor: the last profile evaluated; null: none yet
    profiles_done bigint NOT NULL DEFAULT 0,
    profiles_total bigint,                 -- counted when the job starts
    counters jsonb NOT NULL DEFAULT '{}',  -- audience id -> {realized, existing, exited}
    failures integer NOT NULL DEFAULT 0,   -- failed attempts at the current chunk
    error text,                            -- why it FAILED
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    PRIMARY KEY (sandbox, id)
);
-- The list's default order (newest first), and the queue (oldest first).
CREATE INDEX segment_jobs_by_creation ON segment_jobs (sandbox, created_at DESC, id);
CREATE INDEX segment_jobs_queue ON segment_jobs (created_at, id) WHERE status IN ('NEW', 'PROCESSING');

-- Cancellations asked for: a row of their own, so that asking never waits for the
-- chunk in progress (which holds the job row); the worker ends a job CANCELLED when it
-- next takes it. The foreign key's check takes FOR KEY SHARE, which
-- a worker's FOR NO KEY UPDATE lets through.
CREATE TABLE segment_job_cancellations (
    sandbox text NOT NULL,
    job_id uuid NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, job_id),
    FOREIGN KEY (sandbox, job_id) REFERENCES segment_jobs (sandbox, id) ON DELETE CASCADE
);
