-- Tables the shared runtime needs.

-- Poison messages a projection gave up on (the message itself is kept in the dead-letter stream).
CREATE TABLE IF NOT EXISTS dead_letters (
    projection   text        NOT NULL,
    stream_seq   bigint      NOT NULL,
    subject      text        NOT NULL,
    event_type   text        NOT NULL,
    reason       text        NOT NULL,
    deliveries   integer     NOT NULL,
    dead_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, stream_seq)
);

-- Idempotency keys of HTTP writes: the same key always returns the first answer.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope        text        NOT NULL,
    key          text        NOT NULL,
    status_code  integer     NOT NULL,
    response     jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
