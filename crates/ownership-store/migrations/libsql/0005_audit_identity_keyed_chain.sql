-- 0005 audit_identity_keyed_chain: every account gets an immutable identity (users.uid,
-- random, assigned at creation) that its audit events record (audit_events.owner_uid), so
-- an account created later under a deleted one's id does not read the deleted one's
-- events. Existing events get the identity of the account that holds their owner id now.
-- audit_events.key_version / audit_head.key_version: the master key version whose chain
-- key keys the link (HMAC); NULL for unkeyed (SHA-256) links, which every earlier row is.

ALTER TABLE users ADD COLUMN uid TEXT;
UPDATE users SET uid = lower(hex(randomblob(16)));
CREATE UNIQUE INDEX users_uid ON users (uid);

ALTER TABLE audit_events ADD COLUMN owner_uid TEXT;
ALTER TABLE audit_events ADD COLUMN key_version INTEGER;
UPDATE audit_events
   SET owner_uid = (SELECT uid FROM users WHERE users.id = audit_events.owner_id)
 WHERE owner_id IS NOT NULL;
CREATE INDEX audit_events_owner_uid_seq ON audit_events (owner_uid, seq);

ALTER TABLE audit_head ADD COLUMN key_version INTEGER;
