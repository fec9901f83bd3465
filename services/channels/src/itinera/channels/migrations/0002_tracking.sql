-- The links of each email, recorded when its HTML is rendered: a click token names the
-- message and a link's index, and the redirect goes to the URL found here, so it can
-- only lead where the message itself linked (no open redirect, even with the key).
CREATE TABLE message_links (
    sandbox text NOT NULL,
    message_id uuid NOT NULL,
    link_index integer NOT NULL CHECK (link_index >= 0),
    url text NOT NULL,
    clicks integer NOT NULL DEFAULT 0,
    last_clicked_at timestamptz,
    PRIMARY KEY (sandbox, message_id, link_index),
    FOREIGN KEY (sandbox, message_id) REFERENCES messages (sandbox, message_id) ON DELETE CASCADE
);

-- Opens of each email (its pixel fetched): the first one is reported as opened feedback,
-- later ones are only counted.
CREATE TABLE message_opens (
    sandbox text NOT NULL,
    message_id uuid NOT NULL,
    first_at timestamptz NOT NULL,
    last_at timestamptz NOT NULL,
    opens integer NOT NULL DEFAULT 1,
    PRIMARY KEY (sandbox, message_id),
    FOREIGN KEY (sandbox, message_id) REFERENCES messages (sandbox, message_id) ON DELETE CASCADE
);
