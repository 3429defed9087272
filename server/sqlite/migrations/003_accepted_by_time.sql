-- The replay check's table, keyed for writing. Keyed by (sender, id), every
-- message put its row in a random place of the b-tree, dirtying a random
-- page (4 KiB of WAL) per message, plus a row in an index by age. Keyed
-- first by the time the sender stamped on the message (which its retries
-- repeat; clamped to the server's clock by the writer, so that a wrong
-- clock cannot place rows anywhere), new rows go in at the end of the
-- b-tree, and expire by a range of the key: no index of their own.
--
-- Rows of earlier versions are kept under the time the server accepted
-- them, which a retry does not repeat: for those the clients' own
-- de-duplication by message id remains.
CREATE TABLE accepted_by_time (
	key_ms      INTEGER NOT NULL,
	from_user   TEXT NOT NULL,
	from_device INTEGER NOT NULL,
	msg_id      BLOB NOT NULL,
	PRIMARY KEY (key_ms, from_user, from_device, msg_id)
) STRICT, WITHOUT ROWID;

INSERT INTO accepted_by_time (key_ms, from_user, from_device, msg_id)
	SELECT server_ms, from_user, from_device, msg_id FROM accepted;
DROP TABLE accepted;
ALTER TABLE accepted_by_time RENAME TO accepted;
