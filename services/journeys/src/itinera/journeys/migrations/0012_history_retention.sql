-- Finished campaign executions and audience reads are deleted
-- ITINERA_JOURNEYS_HISTORY_RETENTION_DAYS after they finished, oldest first
-- (itinera.journeys.runtime.retention): one row per unitary call would otherwise grow
-- without end.
CREATE INDEX campaign_executions_finished ON campaign_executions (finished_at) WHERE due_at IS NULL;
CREATE INDEX audience_reads_finished ON audience_reads (finished_at) WHERE status <> 'running';
