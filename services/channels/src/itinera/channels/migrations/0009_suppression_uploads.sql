-- Uploads of suppression list entries (AJO's /config/suppression/uploads): a CSV file
-- read into the list, and what became of it: how many records it had, how many were
-- taken, and each record refused with why (failed_records, the first 10,000).
CREATE TABLE suppression_uploads (
    sandbox text NOT NULL,
    job_id uuid NOT NULL,
    list_type text NOT NULL CHECK (list_type IN ('client', 'allowed')),
    uploaded_by text,
    filename text,
    status text NOT NULL CHECK (status IN ('ACCEPTED', 'PENDING', 'COMPLETE', 'CANCELED')),
    response_code integer NOT NULL,
    response_text text,
    record_count integer NOT NULL DEFAULT 0,
    handled_count integer NOT NULL DEFAULT 0,
    failed_count integer NOT NULL DEFAULT 0,
    failed_records jsonb NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL DEFAULT now(),
    ended_at timestamptz,
    PRIMARY KEY (sandbox, job_id)
);
CREATE INDEX suppression_uploads_created ON suppression_uploads (sandbox, created_at, job_id);
