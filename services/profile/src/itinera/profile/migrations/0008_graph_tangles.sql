-- A resolution in the consumer loads at most a reach limit of identities (10,000). A
-- tangle of stored links larger than that (one device shared by thousands of people)
-- is resolved in part there, which depends on the order records came in; the
-- identities where its reach was cut are noted here, and the rebuild worker resolves
-- the whole tangle from one of them, in one pass, then forgets every note inside it.
CREATE TABLE graph_tangles (
    sandbox text NOT NULL,
    namespace text NOT NULL,
    value text NOT NULL,
    noted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox, namespace, value)
);
CREATE INDEX graph_tangles_by_age ON graph_tangles (noted_at);
