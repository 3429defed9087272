-- Accounts, devices, prekeys and the mailbox. Times are Unix milliseconds.

CREATE TABLE accounts (
	user         TEXT PRIMARY KEY,  -- canonical username (parley.ParseUserID)
	identity_key BLOB NOT NULL,
	created_ms   INTEGER NOT NULL
) STRICT;

CREATE TABLE devices (
	user            TEXT NOT NULL REFERENCES accounts (user),
	device          INTEGER NOT NULL,
	auth_key        BLOB NOT NULL,
	registration_id INTEGER NOT NULL,
	created_ms      INTEGER NOT NULL,
	PRIMARY KEY (user, device)
) STRICT;

-- kind: 1 one-time Curve25519, 2 one-time Kyber, 3 signed Curve25519 (one
-- per device), 4 last-resort Kyber (one per device).
CREATE TABLE prekeys (
	user      TEXT NOT NULL,
	device    INTEGER NOT NULL,
	kind      INTEGER NOT NULL,
	key_id    INTEGER NOT NULL,
	key       BLOB NOT NULL,
	signature BLOB,
	PRIMARY KEY (user, device, kind, key_id),
	FOREIGN KEY (user, device) REFERENCES devices (user, device)
) STRICT, WITHOUT ROWID;

-- AUTOINCREMENT: a seq is never reused, even after the newest row is deleted.
CREATE TABLE messages (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	to_user     TEXT NOT NULL,
	to_device   INTEGER NOT NULL,
	from_user   TEXT NOT NULL,
	from_device INTEGER NOT NULL,
	msg_id      BLOB NOT NULL,
	type        INTEGER NOT NULL,
	content     BLOB NOT NULL,
	sent_ms     INTEGER NOT NULL,
	server_ms   INTEGER NOT NULL
) STRICT;

CREATE INDEX messages_by_recipient ON messages (to_user, to_device, seq);
CREATE INDEX messages_by_age ON messages (server_ms);

-- Messages accepted, by sender and id, so that a replayed send is not stored
-- twice even after it was delivered. Kept for the retention period.
CREATE TABLE accepted (
	from_user   TEXT NOT NULL,
	from_device INTEGER NOT NULL,
	msg_id      BLOB NOT NULL,
	server_ms   INTEGER NOT NULL,
	PRIMARY KEY (from_user, from_device, msg_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX accepted_by_age ON accepted (server_ms);
