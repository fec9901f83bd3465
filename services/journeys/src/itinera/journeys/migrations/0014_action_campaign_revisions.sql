-- A custom action's and a campaign's revision, their ETag: bumped by each write of an
-- editor (an action replaced; a campaign replaced, activated, stopped, or completed),
-- not by a scheduled occurrence firing.
ALTER TABLE actions ADD COLUMN revision bigint NOT NULL DEFAULT 1;
ALTER TABLE campaigns ADD COLUMN revision bigint NOT NULL DEFAULT 1;
