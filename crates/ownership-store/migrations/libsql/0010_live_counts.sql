-- 0010 live_counts: an owner's live tokens and live resource credentials counted from an
-- index alone. The quota check of every mint counted the owner's rows through an index
-- on owner_id and read each row for its revocation and expiry, revoked rows included, so
-- it cost more with every token the owner ever had (an owner who rotates hourly keeps
-- 8,760 revoked tokens a year). These indexes hold those times beside the owner: the
-- count reads the owner's unrevoked (or not yet revoked) entries and never the table.
-- They also serve everything the owner_id indexes did (their first column).
CREATE INDEX tokens_owner_live ON tokens (owner_id, revoked_at, expires_at);
DROP INDEX tokens_owner_id;
CREATE INDEX resources_owner_live ON resources (owner_id, revoked_at);
DROP INDEX resources_owner_id;
