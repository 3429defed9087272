// Interop harness: drives the reference libsignal (@signalapp/libsignal-client,
// AGPL, a test-only devDependency that is never shipped) for Parley's Go
// interop tests in signal/signaltest.
//
// Protocol: newline-delimited JSON over stdin/stdout, one request per line,
// one response per line, in order. Byte strings are standard base64.
//
//   request:  {"id": 7, "cmd": "encrypt", ...arguments}
//   response: {"id": 7, "ok": true, ...results}
//             {"id": 7, "ok": false, "error": "message", "code": "ErrorCodeName",
//              "log": ["libsignal's warnings and errors logged by the command"]}
//
// Parties are named handles ("party") for a local identity with its own
// in-memory stores; an address is {"name": string, "device": number}.
// Commands (see the switch in handle below):
//
//   create       {party, name, device, registrationId, identityPrivate?}
//                  -> {identityKey}  (a new identity; identityPrivate (32 bytes)
//                     imports one instead of generating it)
//   bundle       {party, preKeyId?, signedPreKeyId, kyberPreKeyId, kyberLastResort?}
//                  -> {bundle}       (keys are generated, stored and their public
//                     parts returned; preKeyId absent or null: no one-time prekey)
//   process      {party, remote, bundle}          processPreKeyBundle
//   encrypt      {party, remote, plaintext}       -> {type, ciphertext}
//   decrypt      {party, remote, type, ciphertext} -> {plaintext}
//   archive      {party, remote}                  archives the current session state
//   deleteSession{party, remote}                  forgets the session record
//   session      {party, remote} -> {exists, hasCurrentState, localRegistrationId,
//                  remoteRegistrationId}
//   identity     {party, remote?} -> {identityKey} (own, or the one saved for remote)
//   verify       {key, message, signature} -> {valid}   XEdDSA via PublicKey.verify
//   sign         {party, message} -> {signature}        XEdDSA with the identity key
//   agree        {party, key} -> {shared}               X25519 with the identity key
//   fingerprint  {version, iterations, localId, localKey, remoteId, remoteKey}
//                  -> {displayable, scannable}
//   probePqRatchet {party, remote, pqRatchet, counter?} -> {outcome, detail}
//                  whether libsignal's SPQR accepts a pq_ratchet payload
//   bench        {n, messages?} -> figures (libsignal <-> libsignal, in process)
//   ping         -> {version}
//   quit
//
// Run `node harness.mjs --selftest` (or `npm run selftest`) to check the
// harness against itself: libsignal <-> libsignal through these commands.

import * as readline from 'node:readline';
import { createRequire } from 'node:module';
import {
  CiphertextMessageType,
  ErrorCode,
  Fingerprint,
  IdentityChange,
  IdentityKeyPair,
  IdentityKeyStore,
  KEMKeyPair,
  KEMPublicKey,
  KyberPreKeyRecord,
  KyberPreKeyStore,
  LogLevel,
  PreKeyBundle,
  PreKeyRecord,
  PreKeySignalMessage,
  PreKeyStore,
  PrivateKey,
  ProtocolAddress,
  PublicKey,
  SessionRecord,
  SessionStore,
  SignalMessage,
  SignedPreKeyRecord,
  SignedPreKeyStore,
  initLogger,
  processPreKeyBundle,
  signalDecrypt,
  signalDecryptPreKey,
  signalEncrypt,
} from '@signalapp/libsignal-client';

const require = createRequire(import.meta.url);
const LIBSIGNAL_VERSION = require('@signalapp/libsignal-client/package.json').version;

const b64 = (u8) => Buffer.from(u8).toString('base64');
const unb64 = (s, what) => {
  if (typeof s !== 'string') throw new Error(`missing base64 field ${what}`);
  const b = Buffer.from(s, 'base64');
  // libsignal's typings want Uint8Array<ArrayBuffer> with its own buffer.
  return new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const addrKey = (a) => `${a.name()}.${a.deviceId()}`;
const toAddress = (a, what) => {
  if (!a || typeof a.name !== 'string' || typeof a.device !== 'number') {
    throw new Error(`${what}: want {"name": string, "device": number}`);
  }
  return ProtocolAddress.new(a.name, a.device);
};

class MemSessionStore extends SessionStore {
  sessions = new Map(); // address -> serialized SessionRecord
  async saveSession(name, record) {
    this.sessions.set(addrKey(name), record.serialize());
  }
  async getSession(name) {
    const b = this.sessions.get(addrKey(name));
    return b ? SessionRecord.deserialize(b) : null;
  }
  async getExistingSessions(addresses) {
    return addresses.map((a) => {
      const b = this.sessions.get(addrKey(a));
      if (!b) throw new Error(`no session for ${addrKey(a)}`);
      return SessionRecord.deserialize(b);
    });
  }
}

class MemIdentityKeyStore extends IdentityKeyStore {
  identities = new Map(); // address -> PublicKey
  constructor(privateKey, registrationId) {
    super();
    this.privateKey = privateKey;
    this.registrationId = registrationId;
  }
  async getIdentityKey() {
    return this.privateKey;
  }
  async getLocalRegistrationId() {
    return this.registrationId;
  }
  async saveIdentity(name, key) {
    const k = addrKey(name);
    const old = this.identities.get(k);
    this.identities.set(k, key);
    return old && !old.equals(key) ? IdentityChange.ReplacedExisting : IdentityChange.NewOrUnchanged;
  }
  // Trust on first use, then only the same key (as libsignal's in-memory store).
  async isTrustedIdentity(name, key, _direction) {
    const old = this.identities.get(addrKey(name));
    return !old || old.equals(key);
  }
  async getIdentity(name) {
    return this.identities.get(addrKey(name)) ?? null;
  }
}

class MemPreKeyStore extends PreKeyStore {
  keys = new Map();
  async savePreKey(id, record) {
    this.keys.set(id, record.serialize());
  }
  async getPreKey(id) {
    const b = this.keys.get(id);
    if (!b) throw new Error(`no prekey ${id}`);
    return PreKeyRecord.deserialize(b);
  }
  async removePreKey(id) {
    this.keys.delete(id);
  }
}

class MemSignedPreKeyStore extends SignedPreKeyStore {
  keys = new Map();
  async saveSignedPreKey(id, record) {
    this.keys.set(id, record.serialize());
  }
  async getSignedPreKey(id) {
    const b = this.keys.get(id);
    if (!b) throw new Error(`no signed prekey ${id}`);
    return SignedPreKeyRecord.deserialize(b);
  }
}

class MemKyberPreKeyStore extends KyberPreKeyStore {
  keys = new Map();
  lastResort = new Set();
  used = []; // {kyberPreKeyId, signedPreKeyId, baseKey}
  async saveKyberPreKey(id, record) {
    this.keys.set(id, record.serialize());
  }
  async getKyberPreKey(id) {
    const b = this.keys.get(id);
    if (!b) throw new Error(`no kyber prekey ${id}`);
    return KyberPreKeyRecord.deserialize(b);
  }
  async markKyberPreKeyUsed(id, signedPreKeyId, baseKey) {
    this.used.push({ id, signedPreKeyId, baseKey: b64(baseKey.serialize()) });
    if (!this.lastResort.has(id)) this.keys.delete(id);
  }
}

class Party {
  constructor(name, device, registrationId, privateKey) {
    this.address = ProtocolAddress.new(name, device);
    this.registrationId = registrationId;
    this.identity = new IdentityKeyPair(privateKey.getPublicKey(), privateKey);
    this.sessions = new MemSessionStore();
    this.identities = new MemIdentityKeyStore(privateKey, registrationId);
    this.preKeys = new MemPreKeyStore();
    this.signedPreKeys = new MemSignedPreKeyStore();
    this.kyberPreKeys = new MemKyberPreKeyStore();
  }

  // makeBundle generates and stores the prekeys and returns a PreKeyBundle
  // and its JSON form.
  async makeBundle({ preKeyId = null, signedPreKeyId, kyberPreKeyId, kyberLastResort = false }) {
    const now = Date.now();
    let preKeyPub = null;
    if (preKeyId !== null && preKeyId !== undefined) {
      const pk = PrivateKey.generate();
      await this.preKeys.savePreKey(preKeyId, PreKeyRecord.new(preKeyId, pk.getPublicKey(), pk));
      preKeyPub = pk.getPublicKey();
    } else {
      preKeyId = null;
    }
    const spk = PrivateKey.generate();
    const spkSig = this.identity.privateKey.sign(spk.getPublicKey().serialize());
    await this.signedPreKeys.saveSignedPreKey(
      signedPreKeyId,
      SignedPreKeyRecord.new(signedPreKeyId, now, spk.getPublicKey(), spk, spkSig),
    );
    const kyber = KEMKeyPair.generate();
    const kyberSig = this.identity.privateKey.sign(kyber.getPublicKey().serialize());
    await this.kyberPreKeys.saveKyberPreKey(kyberPreKeyId, KyberPreKeyRecord.new(kyberPreKeyId, now, kyber, kyberSig));
    if (kyberLastResort) this.kyberPreKeys.lastResort.add(kyberPreKeyId);
    const bundle = PreKeyBundle.new(
      this.registrationId,
      this.address.deviceId(),
      preKeyId,
      preKeyPub,
      signedPreKeyId,
      spk.getPublicKey(),
      spkSig,
      this.identity.publicKey,
      kyberPreKeyId,
      kyber.getPublicKey(),
      kyberSig,
    );
    return { bundle, json: bundleToJSON(bundle) };
  }

  process(remote, bundle) {
    return processPreKeyBundle(bundle, remote, this.address, this.sessions, this.identities);
  }

  async encrypt(remote, plaintext) {
    const m = await signalEncrypt(plaintext, remote, this.address, this.sessions, this.identities);
    return { type: m.type(), ciphertext: m.serialize() };
  }

  decrypt(remote, type, ciphertext) {
    switch (type) {
      case CiphertextMessageType.PreKey:
        return signalDecryptPreKey(
          PreKeySignalMessage.deserialize(ciphertext),
          remote,
          this.address,
          this.sessions,
          this.identities,
          this.preKeys,
          this.signedPreKeys,
          this.kyberPreKeys,
        );
      case CiphertextMessageType.Whisper:
        return signalDecrypt(SignalMessage.deserialize(ciphertext), remote, this.address, this.sessions, this.identities);
      default:
        throw new Error(`unknown message type ${type}`);
    }
  }
}

function bundleToJSON(b) {
  const preKey = b.preKeyPublic();
  return {
    registrationId: b.registrationId(),
    deviceId: b.deviceId(),
    preKeyId: b.preKeyId(),
    preKey: preKey ? b64(preKey.serialize()) : null,
    signedPreKeyId: b.signedPreKeyId(),
    signedPreKey: b64(b.signedPreKeyPublic().serialize()),
    signedPreKeySignature: b64(b.signedPreKeySignature()),
    kyberPreKeyId: b.kyberPreKeyId(),
    kyberPreKey: b64(b.kyberPreKeyPublic().serialize()),
    kyberPreKeySignature: b64(b.kyberPreKeySignature()),
    identityKey: b64(b.identityKey().serialize()),
  };
}

// bundleFromJSON builds a PreKeyBundle from the JSON form; each key enters
// libsignal through its class' deserialize, so a malformed key from Go fails
// here with the field named.
function bundleFromJSON(j) {
  if (!j) throw new Error('missing bundle');
  const key = (cls, field) => {
    try {
      return cls.deserialize(unb64(j[field], field));
    } catch (e) {
      throw new Error(`bundle.${field}: ${e.message}`);
    }
  };
  const hasPreKey = j.preKeyId !== null && j.preKeyId !== undefined && j.preKey;
  return PreKeyBundle.new(
    j.registrationId,
    j.deviceId,
    hasPreKey ? j.preKeyId : null,
    hasPreKey ? key(PublicKey, 'preKey') : null,
    j.signedPreKeyId,
    key(PublicKey, 'signedPreKey'),
    unb64(j.signedPreKeySignature, 'signedPreKeySignature'),
    key(PublicKey, 'identityKey'),
    j.kyberPreKeyId,
    key(KEMPublicKey, 'kyberPreKey'),
    unb64(j.kyberPreKeySignature, 'kyberPreKeySignature'),
  );
}

// libsignal's own log lines (warnings and errors) during the current
// command: a failed decrypt says only "decryption failed", the log says why.
let logLines = [];
initLogger(LogLevel.Warn, (level, target, file, line, message) => {
  if (logLines.length < 50) logLines.push(`${LogLevel[level]} ${file ?? target}:${line ?? ''} ${message}`);
});

const parties = new Map();
function party(name) {
  const p = parties.get(name);
  if (!p) throw new Error(`unknown party ${JSON.stringify(name)} (create it first)`);
  return p;
}

async function bench({ n = 100, messages = 1000 }) {
  const alice = new Party('bench-alice', 1, 1111, PrivateKey.generate());
  const bob = new Party('bench-bob', 1, 2222, PrivateKey.generate());
  const msg = new Uint8Array(Buffer.from('x'.repeat(100)));

  // Bundles are made first: key generation (including Kyber) is not part of
  // the set-up figure, as in Go's benchmark.
  const bundles = [];
  let t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    bundles.push((await bob.makeBundle({ preKeyId: 1000 + i, signedPreKeyId: 1000 + i, kyberPreKeyId: 1000 + i })).bundle);
  }
  const keygenSec = Number(process.hrtime.bigint() - t0) / 1e9;

  // One PQXDH set-up: Alice processes Bob's bundle and encrypts the first
  // message, Bob decrypts that PreKeySignalMessage.
  t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const bobAddr = ProtocolAddress.new('bench-bob', 1 + (i % 100));
    const aliceAddr = ProtocolAddress.new('bench-alice', 1 + (i % 100));
    alice.sessions.sessions.clear();
    bob.sessions.sessions.clear();
    await alice.process(bobAddr, bundles[i]);
    const m = await alice.encrypt(bobAddr, msg);
    await bob.decrypt(aliceAddr, m.type, m.ciphertext);
  }
  const setupSec = Number(process.hrtime.bigint() - t0) / 1e9;

  // Encrypt+decrypt in an established session, alternating direction every
  // 10 messages so that both ratchets turn.
  const bobAddr = ProtocolAddress.new('bench-bob', 1);
  const aliceAddr = ProtocolAddress.new('bench-alice', 1);
  alice.sessions.sessions.clear();
  bob.sessions.sessions.clear();
  await alice.process(bobAddr, (await bob.makeBundle({ preKeyId: 1, signedPreKeyId: 1, kyberPreKeyId: 1 })).bundle);
  let first = await alice.encrypt(bobAddr, msg);
  await bob.decrypt(aliceAddr, first.type, first.ciphertext);
  first = await bob.encrypt(aliceAddr, msg);
  await alice.decrypt(bobAddr, first.type, first.ciphertext);
  t0 = process.hrtime.bigint();
  for (let i = 0; i < messages; i++) {
    const aToB = Math.floor(i / 10) % 2 === 0;
    const [from, to, toAddr, fromAddr] = aToB ? [alice, bob, bobAddr, aliceAddr] : [bob, alice, aliceAddr, bobAddr];
    const m = await from.encrypt(toAddr, msg);
    await to.decrypt(fromAddr, m.type, m.ciphertext);
  }
  const msgSec = Number(process.hrtime.bigint() - t0) / 1e9;

  return {
    libsignal: LIBSIGNAL_VERSION,
    node: process.version,
    n,
    messages,
    bundlesPerSec: n / keygenSec,
    setupsPerSec: n / setupSec,
    setupMicros: (setupSec * 1e6) / n,
    encryptDecryptPerSec: messages / msgSec,
    encryptDecryptMicros: (msgSec * 1e6) / messages,
    messageBytes: msg.length,
  };
}

async function handle(req) {
  switch (req.cmd) {
    case 'ping':
      return { version: LIBSIGNAL_VERSION, node: process.version };
    case 'create': {
      if (parties.has(req.party)) throw new Error(`party ${req.party} exists`);
      const priv = req.identityPrivate ? PrivateKey.deserialize(unb64(req.identityPrivate, 'identityPrivate')) : PrivateKey.generate();
      const p = new Party(req.name ?? req.party, req.device ?? 1, req.registrationId, priv);
      parties.set(req.party, p);
      return { identityKey: b64(p.identity.publicKey.serialize()) };
    }
    case 'bundle': {
      const { json } = await party(req.party).makeBundle(req);
      return { bundle: json };
    }
    case 'process':
      await party(req.party).process(toAddress(req.remote, 'remote'), bundleFromJSON(req.bundle));
      return {};
    case 'encrypt': {
      const m = await party(req.party).encrypt(toAddress(req.remote, 'remote'), unb64(req.plaintext, 'plaintext'));
      return { type: m.type, ciphertext: b64(m.ciphertext) };
    }
    case 'decrypt': {
      const pt = await party(req.party).decrypt(toAddress(req.remote, 'remote'), req.type, unb64(req.ciphertext, 'ciphertext'));
      return { plaintext: b64(pt) };
    }
    case 'archive': {
      const p = party(req.party);
      const addr = toAddress(req.remote, 'remote');
      const rec = await p.sessions.getSession(addr);
      if (!rec) throw new Error(`no session with ${addrKey(addr)}`);
      rec.archiveCurrentState();
      await p.sessions.saveSession(addr, rec);
      return {};
    }
    case 'deleteSession':
      party(req.party).sessions.sessions.delete(addrKey(toAddress(req.remote, 'remote')));
      return {};
    case 'session': {
      const rec = await party(req.party).sessions.getSession(toAddress(req.remote, 'remote'));
      if (!rec) return { exists: false, hasCurrentState: false };
      return {
        exists: true,
        hasCurrentState: rec.hasCurrentState(),
        localRegistrationId: rec.hasCurrentState() ? rec.localRegistrationId() : null,
        remoteRegistrationId: rec.hasCurrentState() ? rec.remoteRegistrationId() : null,
      };
    }
    case 'identity': {
      const p = party(req.party);
      if (!req.remote) return { identityKey: b64(p.identity.publicKey.serialize()) };
      const k = await p.identities.getIdentity(toAddress(req.remote, 'remote'));
      return { identityKey: k ? b64(k.serialize()) : null };
    }
    case 'verify': {
      const key = PublicKey.deserialize(unb64(req.key, 'key'));
      return { valid: key.verify(unb64(req.message, 'message'), unb64(req.signature, 'signature')) };
    }
    case 'sign':
      return { signature: b64(party(req.party).identity.privateKey.sign(unb64(req.message, 'message'))) };
    case 'agree': {
      const key = PublicKey.deserialize(unb64(req.key, 'key'));
      return { shared: b64(party(req.party).identity.privateKey.agree(key)) };
    }
    case 'fingerprint': {
      const f = Fingerprint.new(
        req.iterations ?? 5200,
        req.version ?? 2,
        unb64(req.localId, 'localId'),
        PublicKey.deserialize(unb64(req.localKey, 'localKey')),
        unb64(req.remoteId, 'remoteId'),
        PublicKey.deserialize(unb64(req.remoteKey, 'remoteKey')),
      );
      return {
        displayable: f.displayableFingerprint().toString(),
        scannable: b64(f.scannableFingerprint().toBuffer()),
      };
    }
    case 'probePqRatchet': {
      // Which pq_ratchet (SPQR) payloads does libsignal accept? party
      // receives, from remote (whose identity it must know: a session
      // exists), a SignalMessage with the given pq_ratchet, a fresh ratchet
      // key and a MAC under a zero key. libsignal runs SPQR's recv before it
      // checks the MAC, so "MAC verification failed" means the pq_ratchet
      // passed SPQR and an error naming the post-quantum ratchet means it
      // did not. Nothing is stored: the decrypt fails either way.
      const p = party(req.party);
      const remote = toAddress(req.remote, 'remote');
      const theirs = await p.identities.getIdentity(remote);
      if (!theirs) throw new Error(`no identity for ${addrKey(remote)}: set up a session first`);
      const msg = SignalMessage._new(
        4,
        new Uint8Array(32),
        PrivateKey.generate().getPublicKey(),
        req.counter ?? 0,
        0,
        new Uint8Array(16),
        theirs,
        p.identity.publicKey,
        unb64(req.pqRatchet ?? '', 'pqRatchet'),
      );
      try {
        await signalDecrypt(SignalMessage.deserialize(msg.serialize()), remote, p.address, p.sessions, p.identities);
        return { outcome: 'decrypted', detail: '' };
      } catch (e) {
        const why = logLines.find((l) => l.includes('Failed to decrypt')) ?? String(e?.message ?? e);
        const detail = why.replace(/^.*and counter: \d+\. /, '');
        const outcome = detail.includes('MAC verification failed')
          ? 'passed SPQR, failed the MAC'
          : detail.includes('post-quantum ratchet')
            ? 'rejected by SPQR'
            : 'rejected';
        return { outcome, detail };
      }
    }
    case 'bench':
      return bench(req);
    default:
      throw new Error(`unknown command ${JSON.stringify(req.cmd)}`);
  }
}

async function serve() {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
  for await (const line of rl) {
    if (line.trim() === '') continue;
    let req;
    try {
      req = JSON.parse(line);
    } catch (e) {
      out({ id: null, ok: false, error: `bad JSON: ${e.message}` });
      continue;
    }
    if (req.cmd === 'quit') {
      out({ id: req.id, ok: true });
      break;
    }
    logLines = [];
    try {
      out({ id: req.id, ok: true, ...(await handle(req)) });
    } catch (e) {
      out({
        id: req.id,
        ok: false,
        error: String(e?.message ?? e),
        code: e?.code !== undefined ? (ErrorCode[e.code] ?? String(e.code)) : undefined,
        name: e?.name,
        log: logLines,
      });
    }
  }
  rl.close();
}

// selftest runs libsignal <-> libsignal through handle, the same path the Go
// tests take, so a harness bug shows up without Go.
async function selftest() {
  const call = async (req) => {
    try {
      return { ok: true, ...(await handle(req)) };
    } catch (e) {
      return { ok: false, error: String(e?.message ?? e) };
    }
  };
  const must = async (req) => {
    const r = await call(req);
    if (!r.ok) throw new Error(`${req.cmd}: ${r.error}`);
    return r;
  };
  const A = { name: 'alice', device: 1 };
  const B = { name: 'bob', device: 2 };
  await must({ cmd: 'create', party: 'a', name: 'alice', device: 1, registrationId: 11 });
  await must({ cmd: 'create', party: 'b', name: 'bob', device: 2, registrationId: 22 });
  const { bundle } = await must({ cmd: 'bundle', party: 'b', preKeyId: 1, signedPreKeyId: 2, kyberPreKeyId: 3 });
  await must({ cmd: 'process', party: 'a', remote: B, bundle });
  let sent = 0;
  const send = async (from, to, fromParty, toParty) => {
    const pt = b64(Buffer.from(`message ${sent++}`));
    const c = await must({ cmd: 'encrypt', party: fromParty, remote: to, plaintext: pt });
    return { pt, c, from, toParty };
  };
  const deliver = async ({ pt, c, from, toParty }) => {
    const d = await must({ cmd: 'decrypt', party: toParty, remote: from, type: c.type, ciphertext: c.ciphertext });
    if (d.plaintext !== pt) throw new Error('plaintext mismatch');
  };
  // prekey messages, then out of order, dropped, interleaved.
  const first = [];
  for (let i = 0; i < 3; i++) first.push(await send(A, B, 'a', 'b'));
  if (first[0].c.type !== 3) throw new Error(`first message type ${first[0].c.type}, want 3`);
  for (const m of [first[2], first[0], first[1]]) await deliver(m);
  for (let round = 0; round < 50; round++) {
    const win = [];
    for (let i = 0; i < 5; i++) win.push(await send(B, A, 'b', 'a'));
    for (let i = 0; i < 4; i++) win.push(await send(A, B, 'a', 'b'));
    win.splice(3, 1); // dropped
    win.reverse();
    for (const m of win) await deliver(m);
  }
  // tamper
  const t = await send(A, B, 'a', 'b');
  const raw = Buffer.from(t.c.ciphertext, 'base64');
  raw[raw.length - 3] ^= 1;
  const bad = await call({ cmd: 'decrypt', party: 'b', remote: A, type: t.c.type, ciphertext: raw.toString('base64') });
  if (bad.ok) throw new Error('tampered message decrypted');
  await deliver(t);
  // reset: b archives, a re-establishes from a fresh bundle; old in-flight still decrypts
  const inflight = await send(B, A, 'b', 'a');
  await must({ cmd: 'archive', party: 'a', remote: B });
  const fresh = await must({ cmd: 'bundle', party: 'b', preKeyId: 10, signedPreKeyId: 11, kyberPreKeyId: 12 });
  await must({ cmd: 'process', party: 'a', remote: B, bundle: fresh.bundle });
  const after = await send(A, B, 'a', 'b');
  if (after.c.type !== 3) throw new Error('after reset: want a PreKeySignalMessage');
  await deliver(after);
  await deliver(inflight);
  await deliver(await send(B, A, 'b', 'a'));
  // fingerprint symmetry
  const ka = (await must({ cmd: 'identity', party: 'a' })).identityKey;
  const kb = (await must({ cmd: 'identity', party: 'b' })).identityKey;
  const fa = await must({ cmd: 'fingerprint', localId: b64(Buffer.from('alice')), localKey: ka, remoteId: b64(Buffer.from('bob')), remoteKey: kb });
  const fb = await must({ cmd: 'fingerprint', localId: b64(Buffer.from('bob')), localKey: kb, remoteId: b64(Buffer.from('alice')), remoteKey: ka });
  if (fa.displayable !== fb.displayable || fa.displayable.length !== 60) throw new Error('fingerprints differ');
  const bn = await must({ cmd: 'bench', n: 20, messages: 200 });
  console.log(`selftest ok: ${sent} messages; bench ${JSON.stringify(bn)}`);
}

if (process.argv.includes('--selftest')) {
  selftest().catch((e) => {
    console.error(`selftest FAILED: ${e.stack ?? e}`);
    process.exit(1);
  });
} else {
  serve().catch((e) => {
    console.error(`harness: ${e.stack ?? e}`);
    process.exit(1);
  });
}
