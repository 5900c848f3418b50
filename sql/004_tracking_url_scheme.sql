-- Tracking URLs reach KSS and the shopper's browser: only absolute http(s) URLs. NOT VALID keeps
-- rows stored before this check readable (GET /shipment leaves such URLs out); every new or
-- changed row is checked.
ALTER TABLE tracking ADD CONSTRAINT tracking_url_http
    CHECK (tracking_url IS NULL OR tracking_url ~* '^https?://[^[:space:][:cntrl:]]+$') NOT VALID;
