-- name: CacheInvalidationNotify :exec
-- CacheInvalidationNotify sends a payload to every process listening on cache_invalidations.
SELECT pg_notify('cache_invalidations', @payload::text);

-- name: CacheInvalidationListeners :one
-- CacheInvalidationListeners counts the connections listening on cache_invalidations (their
-- last statement is the LISTEN; sessions of other roles may be invisible and are then not
-- counted).
SELECT count(*)::bigint AS listeners FROM pg_catalog.pg_stat_activity
WHERE datname = current_database() AND query LIKE 'LISTEN %cache_invalidations%';
