// idbstore.js is the IndexedDB side of package idbstore (web/idbstore).
//
// It is the body of a function, not a module: package idbstore evaluates it
// once with `new Function(source)()` and keeps the object it returns. Every
// function here returns a Promise and never throws; every transaction is
// started and finished here, driven by IndexedDB's callbacks, because a
// transaction commits by itself as soon as it has no pending request at the
// end of a task, which Go's goroutines could not promise.
//
// Values cross from Go as JSON text (messages, state changes, the account;
// the field names are those of the stored objects, set by the Go structs
// messageRecord, stateRecord and accountRecord in codec.go) and Uint8Array
// (record values). Messages go back to Go in the binary layout of
// encodeMessages. Nothing here logs: the account holds private keys.

"use strict";

const ACCOUNT = "account"; // one object, at key ACCOUNT_KEY
const RECORDS = "records"; // {kind, key, value: Uint8Array}, keyed by [kind, key]
const MESSAGES = "messages"; // messageRecord objects, keyed by seq (a key generator)
const ACCOUNT_KEY = 1;
// tuning is returned with open so that tests can set small values.
const tuning = {
  scanChunk: 256, // messages read at a time when filtering (see messages)
};

// upgrades[v] brings a database from version v to v+1; the schema version
// is upgrades.length. Append a step to change the schema, never edit one.
const upgrades = [
  // 0 → 1: the first schema.
  (db) => {
    db.createObjectStore(ACCOUNT);
    db.createObjectStore(RECORDS, { keyPath: ["kind", "key"] });
    const m = db.createObjectStore(MESSAGES, { keyPath: "seq", autoIncrement: true });
    // A message is unique on peer, direction and id. outgoing is 0 or 1:
    // booleans are not keys, and a record whose key path yields no valid
    // key is silently left out of an index.
    m.createIndex("key", ["peer", "outgoing", "id"], { unique: true });
    m.createIndex("id", "id");
    // Index entries with equal keys are ordered by primary key, but a
    // range can only start at a seq when seq is part of the index key.
    m.createIndex("peer", ["peer", "seq"]);
    m.createIndex("state", ["state", "seq"]);
  },
];

// encodeMessages writes stored messages into one Uint8Array, which Go
// copies in one call and decodes (decodeMessages in codec.go) far faster
// than JSON. Each message, numbers little-endian:
//
//   seq, sent_at, at                  float64 each (integers, exact below 2^53)
//   from_device                       uint32
//   outgoing, notice, state           uint8 each
//   id, peer, from_user, text, error  uint32 byte length, then UTF-8, each
//
// Change it only together with decodeMessages.
const encoder = new TextEncoder();
const FIXED = 8 * 3 + 4 + 3; // bytes before the strings
function encodeMessages(list) {
  const strings = (m) => [m.id, m.peer, m.from_user ?? "", m.text, m.error ?? ""];
  let size = 0;
  for (const m of list) {
    size += FIXED;
    for (const s of strings(m)) size += 4 + 3 * s.length; // UTF-8 of a UTF-16 unit: 3 bytes at most
  }
  const buf = new Uint8Array(size);
  const view = new DataView(buf.buffer);
  let n = 0;
  for (const m of list) {
    view.setFloat64(n, m.seq, true);
    view.setFloat64(n + 8, m.sent_at, true);
    view.setFloat64(n + 16, m.at, true);
    view.setUint32(n + 24, m.from_device ?? 0, true);
    buf[n + 28] = m.outgoing;
    buf[n + 29] = m.notice ? 1 : 0;
    buf[n + 30] = m.state;
    n += FIXED;
    for (const s of strings(m)) {
      const { written } = encoder.encodeInto(s, buf.subarray(n + 4));
      view.setUint32(n, written, true);
      n += 4 + written;
    }
  }
  return buf.subarray(0, n);
}

// open opens (creating or upgrading) the database called name and resolves
// to a connection object. Aborting signal gives up waiting; a connection
// that opens after that is closed.
function open(name, signal) {
  return new Promise((resolve, reject) => {
    if (!globalThis.indexedDB) {
      reject(new DOMException("this browser has no IndexedDB", "NotSupportedError"));
      return;
    }
    let req;
    try {
      if (signal.aborted) throw new DOMException("the operation was cancelled", "AbortError");
      req = indexedDB.open(name, upgrades.length);
    } catch (e) {
      reject(e);
      return;
    }
    signal.addEventListener("abort", () => reject(new DOMException("the operation was cancelled", "AbortError")), { once: true });
    req.onupgradeneeded = (e) => {
      // An exception here aborts the upgrade, and open fails.
      for (let v = e.oldVersion; v < upgrades.length; v++) upgrades[v](req.result, req.transaction);
    };
    req.onsuccess = () => {
      if (signal.aborted) req.result.close();
      else resolve(connection(req.result));
    };
    req.onerror = () => reject(req.error);
    // onblocked: another tab holds an older version open. Its connection
    // closes itself on versionchange (below), and then this open goes on.
  });
}

// connection wraps an open database.
function connection(db) {
  // Another tab wants to upgrade the database: let it. Later calls here
  // then fail with InvalidStateError, which Go reports as unavailable.
  db.onversionchange = () => db.close();

  // run starts a transaction over stores and calls body(tx, fail) to make
  // its requests. The promise resolves to result() once the transaction
  // has completed (for readwrite: committed and, with strict durability,
  // flushed), and rejects if it aborts. fail(e) aborts it with e as the
  // reason; request callbacks must be wrapped with guard so that an
  // exception aborts instead of vanishing. Aborting signal aborts too.
  function run(stores, mode, signal, body, result) {
    return new Promise((resolve, reject) => {
      let tx;
      let reason = null;
      const fail = (e) => {
        reason ??= e;
        try {
          tx.abort();
        } catch {
          // Already committing or finished: the outcome stands.
        }
      };
      try {
        if (signal.aborted) throw new DOMException("the operation was cancelled", "AbortError");
        tx = db.transaction(stores, mode, mode === "readwrite" ? { durability: "strict" } : undefined);
        tx.oncomplete = () => {
          try {
            resolve(result());
          } catch (e) {
            reject(e);
          }
        };
        tx.onabort = () => reject(reason ?? tx.error ?? new DOMException("the transaction was aborted", "AbortError"));
        signal.addEventListener("abort", () => fail(new DOMException("the operation was cancelled", "AbortError")), { once: true });
        body(tx, fail);
      } catch (e) {
        if (tx) fail(e);
        else reject(e);
      }
    });
  }

  // guard wraps a request callback so that an exception aborts tx.
  const guard = (fail, fn) => (event) => {
    try {
      fn(event);
    } catch (e) {
      fail(e);
    }
  };

  // account resolves to the account as JSON text, or null.
  function account(signal) {
    let out = null;
    return run([ACCOUNT], "readonly", signal, (tx, fail) => {
      const req = tx.objectStore(ACCOUNT).get(ACCOUNT_KEY);
      req.onsuccess = guard(fail, () => {
        if (req.result !== undefined) out = JSON.stringify(req.result);
      });
    }, () => out);
  }

  // record resolves to the value (a Uint8Array) of the record, or null.
  function record(kind, key, signal) {
    let out = null;
    return run([RECORDS], "readonly", signal, (tx, fail) => {
      const req = tx.objectStore(RECORDS).get([kind, key]);
      req.onsuccess = guard(fail, () => {
        if (req.result !== undefined) out = req.result.value;
      });
    }, () => out);
  }

  // messages resolves to the messages matching q, by seq, encoded by
  // encodeMessages. q is {id: hex or "", peer: string or "", outgoing:
  // -1 (any), 0 or 1, state: 0 (any) or a state, after: seq, limit: 0
  // (none) or n}; matches must agree with client.Query.Matches.
  //
  // It reads with getAll, never a cursor: one request for a whole range
  // costs far less than an event per message. When the chosen range holds
  // messages that the query does not match, it reads tuning.scanChunk at
  // a time, each chunk starting after the last seq of the one before,
  // until it has the limit or reaches the end.
  function messages(q, signal) {
    const matches = (m) =>
      (q.id === "" || m.id === q.id) &&
      (q.peer === "" || m.peer === q.peer) &&
      (q.outgoing < 0 || m.outgoing === q.outgoing) &&
      (q.state === 0 || m.state === q.state) &&
      m.seq > q.after;
    const out = [];
    return run([MESSAGES], "readonly", signal, (tx, fail) => {
      const store = tx.objectStore(MESSAGES);
      // Pick the narrowest index. from(seq) is its range of the messages
      // after seq, or of all its messages for the id lookups, whose
      // results are few. exact says that the range holds only matching
      // messages.
      let source = store;
      let from = (seq) => IDBKeyRange.lowerBound(seq, true);
      let exact = q.id === "" && q.peer === "" && q.outgoing < 0 && q.state === 0;
      if (q.id !== "" && q.peer !== "" && q.outgoing >= 0) {
        source = store.index("key");
        from = () => IDBKeyRange.only([q.peer, q.outgoing, q.id]);
      } else if (q.id !== "") {
        source = store.index("id");
        from = () => IDBKeyRange.only(q.id);
      } else if (q.peer !== "") {
        source = store.index("peer");
        from = (seq) => IDBKeyRange.bound([q.peer, seq], [q.peer, Infinity], true, false);
        exact = q.outgoing < 0 && q.state === 0;
      } else if (q.state !== 0) {
        source = store.index("state");
        from = (seq) => IDBKeyRange.bound([q.state, seq], [q.state, Infinity], true, false);
        exact = q.outgoing < 0;
      }
      const limit = q.limit > 0 ? q.limit : Infinity;
      let chunk = exact ? q.limit || undefined : Math.max(q.limit, tuning.scanChunk);
      if (q.id !== "") chunk = undefined;
      const scan = (after) => {
        const req = source.getAll(from(after), chunk);
        req.onsuccess = guard(fail, () => {
          const got = req.result;
          for (const m of got) {
            if (!matches(m)) continue;
            out.push(m);
            if (out.length === limit) return;
          }
          if (chunk !== undefined && got.length === chunk) scan(got[got.length - 1].seq);
        });
      };
      scan(q.after);
    }, () => encodeMessages(out));
  }

  // apply writes a batch in one readwrite transaction over all stores:
  // b is {account: JSON text or null, records: [{kind, key, value:
  // Uint8Array or null}], messages: JSON text of messageRecords without
  // seq, states: JSON text of stateRecords}. It resolves once the
  // transaction has completed.
  function apply(b, signal) {
    return run([ACCOUNT, RECORDS, MESSAGES], "readwrite", signal, (tx, fail) => {
      const msgs = JSON.parse(b.messages);
      const states = JSON.parse(b.states);
      if (b.account !== null) tx.objectStore(ACCOUNT).put(JSON.parse(b.account), ACCOUNT_KEY);
      const records = tx.objectStore(RECORDS);
      for (const r of b.records) {
        if (r.value === null) records.delete([r.kind, r.key]);
        else records.put({ kind: r.kind, key: r.key, value: r.value });
      }
      // Requests run in the order they are made. Each message's lookup
      // and each state change's is made in the callback of the one
      // before, after its write, so the batch applies as if one write
      // followed another: a duplicate within the batch is seen, and the
      // state changes see the messages inserted before them.
      const store = tx.objectStore(MESSAGES);
      const byKey = store.index("key");
      const insert = (i) => {
        if (i === msgs.length) {
          change(0);
          return;
        }
        const m = msgs[i];
        delete m.seq; // the key generator sets it
        const req = byKey.getKey([m.peer, m.outgoing, m.id]);
        req.onsuccess = guard(fail, () => {
          if (req.result === undefined) store.add(m);
          insert(i + 1);
        });
      };
      const change = (i) => {
        if (i === states.length) return;
        const c = states[i];
        const req = byKey.get([c.peer, c.outgoing, c.id]);
        req.onsuccess = guard(fail, () => {
          const m = req.result;
          if (m !== undefined) {
            m.state = c.state;
            if (c.at !== 0) m.at = c.at;
            if (c.error !== "") m.error = c.error;
            store.put(m);
          }
          change(i + 1);
        });
      };
      insert(0);
    }, () => null);
  }

  return { account, record, messages, apply, close: () => db.close() };
}

return { version: upgrades.length, open, tuning };
