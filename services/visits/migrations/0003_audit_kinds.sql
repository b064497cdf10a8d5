-- The audit log says what kind of access each row records, so the console's audit page can list
-- reveals, erasures, imports and exports apart: `reveal` (a secretary or street admin opened a
-- household's personal fields), `export` (the ledger export decrypted them), `import` (a ledger
-- sheet wrote them), `erasure` (the household key was destroyed).  Rows written before this
-- migration are classified from their purpose.
ALTER TABLE visits_pii_audit ADD COLUMN IF NOT EXISTS kind text;
UPDATE visits_pii_audit SET kind = CASE purpose
    WHEN 'household_view' THEN 'reveal'
    WHEN 'ledger_export' THEN 'export'
    WHEN 'ledger_import' THEN 'import'
    WHEN 'erasure' THEN 'erasure'
    ELSE 'reveal' END
WHERE kind IS NULL;
ALTER TABLE visits_pii_audit ALTER COLUMN kind SET NOT NULL;
ALTER TABLE visits_pii_audit DROP CONSTRAINT IF EXISTS visits_pii_audit_kind;
ALTER TABLE visits_pii_audit ADD CONSTRAINT visits_pii_audit_kind CHECK (kind IN ('reveal', 'export', 'import', 'erasure'));
CREATE INDEX IF NOT EXISTS visits_pii_audit_by_kind ON visits_pii_audit (community, kind, id DESC);
-- No default: a visits process from before this migration, still running during an upgrade,
-- fails its audited reads (and so reveals nothing) rather than writing a row of no kind.
