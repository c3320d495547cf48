-- Sandbox-only tables: the users and memberships Supabase and the backend keep elsewhere.
CREATE TABLE IF NOT EXISTS sandbox_users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email text NOT NULL UNIQUE,
    password_hash text NOT NULL
);
CREATE TABLE IF NOT EXISTS agency_members (
    user_id uuid NOT NULL REFERENCES sandbox_users(id),
    agency_id uuid NOT NULL REFERENCES agencies(id),
    role text NOT NULL DEFAULT 'admin',
    PRIMARY KEY (user_id, agency_id)
);
