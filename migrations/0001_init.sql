-- Initial schema: stored OAuth authorizations, jobs and their event history.
-- The migration runner wraps this file in a transaction and records it in
-- dc_schema_migrations; it must not contain BEGIN or COMMIT itself.

-- One row per consent a domain owner gave at a DNS provider.
CREATE TABLE dc_authorizations (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    dns_provider           text NOT NULL,            -- [provider.NAME] of the config
    zone                   text NOT NULL,
    hosts                  text[] NOT NULL DEFAULT '{}',  -- consented hosts, '' is the apex
    service_ids            text[] NOT NULL DEFAULT '{}',
    -- Tokens are AES-256-GCM ciphertexts (version, key id, nonce, data, tag).
    access_token           bytea,
    refresh_token          bytea,
    token_key_id           text,                     -- key that encrypted both tokens
    token_type             text NOT NULL DEFAULT 'bearer',
    expires_at             timestamptz,              -- of the access token
    status                 text NOT NULL DEFAULT 'active'
                           CHECK (status IN ('active', 'reauthorization_required', 'revoked')),
    version                bigint NOT NULL DEFAULT 1,  -- bumped on every token change
    -- Refresh lease: only the owner may call the token endpoint until lease_until.
    lease_owner            text,
    lease_until            timestamptz,
    refresh_token_used_at  timestamptz,              -- last use of the refresh token
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX dc_authorizations_provider_zone ON dc_authorizations (dns_provider, zone);
-- Keep-alive scan: active authorizations ordered by the last refresh.
CREATE INDEX dc_authorizations_keepalive ON dc_authorizations (refresh_token_used_at)
    WHERE status = 'active';

-- One row per job; PostgreSQL is the system of record, Redis only transports.
CREATE TABLE dc_jobs (
    id                text PRIMARY KEY,              -- client idempotency key or generated
    type              text NOT NULL
                      CHECK (type IN ('discover', 'exchange_code', 'apply', 'refresh', 'revert')),
    queue             text NOT NULL,
    state             text NOT NULL DEFAULT 'queued'
                      CHECK (state IN ('queued', 'running', 'succeeded', 'conflict',
                                       'reauthorization_required', 'failed', 'dead')),
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    reclaims          integer NOT NULL DEFAULT 0 CHECK (reclaims >= 0),
    max_attempts      integer CHECK (max_attempts BETWEEN 1 AND 100),
    authorization_id  uuid,                          -- no foreign key: a job may name a
                                                     -- missing authorization and fail
    payload           jsonb NOT NULL,                -- the job without secrets
    result            jsonb,
    last_error        text,
    last_http_status  integer,
    -- Claim: the worker process holding the job and until when.
    owner             text,
    lease_until       timestamptz,
    not_before        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz
);

-- Reconciler scan: unfinished jobs that have not moved for a while.
CREATE INDEX dc_jobs_unfinished ON dc_jobs (updated_at) WHERE state IN ('queued', 'running');
CREATE INDEX dc_jobs_authorization ON dc_jobs (authorization_id)
    WHERE authorization_id IS NOT NULL;

-- Append-only history per job: enqueued, started, refreshed, conflict, retried, ...
CREATE TABLE dc_job_events (
    id      bigserial PRIMARY KEY,
    job_id  text NOT NULL REFERENCES dc_jobs (id) ON DELETE CASCADE,
    at      timestamptz NOT NULL DEFAULT now(),
    event   text NOT NULL,
    detail  jsonb
);

CREATE INDEX dc_job_events_job ON dc_job_events (job_id, id);
