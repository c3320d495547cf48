-- pmsops exporter counts each operation once, when it ends: it reads the logs that became final since its last
-- read by this index (a final log's updated_at is when it ended; nothing updates it afterwards).
CREATE INDEX IF NOT EXISTS channel_sync_logs_finished_idx ON channel_sync_logs (updated_at) WHERE status IN ('success', 'failed', 'cancelled');
