-- 0009 audit_chains: per-owner audit chains. Each event is linked in one chain:
-- audit_events.chain is NULL for the system chain (every event written before this
-- migration, system and user-management events, events of no existing owner) and the
-- owner's account identity (users.uid) for that owner's chain. audit_head keeps the
-- system chain's head; audit_chains keeps each owner chain's head, and anchored_seq the
-- newest of its events an `audit.anchored` event committed into the system chain.

ALTER TABLE audit_events ADD COLUMN chain TEXT;
CREATE INDEX audit_events_chain_seq ON audit_events (chain, seq);

CREATE TABLE audit_chains (
    chain        TEXT    NOT NULL PRIMARY KEY,
    seq          INTEGER NOT NULL,
    hash         BLOB    NOT NULL,
    key_version  INTEGER,
    anchored_seq INTEGER NOT NULL DEFAULT 0
) STRICT;
