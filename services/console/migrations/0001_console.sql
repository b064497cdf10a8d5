-- Console: signed-in sessions.  State, not a read model: a session is a browser's, not a fact of
-- the domain (sign-ins themselves are events).  Only a digest of the cookie's value is stored, so
-- a copy of this table signs no one in.
CREATE TABLE IF NOT EXISTS console_sessions (
    id_digest     text PRIMARY KEY,
    username      text NOT NULL,
    csrf          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen     timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    must_change   boolean NOT NULL DEFAULT false,
    -- the account as sign-in read it from its events, until the read model has folded it
    display_name  text NOT NULL,
    scope         jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS console_sessions_user ON console_sessions (username);
