-- The demo's tables. Plain SQL with unqualified names: Atrium runs this file once per schema
-- (schema, database and row tenants alike) with search_path set to the tenant's schema, and
-- for row tenants adds and forces the row-level-security policies itself. Every table has
-- tenant_id, and keys and foreign keys include it, so a row can only ever reference a row of
-- the same tenant.

CREATE TABLE customers (
  tenant_id text NOT NULL,
  id text NOT NULL,
  name text NOT NULL,
  email text NOT NULL,
  segment text NOT NULL CHECK (segment IN ('SMB', 'MID_MARKET', 'ENTERPRISE')),
  country char(2) NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  lifetime_value numeric(14,2) NOT NULL DEFAULT 0 CHECK (lifetime_value >= 0),
  tenure_months int NOT NULL DEFAULT 0 CHECK (tenure_months >= 0),
  monthly_spend numeric(12,2) NOT NULL DEFAULT 0 CHECK (monthly_spend >= 0),
  support_tickets int NOT NULL DEFAULT 0 CHECK (support_tickets >= 0),
  days_since_last_login int NOT NULL DEFAULT 0 CHECK (days_since_last_login >= 0),
  PRIMARY KEY (tenant_id, id)
);

CREATE TABLE orders (
  tenant_id text NOT NULL,
  id text NOT NULL DEFAULT 'ord_' || replace(gen_random_uuid()::text, '-', ''),
  customer_id text NOT NULL,
  amount numeric(12,2) NOT NULL CHECK (amount > 0),
  currency char(3) NOT NULL,
  channel text NOT NULL CHECK (channel IN ('WEB', 'MOBILE', 'STORE', 'PHONE')),
  created_at timestamptz NOT NULL DEFAULT now(),
  item_count int NOT NULL CHECK (item_count BETWEEN 1 AND 1000),
  is_international boolean NOT NULL DEFAULT false,
  payment_attempts int NOT NULL DEFAULT 1 CHECK (payment_attempts BETWEEN 1 AND 100),
  hour_of_day int NOT NULL DEFAULT extract(hour from now() at time zone 'utc')::int
    CHECK (hour_of_day BETWEEN 0 AND 23),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);

CREATE INDEX orders_customer_created_idx ON orders (tenant_id, customer_id, created_at DESC);
