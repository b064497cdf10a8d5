-- The period closer's own bookkeeping (not a projection table: a replay must not forget it).
-- checked_seq: the projection position at which the closer last found a closed period's current
-- numbers equal to what it closed; the fold's closure.changed_seq moving past it means "look again".
CREATE TABLE IF NOT EXISTS scoring_closer_checks (
    community   text   NOT NULL,
    worker_id   text   NOT NULL,
    period_key  text   NOT NULL,
    checked_seq bigint NOT NULL,
    PRIMARY KEY (community, worker_id, period_key)
);
