-- Campaigns: one message (a channel's template, a context) to many profiles at once.
-- A scheduled campaign sends to the members of an audience once or on a schedule; an
-- API-triggered one sends when AJO's execution API asks, to the recipients given
-- (unitary) or to an audience. `definition` holds the document as accepted; the columns
-- beside it are what is looked up.
CREATE TABLE campaigns (
    sandbox text NOT NULL,
    id uuid NOT NULL,
    name text NOT NULL,
    type text NOT NULL CHECK (type IN ('api', 'scheduled')),
    status text NOT NULL CHECK (status IN ('draft', 'live', 'stopped', 'completed')),
    definition jsonb NOT NULL,
    next_run_at timestamptz,            -- a live scheduled campaign's next occurrence
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz,
    stopped_at timestamptz,
    PRIMARY KEY (sandbox, id),
    CHECK (next_run_at IS NULL OR status = 'live')
);
CREATE INDEX campaigns_by_update ON campaigns (sandbox, updated_at DESC, id);
-- Occurrences are fired by workers that take the due ones with FOR UPDATE SKIP LOCKED.
CREATE INDEX campaigns_due ON campaigns (next_run_at) WHERE next_run_at IS NOT NULL;

-- An execution: one send of a campaign (a unitary call, an audience call, one occurrence
-- of a scheduled campaign). Audience executions are sent in chunks by profile id: each
-- chunk is one transaction that reads the members after `cursor`, writes their message
-- requests to the outbox and advances `cursor` and `targeted`; `due_at` is when the
-- next chunk may go (the schedule's time, then the pacing of the campaign's rate).
-- Statuses are AJO's: Scheduled (waiting for executeAt), InProgress, Succeeded, Failed.
CREATE TABLE campaign_executions (
    sandbox text NOT NULL,
    id uuid NOT NULL,
    campaign_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('unitary', 'audience', 'scheduled')),
    status text NOT NULL CHECK (status IN ('Scheduled', 'InProgress', 'Succeeded', 'Failed')),
    request_id text,                    -- the caller's requestId: one execution per request
    request_hash text,                  -- what that request asked, to refuse a reused requestId
    audience_id text,
    context jsonb NOT NULL DEFAULT '{}',  -- the call's context, over the campaign's
    execute_at timestamptz NOT NULL,    -- when it was to start (executeAt, the occurrence)
    scheduled boolean NOT NULL DEFAULT false,  -- asked with schedule.executeAt (a scheduleId)
    due_at timestamptz,                 -- when the next chunk may go; null once finished
    cursor uuid,                        -- the last profile id sent to
    targeted integer NOT NULL DEFAULT 0,
    reason text,                        -- why it failed
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    PRIMARY KEY (sandbox, id),
    FOREIGN KEY (sandbox, campaign_id) REFERENCES campaigns (sandbox, id) ON DELETE CASCADE,
    CHECK ((due_at IS NULL) = (status IN ('Succeeded', 'Failed')))
);
CREATE UNIQUE INDEX campaign_executions_request ON campaign_executions (sandbox, campaign_id, request_id)
    WHERE request_id IS NOT NULL;
CREATE INDEX campaign_executions_due ON campaign_executions (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX campaign_executions_of_campaign ON campaign_executions (sandbox, campaign_id, created_at DESC, id);

-- Who is in which audience, as itinera.audiences.v1 announces it (realized: member,
-- exited: not), kept by the campaigns' own consumer. `changed_at` is the evaluation
-- time of the change applied: an older change arriving later is ignored.
CREATE TABLE audience_members (
    sandbox text NOT NULL,
    audience_id text NOT NULL,
    profile_id uuid NOT NULL,
    member boolean NOT NULL,
    changed_at timestamptz NOT NULL,
    PRIMARY KEY (sandbox, audience_id, profile_id)
);
-- Executions read members in profile id order after a cursor.
CREATE INDEX audience_members_current ON audience_members (sandbox, audience_id, profile_id) WHERE member;

-- Unitary recipients are found by identity in the profiles the runtime keeps: their
-- identity maps, lower-cased (namespaces and ids), are searched by containment.
CREATE INDEX profiles_by_identity ON profiles
    USING gin ((lower((attributes -> 'identityMap')::text)::jsonb) jsonb_path_ops);
