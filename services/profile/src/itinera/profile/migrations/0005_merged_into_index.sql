-- Ids merged earlier into one that is now merged itself are found by merged_into.
CREATE INDEX merged_profiles_by_target ON merged_profiles (sandbox, merged_into);
