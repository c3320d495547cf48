-- Sync state has one home: the log row. Claims, leases and the retry budget (docs/guarantees.md).
--   attempt      claims so far: a message carries the attempt it may claim, so only one delivery of it runs
--   lease_owner  the worker running the attempt; NULL when none is (waiting, queued, final)
--   due_at       when the sweeper takes the operation if nothing has moved it: the lease's end while an attempt
--                runs, the retry's countdown plus a grace while it waits, the trigger plus a grace while queued
--   resends      how often the sweeper sent it again; lost_attempts: attempts whose lease ran out (a worker died)
--   errors, waits, wait_since   the retry budget: error retries spent, waits taken, when the waiting began
ALTER TABLE channel_sync_logs ADD COLUMN IF NOT EXISTS attempt integer NOT NULL DEFAULT 0;
ALTER TABLE channel_sync_logs ADD COLUMN IF NOT EXISTS lease_owner text;
ALTER TABLE channel_sync_logs ADD COLUMN IF NOT EXISTS due_at timestamptz NOT NULL DEFAULT now() + interval '60 seconds';
ALTER TABLE channel_sync_logs ADD COLUMN IF NOT EXISTS resends integer NOT NULL DEFAULT 0;
ALTER TABLE channel_sync_logs ADD COLUMN IF NOT EXISTS lost_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE channel_sync_logs ADD COLUMN IF NOT EXISTS errors integer NOT NULL DEFAULT 0;
ALTER TABLE channel_sync_logs ADD COLUMN IF NOT EXISTS waits integer NOT NULL DEFAULT 0;
ALTER TABLE channel_sync_logs ADD COLUMN IF NOT EXISTS wait_since timestamptz;
-- operations that workers from before leases are running when this migration lands: held by them (no claim can
-- take them) until their visibility timeout would have put their messages back, then due as any other
UPDATE channel_sync_logs SET lease_owner = 'before-leases', due_at = now() + interval '15 minutes' WHERE status = 'running';
-- the sweeper's one statement reads open operations by deadline, not oldest-first with a limit
CREATE INDEX IF NOT EXISTS channel_sync_logs_due_idx ON channel_sync_logs (due_at) WHERE status IN ('triggered', 'queued', 'running');
