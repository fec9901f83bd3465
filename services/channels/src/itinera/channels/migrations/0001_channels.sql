-- The template store: the latest version of each published template and fragment,
-- as itinera.content.v1 carries them. A deletion keeps its row (deleted, with its
-- version) so that an older version delivered late cannot bring the item back.
CREATE TABLE content_items (
    sandbox text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('template', 'fragment')),
    id text NOT NULL,
    version integer NOT NULL,
    deleted boolean NOT NULL DEFAULT false,
    channel text,
    default_locale text,
    variants jsonb NOT NULL DEFAULT '{}',
    fragments text[] NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, kind, id)
);

-- Every message request taken, keyed by its message id (the idempotency key): a
-- request delivered again finds its row and changes nothing.
--   excluded: not sent (reason); rendered: waiting to be sent at next_attempt_at
--   (new, queued by quiet hours, or waiting for a retry); sending: claimed by a
--   worker until lease_until; sent; failed (reason).
CREATE TABLE messages (
    sandbox text NOT NULL,
    message_id uuid NOT NULL,
    profile_id uuid NOT NULL,
    channel text NOT NULL CHECK (channel IN ('email', 'sms', 'push', 'webhook')),
    category text NOT NULL CHECK (category IN ('marketing', 'transactional')),
    template_id text,
    template_version integer,
    locale text,
    state text NOT NULL CHECK (state IN ('excluded', 'rendered', 'sending', 'sent', 'failed')),
    reason text,                         -- excluded, failed: why (the feedback reason)
    detail text,                         -- what exactly (a render problem, a provider answer)
    address text,
    content jsonb,                       -- the rendered parts
    origin jsonb NOT NULL DEFAULT '{}',
    requested_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz,         -- rendered: when it may be sent
    queued_until timestamptz,            -- set when quiet hours held it back
    lease_until timestamptz,             -- sending: when another worker may take it
    attempts integer NOT NULL DEFAULT 0,
    sent_at timestamptz,
    provider_id text,                    -- the provider's id of the sent message
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, message_id)
);
CREATE INDEX messages_due ON messages (next_attempt_at) WHERE state = 'rendered';
CREATE INDEX messages_leased ON messages (lease_until) WHERE state = 'sending';
-- Frequency caps count a profile's messages of a period.
CREATE INDEX messages_by_profile ON messages (sandbox, profile_id, created_at)
    WHERE state IN ('rendered', 'sending', 'sent');

-- Frequency capping rules: at most max_count messages per period per profile, on one
-- channel or on all.
CREATE TABLE capping_rules (
    sandbox text NOT NULL,
    id uuid NOT NULL,
    name text NOT NULL,
    channel text NOT NULL CHECK (channel IN ('all', 'email', 'sms', 'push', 'webhook')),
    max_count integer NOT NULL CHECK (max_count >= 0),
    period text NOT NULL CHECK (period IN ('day', 'week', 'month')),
    category text NOT NULL CHECK (category IN ('marketing', 'all')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, id)
);

-- Quiet hours: from start to end (local time of the profile) on the given days,
-- messages of the channel are queued until the end, or discarded.
CREATE TABLE quiet_hours (
    sandbox text NOT NULL,
    id uuid NOT NULL,
    name text NOT NULL,
    channel text NOT NULL CHECK (channel IN ('all', 'email', 'sms', 'push', 'webhook')),
    start_time time NOT NULL,
    end_time time NOT NULL,
    days smallint[] NOT NULL,            -- ISO weekdays, 1 (Monday) to 7, the window starts on
    action text NOT NULL CHECK (action IN ('queue', 'discard')),
    category text NOT NULL CHECK (category IN ('marketing', 'all')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, id)
);

-- The suppression list (AJO's), of addresses (email addresses, phone numbers, push
-- tokens) and of email domains; list_type client (suppressed) or allowed.
CREATE TABLE suppressed_addresses (
    sandbox text NOT NULL,
    value text NOT NULL,                 -- lower-cased email, phone number, token
    id uuid NOT NULL,
    entity_type text NOT NULL,           -- email, phone, pushToken
    list_type text NOT NULL CHECK (list_type IN ('client', 'allowed')),
    reason text NOT NULL CHECK (reason IN ('manual', 'hard', 'soft', 'complaint', 'unsubscribe')),
    suppressed_by text,
    comment text,
    soft_count integer NOT NULL DEFAULT 0,
    bounce_events jsonb NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, list_type, value)
);
CREATE INDEX suppressed_addresses_created ON suppressed_addresses (sandbox, list_type, created_at, value);

CREATE TABLE suppressed_domains (
    sandbox text NOT NULL,
    value text NOT NULL,                 -- lower-cased domain
    id uuid NOT NULL,
    list_type text NOT NULL CHECK (list_type IN ('client', 'allowed')),
    reason text NOT NULL CHECK (reason IN ('manual', 'hard', 'soft', 'complaint', 'unsubscribe')),
    suppressed_by text,
    comment text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, list_type, value)
);
CREATE INDEX suppressed_domains_created ON suppressed_domains (sandbox, list_type, created_at, value);
