-- Household keys stored only wrapped by a key-encryption key (KEK) that never enters PostgreSQL
-- (services/visits/keywrap.py).  A dump, a replica or a database credential then yields nothing
-- that opens a resident's sealed fields.
--
-- SQL cannot wrap (the KEK is not in the database, by design): the visits service wraps every key
-- still in the plain column when it starts (services/visits/pii.py, wrap_plain_keys), before it
-- answers, and empties that column.  From this migration on nothing may write a plain key again:
-- the NOT VALID check holds every insert and update, while rows written before it wait for the
-- start-up wrap.  An old visits process still running during an upgrade can no longer create keys
-- (it fails loudly rather than storing a plain one); compose recreates it right after `migrate`.
ALTER TABLE visits_household_keys
    ADD COLUMN IF NOT EXISTS wrapped_key bytea,
    ADD COLUMN IF NOT EXISTS kek_id      text;

-- The old rule ((key IS NULL) = (erased_at IS NOT NULL)) no longer holds: a wrapped row's plain key is NULL.
ALTER TABLE visits_household_keys DROP CONSTRAINT IF EXISTS visits_household_keys_check;
ALTER TABLE visits_household_keys
    ADD CONSTRAINT visits_household_keys_wrapped_with_kek_id CHECK ((wrapped_key IS NULL) = (kek_id IS NULL)),
    ADD CONSTRAINT visits_household_keys_erased_hold_nothing
        CHECK (erased_at IS NULL OR (wrapped_key IS NULL AND key IS NULL)),
    ADD CONSTRAINT visits_household_keys_live_hold_a_key
        CHECK (erased_at IS NOT NULL OR wrapped_key IS NOT NULL OR key IS NOT NULL),
    ADD CONSTRAINT visits_household_keys_no_plain_key CHECK (key IS NULL) NOT VALID;

-- The start-up wrap and `gridwork keys rewrap` find what is left to do without reading every row.
CREATE INDEX IF NOT EXISTS visits_household_keys_plain ON visits_household_keys (community, household_id)
    WHERE key IS NOT NULL;
CREATE INDEX IF NOT EXISTS visits_household_keys_by_kek ON visits_household_keys (kek_id)
    WHERE kek_id IS NOT NULL;
