-- Notify: the directory, the delivery outbox, acknowledgement watches and the daily digest.
-- These are state, not read models: a replay of the routing projection finds its rows already
-- here (deterministic ids, ON CONFLICT DO NOTHING) and sends nothing twice.

-- Who receives what, per community.  Secrets (webhook HMAC keys, the WeCom robot URL) are sealed
-- with AES-GCM in `sealed`; `hints` keeps only what may be shown (last four characters).
CREATE TABLE IF NOT EXISTS notify_recipients (
    community        text        NOT NULL,
    recipient_id     text        NOT NULL,
    kind             text        NOT NULL,
    name             text        NOT NULL,
    desk             text,
    language         text        NOT NULL DEFAULT 'zh',
    agency           text,
    quiet_hours      jsonb,
    covers           jsonb       NOT NULL DEFAULT '[]',
    channels         jsonb       NOT NULL,   -- public parts: webhook url, email, sms number, which exist
    sealed           bytea,                  -- nonce || AES-GCM(secrets json)
    hints            jsonb       NOT NULL DEFAULT '{}',
    active           boolean     NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (community, recipient_id)
);

-- The outbox: one row per (source event, recipient, channel), worked off by the delivery worker.
-- pending → sending (claimed, leased) → delivered | pending again (backoff) | dead (budget spent).
CREATE TABLE IF NOT EXISTS notify_deliveries (
    notification_id    text        PRIMARY KEY,
    community          text        NOT NULL,
    source_id          text        NOT NULL,    -- causing event id, or the digest id
    source_type        text        NOT NULL,
    source_recorded_at timestamptz,             -- when the causing event was stored (latency)
    correlation_id     uuid,
    subject_ref        text        NOT NULL,    -- issue id or digest id
    kind               text        NOT NULL CHECK (kind IN ('escalation', 'overdue', 'digest')),
    rule               text        NOT NULL,
    recipient_id       text        NOT NULL,
    recipient_kind     text        NOT NULL,
    channel            text        NOT NULL CHECK (channel IN ('webhook', 'wecom', 'email', 'sms')),
    urgent             boolean     NOT NULL DEFAULT false,
    facts              jsonb       NOT NULL,
    ack_id             text,
    state              text        NOT NULL DEFAULT 'pending'
                                   CHECK (state IN ('pending', 'sending', 'delivered', 'dead')),
    due_at             timestamptz NOT NULL DEFAULT now(),
    lease_until        timestamptz,
    claimed_by         text,                    -- the worker holding the lease
    attempts           integer     NOT NULL DEFAULT 0,
    budget_from        integer     NOT NULL DEFAULT 0,  -- attempts before the last manual retry
    version            integer     NOT NULL DEFAULT 0,  -- events appended to this notification
    last_seq           bigint,                          -- stream sequence of its last event
    last_error         text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    delivered_at       timestamptz,
    dead_at            timestamptz
);
CREATE INDEX IF NOT EXISTS notify_deliveries_due ON notify_deliveries (due_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS notify_deliveries_leased ON notify_deliveries (lease_until) WHERE state = 'sending';
CREATE INDEX IF NOT EXISTS notify_deliveries_subject ON notify_deliveries (community, subject_ref);

-- Escalations that must be acknowledged: one watch per (source event, recipient).
CREATE TABLE IF NOT EXISTS notify_acks (
    ack_id           text        PRIMARY KEY,
    community        text        NOT NULL,
    subject_ref      text        NOT NULL,
    source_id        text        NOT NULL,
    correlation_id   uuid,
    recipient_id     text        NOT NULL,
    recipient_kind   text        NOT NULL,
    notification_id  text        NOT NULL,   -- the first channel's notification
    channel          text        NOT NULL,
    starts_at        timestamptz NOT NULL,   -- the deadline counts from here (after quiet hours)
    state            text        NOT NULL DEFAULT 'open'
                                 CHECK (state IN ('open', 'acknowledged', 'unacknowledged', 'moot')),
    version          integer     NOT NULL DEFAULT 0,
    acknowledged_by  text,
    acknowledged_via text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    closed_at        timestamptz
);
CREATE INDEX IF NOT EXISTS notify_acks_open ON notify_acks (starts_at) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS notify_acks_subject ON notify_acks (community, subject_ref);

-- Missed quotas waiting for the secretary's daily digest (digest_id NULL = not yet sent).
CREATE TABLE IF NOT EXISTS notify_digest_lines (
    source_id    text        PRIMARY KEY,
    community    text        NOT NULL,
    worker_id    text        NOT NULL,
    period       text        NOT NULL,
    period_key   text        NOT NULL,
    missed       jsonb       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    digest_id    text
);
CREATE INDEX IF NOT EXISTS notify_digest_lines_open ON notify_digest_lines (community) WHERE digest_id IS NULL;

CREATE TABLE IF NOT EXISTS notify_digests (
    digest_id    text        PRIMARY KEY,
    community    text        NOT NULL,
    day          date        NOT NULL,
    lines        integer     NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Facts no rule or no directory entry could place (a missing police entry is a configuration bug
-- someone must see, not a silent drop).
CREATE TABLE IF NOT EXISTS notify_unrouted (
    source_id    text        PRIMARY KEY,
    community    text        NOT NULL,
    subject_ref  text        NOT NULL,
    reason       text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
