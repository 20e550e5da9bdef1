-- The outbox: sign-in emails waiting to be delivered, and their delivery state.
--
-- A pending row holds its link sealed (XChaCha20-Poly1305 under a key derived from the server
-- secret, bound to link_token_hash); the CHECK below makes the database itself refuse to keep a
-- body once a row is no longer pending. Only metadata stays for operators.

CREATE TABLE outbox (
    id                  TEXT PRIMARY KEY NOT NULL,
    kind                TEXT NOT NULL DEFAULT 'sign_in',
    recipient           TEXT NOT NULL,
    link_token_hash     TEXT NOT NULL,
    sealed_body         BLOB,
    link_expires        INTEGER NOT NULL,
    status              TEXT NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'sent', 'failed', 'dropped')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     INTEGER NOT NULL,
    last_error          TEXT,
    provider_message_id TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    CHECK (status = 'pending' OR sealed_body IS NULL)
);
-- The worker's question, "what is due?", is answered from this partial index alone.
CREATE INDEX outbox_pending_due ON outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbox_created ON outbox (created_at);
CREATE INDEX outbox_status_created ON outbox (status, created_at);
