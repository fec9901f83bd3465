-- Audience sizes kept as counters, so that listing audiences (and sorting them by size)
-- does not count memberships. Every statement that writes memberships adds, in its own
-- transaction, one row per audience it changed: the change of each status's count.
-- Writers only ever insert rows, so transactions that change the same audience never
-- wait for each other (nor deadlock) over a counter; an audience's counts are the sums
-- of its rows, which a worker folds into one row from time to time.
--
-- Triggers keep the rows from what each statement actually wrote (the rows' statuses
-- before and after), whichever code writes memberships: streaming evaluation, segment
-- jobs, scheduled re-evaluation, the exits of merged and deleted profiles.

-- Writers wait from here to the end of the migration: the counts backfilled below are
-- those of every membership, and the triggers count every change after them.
LOCK TABLE memberships IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE audience_sizes (
    sandbox text NOT NULL,
    audience_id uuid NOT NULL,
    realized bigint NOT NULL,
    existing bigint NOT NULL,
    exited bigint NOT NULL,
    FOREIGN KEY (sandbox, audience_id) REFERENCES segment_definitions (sandbox, id) ON DELETE CASCADE
);
CREATE INDEX audience_sizes_by_audience ON audience_sizes (sandbox, audience_id);

-- A trigger with transition tables fires on one event only: one function for each. Each
-- works in the schema it was created in, whatever the writer's search_path.
CREATE FUNCTION count_inserted_memberships() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO audience_sizes (sandbox, audience_id, realized, existing, exited)
    SELECT sandbox, audience_id, count(*) FILTER (WHERE status = 'realized'),
           count(*) FILTER (WHERE status = 'existing'), count(*) FILTER (WHERE status = 'exited')
      FROM added
     GROUP BY sandbox, audience_id;
    RETURN NULL;
END
$$;

CREATE FUNCTION count_updated_memberships() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO audience_sizes (sandbox, audience_id, realized, existing, exited)
    SELECT sandbox, audience_id, sum(realized), sum(existing), sum(exited)
      FROM (
          SELECT sandbox, audience_id, (status = 'realized')::int AS realized,
                 (status = 'existing')::int AS existing, (status = 'exited')::int AS exited
            FROM added
          UNION ALL
          SELECT sandbox, audience_id, -(status = 'realized')::int, -(status = 'existing')::int,
                 -(status = 'exited')::int
            FROM removed
      ) changed
     GROUP BY sandbox, audience_id
    HAVING sum(realized) <> 0 OR sum(existing) <> 0 OR sum(exited) <> 0;
    RETURN NULL;
END
$$;

-- Memberships are deleted with their audience, whose counters go with it too: only the
-- memberships of audiences that remain are counted out.
CREATE FUNCTION count_deleted_memberships() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO audience_sizes (sandbox, audience_id, realized, existing, exited)
    SELECT r.sandbox, r.audience_id, -count(*) FILTER (WHERE r.status = 'realized'),
           -count(*) FILTER (WHERE r.status = 'existing'), -count(*) FILTER (WHERE r.status = 'exited')
      FROM removed r
     WHERE EXISTS (SELECT 1 FROM segment_definitions d WHERE d.sandbox = r.sandbox AND d.id = r.audience_id)
     GROUP BY r.sandbox, r.audience_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER memberships_inserted AFTER INSERT ON memberships
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION count_inserted_memberships();
CREATE TRIGGER memberships_updated AFTER UPDATE ON memberships
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION count_updated_memberships();
CREATE TRIGGER memberships_deleted AFTER DELETE ON memberships
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION count_deleted_memberships();

-- The memberships recorded so far.
INSERT INTO audience_sizes (sandbox, audience_id, realized, existing, exited)
SELECT sandbox, audience_id, count(*) FILTER (WHERE status = 'realized'),
       count(*) FILTER (WHERE status = 'existing'), count(*) FILTER (WHERE status = 'exited')
  FROM memberships
 GROUP BY sandbox, audience_id;
