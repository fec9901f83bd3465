-- A segment job keeps, with each audience it evaluates, the audience's name when the job
-- was created: the job's snapshot of that audience is named after it (AEP's
-- `snapshot.name` filter on the list of jobs). Jobs created before are given the names
-- their audiences have now, where those still exist.
UPDATE segment_jobs j
   SET segments = (
       SELECT jsonb_agg(
                  CASE WHEN d.name IS NULL THEN s.segment
                       ELSE s.segment || jsonb_build_object('name', d.name) END
                  ORDER BY s.position)
         FROM jsonb_array_elements(j.segments) WITH ORDINALITY AS s(segment, position)
         LEFT JOIN segment_definitions d
                ON d.sandbox = j.sandbox AND d.id::text = s.segment ->> 'id')
 WHERE jsonb_array_length(j.segments) > 0;
