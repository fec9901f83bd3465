-- How long experience events of a dataset are kept (AEP's per-dataset experience
-- event expiration). Events older than that are not stored, not read, and deleted by
-- the expiry sweep; a dataset without a row keeps its events.
CREATE TABLE event_ttls (
    sandbox text NOT NULL,
    dataset_id text NOT NULL,
    ttl_seconds bigint NOT NULL CHECK (ttl_seconds > 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, dataset_id)
);
-- The sweep deletes a dataset's oldest events first.
CREATE INDEX events_by_dataset_time ON events (sandbox, dataset_id, occurred_at);
