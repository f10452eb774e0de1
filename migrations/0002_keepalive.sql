-- Keep-alive refresh jobs: when the worker last enqueued one for an
-- authorization, so each idle authorization gets one job per period no
-- matter how many workers scan at the same time.
ALTER TABLE dc_authorizations ADD COLUMN keepalive_enqueued_at timestamptz;
