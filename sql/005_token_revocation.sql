-- Revocation: a token is refused when it was issued before its merchant's tokens_valid_from
-- (set by `merchant disable` and `merchant revoke-tokens`), or when the merchant key it was obtained
-- with has been retired (tokens carry that key's id). NULL: nothing revoked.
ALTER TABLE merchants ADD COLUMN tokens_valid_from timestamptz;
