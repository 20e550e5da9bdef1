-- Disabled accounts (issue 24): an operator's `users disable` sets disabled_at (milliseconds
-- since the epoch); `users enable` clears it. A disabled person's sessions are ended when it is
-- set and no session of theirs is honoured while it is set; a link asked for their address is
-- answered as any other and never sent. NULL: the account works.
ALTER TABLE users ADD COLUMN disabled_at INTEGER;
