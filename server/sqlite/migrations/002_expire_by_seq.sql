-- Messages expire by seq range: seq grows with server_ms, so the oldest
-- messages are the lowest seqs and need no index of their own. One b-tree
-- less to write for every message stored and deleted.

DROP INDEX messages_by_age;
