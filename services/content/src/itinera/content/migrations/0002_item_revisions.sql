-- Each write of an item (a draft saved, a version published) bumps its revision: the
-- item's ETag is its latest version and revision, and a write sent with If-Match is
-- refused (412) once another has changed the item since it was read.
ALTER TABLE templates ADD COLUMN revision bigint NOT NULL DEFAULT 1;
ALTER TABLE fragments ADD COLUMN revision bigint NOT NULL DEFAULT 1;
