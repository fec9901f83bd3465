-- The runtime: an instance is one profile's way through one journey version. Its
-- current node, its context (the entry event, what its steps produced) and its step
-- counter live here; every step is kept (instance_steps) and published on
-- itinera.journey.steps.v1 through the outbox, in the transaction that took it.
CREATE TABLE instances (
    sandbox text NOT NULL,
    id uuid NOT NULL,
    journey_id uuid NOT NULL,
    version integer NOT NULL,
    profile_id uuid NOT NULL,
    status text NOT NULL CHECK (status IN ('waiting', 'completed', 'exited', 'failed')),
    node text,                          -- where it waits; null once ended
    context jsonb NOT NULL DEFAULT '{}',  -- {event, messages: {node: id}}
    steps integer NOT NULL DEFAULT 0,   -- steps taken so far: the next step is steps + 1
    trigger_id text,                    -- what made it enter (event id, record id): entered once
    test_mode boolean NOT NULL DEFAULT false,
    entered_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    ended_at timestamptz,
    end_reason text,
    PRIMARY KEY (sandbox, id),
    CHECK ((status = 'waiting') = (ended_at IS NULL))
);
-- One live instance per profile and journey (whatever its version).
CREATE UNIQUE INDEX instances_one_live ON instances (sandbox, journey_id, profile_id)
    WHERE status = 'waiting';
-- An entry is taken once, however often what caused it is delivered.
CREATE UNIQUE INDEX instances_entered_once ON instances (sandbox, journey_id, trigger_id);
-- Re-entrance: a profile's last entry into a journey.
CREATE INDEX instances_by_profile ON instances (sandbox, profile_id, journey_id, entered_at DESC);
CREATE INDEX instances_of_version ON instances (sandbox, journey_id, version, status);

CREATE TABLE instance_steps (
    sandbox text NOT NULL,
    instance_id uuid NOT NULL,
    step integer NOT NULL,
    kind text NOT NULL CHECK (kind IN ('entered', 'started', 'finished', 'failed', 'exited')),
    node text,
    node_type text,
    reason text,
    detail jsonb NOT NULL DEFAULT '{}',
    at timestamptz NOT NULL,
    PRIMARY KEY (sandbox, instance_id, step),
    FOREIGN KEY (sandbox, instance_id) REFERENCES instances (sandbox, id) ON DELETE CASCADE
);

-- Timers: a wait's end, a wait for an event's timeout, the journey's global timeout.
-- Workers take the due ones with FOR UPDATE SKIP LOCKED, in the transaction that acts
-- on them: any number share the work, and a crashed worker's timers are taken by others.
CREATE TABLE timers (
    sandbox text NOT NULL,
    instance_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('resume', 'timeout')),
    node text,                          -- the node a resume timer resumes
    due_at timestamptz NOT NULL,
    PRIMARY KEY (sandbox, instance_id, kind),
    FOREIGN KEY (sandbox, instance_id) REFERENCES instances (sandbox, id) ON DELETE CASCADE
);
CREATE INDEX timers_due ON timers (due_at);

-- Instances waiting for an event of their profile: an event type and a condition, or a
-- reaction (opened, clicked) to a message they sent.
CREATE TABLE event_waits (
    sandbox text NOT NULL,
    instance_id uuid NOT NULL,
    profile_id uuid NOT NULL,
    node text NOT NULL,
    event_type text,
    condition text,
    message_id text,
    reaction text,
    PRIMARY KEY (sandbox, instance_id),
    FOREIGN KEY (sandbox, instance_id) REFERENCES instances (sandbox, id) ON DELETE CASCADE
);
CREATE INDEX event_waits_by_profile ON event_waits (sandbox, profile_id);

-- Each profile as journeys last saw it (the snapshot of its latest event), for the steps
-- a timer or an audience change runs.
CREATE TABLE profiles (
    sandbox text NOT NULL,
    profile_id uuid NOT NULL,
    attributes jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, profile_id)
);
