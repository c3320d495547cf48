-- The channel-manager slice the sync tasks read and write (contract: channel-manager-api.md).
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE IF NOT EXISTS agencies (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS properties (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agency_id uuid NOT NULL REFERENCES agencies(id),
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS channel_connections (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agency_id uuid NOT NULL,
    property_id uuid NULL REFERENCES properties(id),
    platform_type text NOT NULL CHECK (platform_type IN ('airbnb', 'booking_com', 'expedia', 'fewo_direkt', 'google')),
    platform_listing_id text NOT NULL,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'paused', 'disabled', 'error')),
    platform_metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    access_token_encrypted text,
    refresh_token_encrypted text,
    last_sync_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE INDEX IF NOT EXISTS channel_connections_agency_idx ON channel_connections (agency_id) WHERE deleted_at IS NULL;

CREATE TABLE IF NOT EXISTS channel_sync_logs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NULL,
    connection_id uuid NOT NULL REFERENCES channel_connections(id),
    operation_type text NOT NULL CHECK (operation_type IN ('full_sync', 'availability_update', 'pricing_update', 'bookings_import', 'bookings_sync')),
    direction text NOT NULL DEFAULT 'outbound' CHECK (direction IN ('outbound', 'inbound')),
    status text NOT NULL CHECK (status IN ('triggered', 'queued', 'running', 'success', 'failed', 'cancelled')),
    details jsonb NOT NULL DEFAULT '{}'::jsonb,
    error text,
    task_id text,
    batch_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS channel_sync_logs_connection_created_idx ON channel_sync_logs (connection_id, created_at DESC);
CREATE INDEX IF NOT EXISTS channel_sync_logs_task_idx ON channel_sync_logs (task_id);
CREATE INDEX IF NOT EXISTS channel_sync_logs_status_created_idx ON channel_sync_logs (status, created_at DESC);

CREATE TABLE IF NOT EXISTS bookings (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    property_id uuid NOT NULL REFERENCES properties(id),
    platform text,
    external_id text,
    guest_name text,
    check_in date NOT NULL,
    check_out date NOT NULL,
    status text NOT NULL DEFAULT 'confirmed' CHECK (status IN ('confirmed', 'tentative', 'cancelled', 'conflict')),
    stay daterange GENERATED ALWAYS AS (daterange(check_in, check_out, '[)')) STORED,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT bookings_dates_ck CHECK (check_out > check_in),
    CONSTRAINT bookings_platform_external_uq UNIQUE (platform, external_id),
    CONSTRAINT bookings_no_double_booking EXCLUDE USING gist (property_id WITH =, stay WITH &&) WHERE (status = 'confirmed')
);

CREATE TABLE IF NOT EXISTS nightly_rates (
    property_id uuid NOT NULL REFERENCES properties(id),
    night date NOT NULL,
    price numeric(10, 2) NOT NULL CHECK (price >= 0),
    currency char(3) NOT NULL DEFAULT 'EUR',
    min_stay integer CHECK (min_stay IS NULL OR min_stay > 0),
    max_stay integer CHECK (max_stay IS NULL OR max_stay > 0),
    PRIMARY KEY (property_id, night)
);
