-- A later change to existing tenants: applied once per schema, after 0001.
ALTER TABLE accounts ADD COLUMN region text;
