-- The client's local state. Times are Unix milliseconds; ids and keys are
-- blobs. The account row holds private keys: the file is created mode 0600.

CREATE TABLE account (
	id                    INTEGER PRIMARY KEY CHECK (id = 1),
	server                TEXT    NOT NULL,
	user                  TEXT    NOT NULL,
	device                INTEGER NOT NULL,
	registration_id       INTEGER NOT NULL,
	identity_key          BLOB    NOT NULL,
	device_key            BLOB    NOT NULL,
	next_prekey_id        INTEGER NOT NULL,
	next_kyber_prekey_id  INTEGER NOT NULL,
	next_signed_prekey_id INTEGER NOT NULL,
	signed_prekey_id      INTEGER NOT NULL,
	last_resort_kyber_id  INTEGER NOT NULL,
	rotated_at            INTEGER NOT NULL,
	created               INTEGER NOT NULL
);

-- Signal protocol records (sessions, identities, prekeys, device lists),
-- encoded by package client.
CREATE TABLE records (
	kind  TEXT NOT NULL,
	key   TEXT NOT NULL,
	value BLOB NOT NULL,
	PRIMARY KEY (kind, key)
) WITHOUT ROWID;

-- The history; outgoing rows in state 1 (sending) are the outbox.
CREATE TABLE messages (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	id          BLOB    NOT NULL,
	peer        TEXT    NOT NULL,
	outgoing    INTEGER NOT NULL,
	from_user   TEXT    NOT NULL DEFAULT '',
	from_device INTEGER NOT NULL DEFAULT 0,
	notice      INTEGER NOT NULL DEFAULT 0,
	text        TEXT    NOT NULL,
	sent_at     INTEGER NOT NULL,
	at          INTEGER NOT NULL,
	state       INTEGER NOT NULL,
	error       TEXT    NOT NULL DEFAULT '',
	UNIQUE (peer, outgoing, id)
);
CREATE INDEX messages_state ON messages (state, seq);
CREATE INDEX messages_peer ON messages (peer, seq);
