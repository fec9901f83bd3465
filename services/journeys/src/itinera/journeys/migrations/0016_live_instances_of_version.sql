-- A version's instances are looked up only while they wait (stopping a version ends
-- them): the index keeps those alone. Over every instance, with the journey leading, it
-- also matched "has this trigger made a profile enter" by its first two columns, and the
-- planner took it for that look-up whenever it knew nothing of the table yet (a new
-- table until its first ANALYZE: it costs a hair less than the unique index on the
-- trigger), reading each of the journey's instances for every entry looked up.
DROP INDEX instances_of_version;
CREATE INDEX instances_of_version ON instances (sandbox, journey_id, version) WHERE status = 'waiting';
