-- Operators list and export reservations per merchant and status since a moment: the moment the
-- reservation entered its status (confirmed_at, expired_at, or the last POST/PUT for reserved ones).
-- This index serves `tms-admin reservations export --since` and its order without a sort, so a large
-- export streams its first row at once. The expression must stay identical to the queries in
-- tms_server/reservations_admin.py for the planner to use it.
CREATE INDEX shipments_merchant_status_at ON shipments (
    merchant_id, status,
    (CASE status WHEN 'confirmed' THEN confirmed_at WHEN 'expired' THEN expired_at ELSE updated_at END),
    id
);
