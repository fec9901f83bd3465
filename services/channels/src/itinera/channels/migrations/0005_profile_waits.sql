-- Message requests with an empty profile snapshot whose profile the profile service could
-- not give (out of reach, a 5xx, a refused credential): nothing is decided for them until
-- it answers. Each is asked for again at next_attempt_at, the wait doubling each time;
-- once the profile service answers, the request is decided as if it had just been
-- consumed, and its row goes in that transaction.
CREATE TABLE profile_waits (
    sandbox text NOT NULL,
    message_id uuid NOT NULL,
    profile_id uuid NOT NULL,
    request jsonb NOT NULL,              -- the message request as it came
    parked_at timestamptz NOT NULL,
    attempts integer NOT NULL DEFAULT 0, -- times the profile service was asked again
    next_attempt_at timestamptz NOT NULL,
    error text,                          -- why the profile service gave no answer, last time
    PRIMARY KEY (sandbox, message_id)
);
CREATE INDEX profile_waits_due ON profile_waits (next_attempt_at);
