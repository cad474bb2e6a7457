-- 0009 audit_chains: per-owner audit chains. Each event is linked in one chain:
-- audit_events.chain is NULL for the system chain (every event written before this
-- migration, system and user-management events, events of no existing owner) and the
-- owner's account identity (users.uid) for that owner's chain. audit_head keeps the
-- system chain's head; audit_chains keeps each owner chain's head, and anchored_seq the
-- newest of its events an `audit.anchored` event committed into the system chain.
-- audit_events_seq hands out the global event numbers (increasing; a rolled-back
-- transaction leaves a gap).

ALTER TABLE audit_events ADD COLUMN chain TEXT NULL;
CREATE INDEX audit_events_chain_seq_idx ON audit_events (chain, seq);

CREATE TABLE audit_chains (
    chain        TEXT PRIMARY KEY,
    seq          BIGINT NOT NULL,
    hash         BYTEA NOT NULL,
    key_version  INTEGER NULL,
    anchored_seq BIGINT NOT NULL DEFAULT 0
);

CREATE SEQUENCE audit_events_seq;
SELECT setval('audit_events_seq', (SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_events), false);
