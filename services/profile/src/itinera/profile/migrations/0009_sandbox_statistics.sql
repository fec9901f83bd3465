-- Look-ups by key stay look-ups by key for a sandbox the statistics do not know yet.
--
-- Statistics of the sandbox column list the sandboxes seen at the last ANALYZE; a newer
-- one is then estimated at a row or two, and the planner reads "every row of the
-- sandbox" through any index led by the sandbox as cheaply as the one row it wants:
-- it took the primary key of members, narrowed by sandbox alone, for the look-up of a
-- profile's members (every member of the sandbox read for each profile of a batch),
-- and the by-profile index, led by the sandbox, for the look-up of one identity.
-- Without statistics on the column, equality on it is estimated at 0.5% of a table,
-- never under a look-up by key.
-- Statistics already taken are dropped (ANALYZE leaves them when it stops taking them).
ALTER TABLE identities ALTER COLUMN sandbox SET STATISTICS 0;
ALTER TABLE links ALTER COLUMN sandbox SET STATISTICS 0;
ALTER TABLE members ALTER COLUMN sandbox SET STATISTICS 0;
ALTER TABLE evictions ALTER COLUMN sandbox SET STATISTICS 0;
ALTER TABLE link_decisions ALTER COLUMN sandbox SET STATISTICS 0;
ALTER TABLE fragments ALTER COLUMN sandbox SET STATISTICS 0;
ALTER TABLE events ALTER COLUMN sandbox SET STATISTICS 0;
ALTER TABLE profile_views ALTER COLUMN sandbox SET STATISTICS 0;
SELECT pg_clear_attribute_stats(current_schema(), t, 'sandbox', false)
  FROM unnest(ARRAY['identities', 'links', 'members', 'evictions', 'link_decisions', 'fragments', 'events', 'profile_views']) AS t;
