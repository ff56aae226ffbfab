-- name: CacheInvalidationPublish :one
-- CacheInvalidationPublish sends a payload to every process listening on
-- cache_invalidations and returns how many connections listen there (their last statement
-- is the LISTEN; sessions of other roles may be invisible and are then not counted).
SELECT (
    SELECT count(*) FROM pg_catalog.pg_stat_activity
    WHERE datname = current_database() AND query LIKE 'LISTEN %cache_invalidations%'
)::bigint AS listeners
FROM (SELECT pg_notify('cache_invalidations', @payload::text)) AS notify;
