-- Token buckets shared by every process of a service (itinera.common.db.rates): each
-- key holds up to its capacity in tokens and gains its rate a second; processes lease
-- tokens in small lots through lease_tokens, which locks the key's row for a moment.
CREATE TABLE rate_buckets (
    key text PRIMARY KEY,
    tokens double precision NOT NULL,
    at timestamptz NOT NULL
);

-- Up to `wanted` whole tokens of bucket `k` (full when first used): how many were
-- granted, and, when none was, how many seconds until one is there.
CREATE FUNCTION lease_tokens(
    k text, rate double precision, capacity double precision, wanted double precision,
    OUT granted double precision, OUT wait_s double precision
) LANGUAGE plpgsql AS $$
DECLARE
    have double precision;
    since timestamptz;
    moment timestamptz;
BEGIN
    INSERT INTO rate_buckets (key, tokens, at) VALUES (k, capacity, clock_timestamp())
    ON CONFLICT (key) DO NOTHING;
    SELECT b.tokens, b.at INTO have, since FROM rate_buckets b WHERE b.key = k FOR UPDATE;
    moment := greatest(clock_timestamp(), since);
    have := least(capacity, have + extract(epoch FROM moment - since)::double precision * rate);
    granted := least(wanted, greatest(0, floor(have)));
    wait_s := CASE WHEN granted > 0 THEN 0 ELSE (1 - have) / rate END;
    UPDATE rate_buckets SET tokens = have - granted, at = moment WHERE key = k;
END $$;
