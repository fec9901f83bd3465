-- Previews run in the background, as AEP's preview jobs do: a preview is created RUNNING
-- with its rule and the most profiles it may evaluate (beyond, a sample of that many); a
-- worker evaluates it in one snapshot and stores the results with RESULT_READY in the
-- same transaction, or marks it FAILED with the reason after repeated failures. Previews
-- made before were evaluated when they were created.
ALTER TABLE previews
    ADD COLUMN state text NOT NULL DEFAULT 'RESULT_READY'
        CHECK (state IN ('RUNNING', 'RESULT_READY', 'FAILED')),
    ADD COLUMN created_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN max_profiles bigint NOT NULL DEFAULT 0,   -- (0 for those made before: not read)
    ADD COLUMN failures integer NOT NULL DEFAULT 0,     -- failed attempts at evaluating it
    ADD COLUMN error text,                              -- why it FAILED
    ALTER COLUMN profiles_total SET DEFAULT 0,
    ALTER COLUMN profiles_read SET DEFAULT 0,
    ALTER COLUMN profiles_matched SET DEFAULT 0,
    ALTER COLUMN evaluated_at DROP NOT NULL,            -- null until evaluated
    ADD CHECK (state <> 'RESULT_READY' OR evaluated_at IS NOT NULL);
ALTER TABLE previews ALTER COLUMN state DROP DEFAULT, ALTER COLUMN max_profiles DROP DEFAULT;

-- The queue, oldest first.
CREATE INDEX previews_waiting ON previews (created_at, id) WHERE state = 'RUNNING';
