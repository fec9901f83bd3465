-- Whether a sandbox's allowed list is in force (AJO's "Activate allowed list"): while it
-- is, emails go only to addresses on it or in its domains, and to nobody when it is
-- empty. A sandbox without a row has it off.
CREATE TABLE allowed_lists (
    sandbox text PRIMARY KEY,
    active boolean NOT NULL,
    updated_by text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
