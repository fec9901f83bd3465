-- Each write of a journey (a draft saved, a version published, stopped or closed) bumps
-- its revision, the journey's ETag: a write sent with If-Match is refused (412) once
-- another has changed the journey since it was read.
ALTER TABLE journeys ADD COLUMN revision bigint NOT NULL DEFAULT 1;
