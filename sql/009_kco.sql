-- Kustom/Klarna Checkout callbacks: a secret per merchant in the callback URLs (tms-admin merchant
-- kco-urls). The secret is kept to print the URLs again; lookups go by its SHA-256 digest and the
-- secret is then compared in constant time.
ALTER TABLE merchants ADD COLUMN kco_secret text CHECK (length(kco_secret) BETWEEN 32 AND 100);
ALTER TABLE merchants ADD COLUMN kco_secret_hash bytea UNIQUE;
