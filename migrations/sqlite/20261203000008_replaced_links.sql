-- A new link retires the address's older unused links at once: they are kept, marked with when
-- they were replaced, so that opening one says "a newer link was sent" rather than "not
-- valid" (a deleted link could not tell the two apart). The link's own `used_at` stays NULL:
-- it signed nobody in.
ALTER TABLE verification_tokens ADD COLUMN replaced_at INTEGER;
