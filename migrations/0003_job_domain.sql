-- The domain a job acts on, so `dcctl jobs --domain` finds every type:
-- discover and exchange_code take it from the job, apply, revert and
-- refresh from their authorization's zone (with the apply host in front).
ALTER TABLE dc_jobs ADD COLUMN domain text;

UPDATE dc_jobs SET domain = lower(payload->>'domain')
    WHERE domain IS NULL AND payload ? 'domain';

CREATE INDEX dc_jobs_domain ON dc_jobs (domain) WHERE domain IS NOT NULL;
-- Reconciler scan: queued jobs by due time.
CREATE INDEX dc_jobs_queued_due ON dc_jobs (not_before) WHERE state = 'queued';
