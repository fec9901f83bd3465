-- An instance's steps, one row per pass that took some (an entry, a fired timer, an
-- event received, a call answered): a pass takes several steps of one instance at once
-- (entered, started, finished...), and one row holding them all costs about a sixth of
-- a row each (a heap tuple, a primary key entry and a foreign key check per row). Each
-- step is {s: number, k: kind, n: node, t: node type, r: reason, d: detail, a: at}.
CREATE TABLE instance_step_runs (
    sandbox text NOT NULL,
    instance_id uuid NOT NULL,
    first_step integer NOT NULL,
    steps jsonb NOT NULL,
    PRIMARY KEY (sandbox, instance_id, first_step),
    FOREIGN KEY (sandbox, instance_id) REFERENCES instances (sandbox, id) ON DELETE CASCADE
);

INSERT INTO instance_step_runs (sandbox, instance_id, first_step, steps)
SELECT sandbox, instance_id, step,
       jsonb_build_array(jsonb_build_object(
           's', step, 'k', kind, 'n', node, 't', node_type, 'r', reason, 'd', detail, 'a', at))
  FROM instance_steps;

DROP TABLE instance_steps;
