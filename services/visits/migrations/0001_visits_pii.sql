-- Visits service: residents' personal-data keys (PIPL) and the audit log of decrypted reads.

-- One AES-256-GCM key per household.  Erasure sets key = NULL and erased_at (a tombstone, so a
-- later write never re-creates a key for an erased household).
CREATE TABLE IF NOT EXISTS visits_household_keys (
    community     text        NOT NULL,
    household_id  text        NOT NULL,
    key           bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    erased_at     timestamptz,
    PRIMARY KEY (community, household_id),
    CHECK ((key IS NULL) = (erased_at IS NOT NULL))
);

-- Every read of decrypted personal fields by someone other than the owning grid worker.
CREATE TABLE IF NOT EXISTS visits_pii_audit (
    id            bigserial   PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    community     text        NOT NULL,
    household_id  text        NOT NULL,
    actor         text        NOT NULL,
    role          text        NOT NULL,
    fields        text[]      NOT NULL,
    purpose       text        NOT NULL
);
CREATE INDEX IF NOT EXISTS visits_pii_audit_by_community ON visits_pii_audit (community, id DESC);
CREATE INDEX IF NOT EXISTS visits_pii_audit_by_household ON visits_pii_audit (community, household_id, id DESC);
