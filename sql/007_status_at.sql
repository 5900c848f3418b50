-- When a reservation entered its status (confirmed_at, expired_at, or the last POST/PUT while
-- reserved), computed by the database in one place instead of a CASE expression repeated in every
-- query and kept in step with an expression index by hand.
ALTER TABLE shipments ADD COLUMN status_at timestamptz GENERATED ALWAYS AS (
    CASE status WHEN 'confirmed' THEN confirmed_at WHEN 'expired' THEN expired_at ELSE updated_at END
) STORED;
DROP INDEX IF EXISTS shipments_merchant_status_at;
CREATE INDEX shipments_merchant_status_at ON shipments (merchant_id, status, status_at, id);
