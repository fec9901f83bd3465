-- Outbox records the broker refuses for good (too large, invalid topic...): moved
-- here with the error so they stop blocking the records behind them, and kept for
-- an operator to inspect or replay.
CREATE TABLE outbox_failed (
    id bigint PRIMARY KEY,
    topic text NOT NULL,
    key bytea,
    value bytea NOT NULL,
    headers jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now(),
    error text NOT NULL
);
