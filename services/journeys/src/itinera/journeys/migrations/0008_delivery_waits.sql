-- Messages whose delivery outcome an instance waits for. A message node with an error
-- branch pauses its instance until the channels report on itinera.feedback.v1 (sent or
-- delivered: the path goes on; failed, bounced, excluded: the error branch), or until its
-- resume timer (in timers, the node's timeout) takes the error branch. Feedback finds the
-- instance and the step by the message id. A row stays once decided, with the outcome and
-- the feedback record (ce_id) that decided it: that record delivered again, a later
-- outcome of the same message, or one that comes after the timeout, changes nothing.
CREATE TABLE delivery_waits (
    sandbox text NOT NULL,
    message_id uuid NOT NULL,
    instance_id uuid NOT NULL,
    node text NOT NULL,
    step integer NOT NULL,              -- the step that requested the message
    created_at timestamptz NOT NULL,
    status text CHECK (status IN ('sent', 'delivered', 'bounced', 'failed', 'excluded', 'timeout')),
                                        -- null: still waiting
    reason text,                        -- why it was not delivered, as the channels said
    ce_id text,                         -- the feedback record that decided it
    decided_at timestamptz,
    PRIMARY KEY (sandbox, message_id),
    FOREIGN KEY (sandbox, instance_id) REFERENCES instances (sandbox, id) ON DELETE CASCADE
);
-- An instance's open wait, closed when its timer fires.
CREATE INDEX delivery_waits_open ON delivery_waits (sandbox, instance_id) WHERE status IS NULL;
