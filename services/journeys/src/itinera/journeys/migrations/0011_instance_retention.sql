-- Ended instances (with their steps, waits and calls, by cascade) are deleted
-- ITINERA_JOURNEYS_INSTANCE_RETENTION_DAYS after they ended, oldest first
-- (itinera.journeys.runtime.retention).
CREATE INDEX instances_ended ON instances (ended_at) WHERE status <> 'waiting';
