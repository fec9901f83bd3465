-- A preview's qualifying profiles counted by the identity namespaces in their
-- identityMap ({"Email": 12, "ECID": 30}): the estimate's namespace distribution.
ALTER TABLE previews ADD COLUMN namespace_counts jsonb NOT NULL DEFAULT '{}';
