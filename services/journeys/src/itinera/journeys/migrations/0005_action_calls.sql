-- Custom action calls waiting to be made: an instance pauses at its action node while a
-- worker makes the HTTP call outside any transaction. A worker leases a call
-- (next_attempt_at moved past the call's longest run, FOR UPDATE SKIP LOCKED), calls,
-- then records the outcome and walks the instance on in one transaction; a worker that
-- dies mid-call leaves the lease to expire and the call is made again (calls carry an
-- Idempotency-Key so the endpoint can tell).
CREATE TABLE action_calls (
    sandbox text NOT NULL,
    instance_id uuid NOT NULL,
    node text NOT NULL,
    step integer NOT NULL,              -- the step that started the call
    action_id uuid NOT NULL,
    inputs jsonb NOT NULL DEFAULT '{}',
    leases integer NOT NULL DEFAULT 0,  -- times a worker took it
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, instance_id),
    FOREIGN KEY (sandbox, instance_id) REFERENCES instances (sandbox, id) ON DELETE CASCADE
);
CREATE INDEX action_calls_due ON action_calls (next_attempt_at);
