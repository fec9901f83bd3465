-- What a provider reported after accepting a message (an SMS's delivered, undelivered or
-- failed): the last final status, on the message.
ALTER TABLE messages
    ADD COLUMN delivery_status text,
    ADD COLUMN delivery_reported_at timestamptz;

-- A delivery report names the provider's id of the message (Twilio's MessageSid).
CREATE INDEX messages_by_sms_sid ON messages (provider_id) WHERE channel = 'sms' AND provider_id IS NOT NULL;

-- Every final report received, once per message and status: a report received again
-- finds its row and changes nothing. One that names a message not yet recorded as sent
-- (the report overtook the provider's answer) waits here, unapplied, until it is.
CREATE TABLE delivery_reports (
    channel text NOT NULL,
    provider_id text NOT NULL,
    status text NOT NULL,
    error_code text,
    received_at timestamptz NOT NULL,
    sandbox text,                        -- the message's, once applied
    message_id uuid,
    applied_at timestamptz,
    PRIMARY KEY (channel, provider_id, status)
);
CREATE INDEX delivery_reports_waiting ON delivery_reports (channel, provider_id) WHERE applied_at IS NULL;

-- Soft bounces of each address still counting towards its suppression: since its last
-- successful delivery and within ITINERA_CHANNELS_SOFT_BOUNCE_PERIOD_S; events as AJO's
-- bounceEvents ({messageId, date, message, bounceType}), oldest first. The row goes when
-- the address is delivered to or suppressed.
CREATE TABLE soft_bounces (
    sandbox text NOT NULL,
    value text NOT NULL,                 -- as on the suppression list
    entity_type text NOT NULL,
    events jsonb NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (sandbox, value)
);
