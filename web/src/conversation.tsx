// One open conversation: its header, the identity warning, the history and
// the composer.

import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import type { Conversation, Message, Parley } from "./api";
import { clock, dayLabel, errorText, fullTime, sameDay } from "./format";
import { Back, Lock, Phone, Retry, Send, Shield, ShieldCheck, Warning } from "./icons";
import { Avatar, StateIcon } from "./list";
import { SafetyDialog } from "./safety";

/** Unsent text per conversation, kept while the page is open. */
const drafts = new Map<string, string>();

/** list with m put in its place by seq (replacing the same id unless keep). */
function upsert(list: Message[], m: Message, keep = false): Message[] {
  const i = list.findIndex((x) => x.id === m.id);
  if (i >= 0) {
    if (keep) return list;
    const out = list.slice();
    out[i] = m;
    return out;
  }
  const out = list.concat(m);
  if (list.length && list[list.length - 1].seq > m.seq) out.sort((a, b) => a.seq - b.seq);
  return out;
}

const when = (m: Message) => m.sent_at || m.at;

interface Props {
  parley: Parley;
  peer: string;
  conversation: Conversation | undefined;
  /** The conversation is on screen and the page is visible: mark it read. */
  reading: boolean;
  /** Put the cursor in the composer at once. */
  focus: boolean;
  openSafety?: boolean;
  onBack: () => void;
  /** Something changed that the conversation list shows. */
  onChanged: () => void;
  /** Calls peer; undefined while a call cannot start (offline, or in a call). */
  onCall?: () => void;
}

export function ConversationView({ parley, peer, conversation, reading, focus, openSafety, onBack, onChanged, onCall }: Props) {
  const [msgs, setMsgs] = useState<Message[] | null>(null);
  const [loadError, setLoadError] = useState("");
  const [sendError, setSendError] = useState("");
  const [hasText, setHasText] = useState(!!drafts.get(peer));
  const [safety, setSafety] = useState(!!openSafety);
  const [newBelow, setNewBelow] = useState(false);
  const composer = useRef<HTMLTextAreaElement>(null);
  const scroller = useRef<HTMLDivElement>(null);
  const stick = useRef(true); // the view follows the newest message
  const lastId = useRef("");
  // Messages that arrive before the history has loaded.
  const early = useRef<{ m: Message; keep: boolean }[] | null>([]);

  const apply = (m: Message, keep = false) => {
    if (early.current) early.current.push({ m, keep });
    else setMsgs((l) => upsert(l ?? [], m, keep));
  };

  useEffect(() => {
    let live = true;
    const off = parley.onEvent((e) => {
      if ((e.type === "message" || e.type === "update") && e.message.peer === peer) apply(e.message);
      // The client writes a notice into the history when the key changes;
      // it comes with no message event of its own.
      if (e.type === "identity_changed" && e.peer === peer) {
        parley.messages(peer).then((l) => live && l.forEach((m) => m.notice && apply(m)), () => {});
      }
    });
    parley.messages(peer).then(
      (loaded) => {
        if (!live) return;
        let l = loaded;
        for (const { m, keep } of early.current ?? []) l = upsert(l, m, keep);
        early.current = null;
        setMsgs(l);
      },
      (e) => live && setLoadError(errorText(e)),
    );
    return () => {
      live = false;
      off();
    };
  }, []);

  // The draft and the first focus.
  useEffect(() => {
    const ta = composer.current!;
    ta.value = drafts.get(peer) ?? "";
    resize();
    if (focus) ta.focus();
    return () => {
      if (ta.value) drafts.set(peer, ta.value);
      else drafts.delete(peer);
    };
  }, []);

  // Mark read whatever is unread while the conversation is on screen.
  const unread = (msgs ?? []).filter((m) => !m.outgoing && m.state === "unread").map((m) => m.id);
  const unreadKey = unread.join();
  const marking = useRef(false);
  useEffect(() => {
    if (!reading || marking.current || msgs === null) return;
    if (!unread.length && !conversation?.unread) return;
    marking.current = true;
    const ids = new Set(unread);
    parley
      .markRead(peer)
      .then(() => {
        setMsgs((l) => l && l.map((m) => (ids.has(m.id) && m.state === "unread" ? { ...m, state: "read" } : m)));
        onChanged();
      })
      .catch((e) => console.warn("parley: markRead:", e))
      .finally(() => {
        marking.current = false;
      });
  }, [reading, unreadKey, msgs === null, conversation?.unread]);

  // Follow the newest message unless the reader scrolled up.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el || !msgs) return;
    const last = msgs.length ? msgs[msgs.length - 1].id : "";
    if (stick.current) {
      el.scrollTop = el.scrollHeight;
      setNewBelow(false);
    } else if (last !== lastId.current) {
      setNewBelow(true);
    }
    lastId.current = last;
  }, [msgs]);

  // Stay at the bottom when the view's height changes (keyboard, resize).
  useEffect(() => {
    const el = scroller.current;
    if (!el || typeof ResizeObserver === "undefined") return;
    const ro = new ResizeObserver(() => {
      if (stick.current) el.scrollTop = el.scrollHeight;
    });
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  const onScroll = () => {
    const el = scroller.current!;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 48;
    if (stick.current && newBelow) setNewBelow(false);
  };

  const toBottom = () => {
    const el = scroller.current!;
    stick.current = true;
    el.scrollTo({ top: el.scrollHeight, behavior: "smooth" });
    setNewBelow(false);
  };

  function resize() {
    const ta = composer.current;
    if (!ta) return;
    ta.style.height = "auto";
    const h = ta.scrollHeight + ta.offsetHeight - ta.clientHeight; // plus the borders
    ta.style.height = Math.min(h, 160) + "px";
    ta.style.overflowY = h > 160 ? "auto" : "hidden";
  }

  const send = async () => {
    const ta = composer.current!;
    const text = ta.value.trim();
    if (!text) return;
    ta.value = "";
    drafts.delete(peer);
    resize();
    setHasText(false);
    setSendError("");
    stick.current = true;
    try {
      apply(await parley.send(peer, text), true);
      onChanged();
    } catch (e) {
      if (!ta.value) {
        ta.value = text;
        resize();
        setHasText(true);
      }
      setSendError(errorText(e));
    }
  };

  const retry = async (m: Message) => {
    setSendError("");
    try {
      const r = await parley.retry(peer, m.id);
      // An update may already have overtaken this answer.
      setMsgs((l) => (l ?? []).map((x) => (x.id === r.id && x.state === "failed" ? r : x)));
      onChanged();
    } catch (e) {
      setSendError(errorText(e));
    }
  };

  const keydown = (e: KeyboardEvent) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      void send();
    }
  };

  const verified = conversation?.verified ?? false;
  const changed = conversation?.identity_changed ?? false;

  const dismiss = async () => {
    try {
      await parley.setVerified(peer, false);
      onChanged();
    } catch (e) {
      setSendError(errorText(e));
    }
  };

  return (
    <section class="conversation-view" aria-label={`Conversation with ${peer}`}>
      <header class="chat-header">
        <button type="button" class="icon-button back" onClick={onBack} aria-label="Back to conversations" title="Back (Esc)">
          <Back size={20} />
        </button>
        <Avatar name={peer} />
        <div class="chat-title">
          <h2>{peer}</h2>
          <small class={changed ? "changed" : verified ? "verified" : "muted"}>
            {changed ? (
              <>
                <Warning size={13} /> Safety number changed
              </>
            ) : verified ? (
              <>
                <ShieldCheck size={13} /> Verified
              </>
            ) : (
              "Not verified"
            )}
          </small>
        </div>
        <button
          type="button"
          id="call-button"
          class="icon-button"
          onClick={onCall}
          disabled={!onCall}
          aria-label={`Call ${peer}`}
          title={onCall ? `Call ${peer}` : "Calls need a connection, and one call at a time"}
        >
          <Phone size={19} />
        </button>
        <button type="button" id="safety-number-button" class="button ghost" onClick={() => setSafety(true)} title="Safety number">
          <Shield size={17} />
          <span class="hide-narrow">Safety number</span>
          <span class="sr-only show-narrow">Safety number</span>
        </button>
      </header>

      {changed && (
        <div id="identity-warning" class="banner warning" role="alert">
          <Warning size={20} />
          <p>
            <strong>{peer}</strong>’s safety number changed. Verify it before trusting new messages.
          </p>
          <div class="banner-actions">
            <button type="button" class="button small" onClick={() => setSafety(true)}>
              View safety number
            </button>
            <button type="button" class="button small ghost" onClick={dismiss} title="Keep the new safety number without verifying it">
              Dismiss
            </button>
          </div>
        </div>
      )}

      <div class="history-wrap">
        <div class="history" ref={scroller} onScroll={onScroll} tabIndex={0} role="region" aria-label={`Messages with ${peer}`}>
          {loadError ? (
            <p class="error-text history-note">Could not load the history: {loadError}</p>
          ) : msgs === null ? (
            <p class="history-note muted">
              <span class="spinner small" aria-hidden="true" /> Loading messages…
            </p>
          ) : msgs.length === 0 ? (
            <div class="history-empty">
              <Avatar name={peer} size="large" />
              <h3>{peer}</h3>
              <p class="muted">
                <Lock size={14} /> Messages are end-to-end encrypted. Only you and {peer} can read them.
              </p>
            </div>
          ) : (
            <History msgs={msgs} onRetry={retry} />
          )}
        </div>
        {newBelow && (
          <button type="button" class="new-below" onClick={toBottom}>
            New messages ↓
          </button>
        )}
      </div>

      {sendError && (
        <p class="send-error error-text" role="alert">
          {sendError}
        </p>
      )}
      <form
        class="composer"
        onSubmit={(e) => {
          e.preventDefault();
          void send();
        }}
      >
        <label for="composer" class="sr-only">
          Message to {peer} (Enter sends, Shift+Enter starts a new line)
        </label>
        <textarea
          id="composer"
          ref={composer}
          rows={1}
          placeholder={`Message ${peer}`}
          onInput={() => {
            resize();
            const has = !!composer.current?.value.trim();
            if (has !== hasText) setHasText(has);
          }}
          onKeyDown={keydown}
        />
        <button id="send" type="submit" class={hasText ? "send-button ready" : "send-button"} aria-label="Send" title="Send (Enter)">
          <Send size={20} />
        </button>
      </form>

      {safety && (
        <SafetyDialog parley={parley} peer={peer} changed={changed} onClose={() => setSafety(false)} onChanged={onChanged} />
      )}
    </section>
  );
}

function History({ msgs, onRetry }: { msgs: Message[]; onRetry: (m: Message) => void }) {
  const rows = [];
  let prev: Message | null = null; // the bubble above, for grouping
  let prevTime = 0;
  for (const m of msgs) {
    const t = when(m);
    const newDay = !prevTime || !sameDay(prevTime, t);
    prevTime = t;
    if (newDay) {
      rows.push(
        <div class="day" key={`day-${m.seq}`} role="separator">
          <span>{dayLabel(t)}</span>
        </div>,
      );
      prev = null;
    }
    if (m.notice) {
      rows.push(
        <div class="message notice" key={m.id} data-id={m.id} data-state={m.state} data-outgoing="false" data-notice="true">
          <span class="text">{m.text}</span>
          <time dateTime={new Date(t).toISOString()} title={fullTime(t)}>
            {clock(t)}
          </time>
        </div>,
      );
      prev = null;
      continue;
    }
    const grouped = prev !== null && prev.outgoing === m.outgoing && t - when(prev) < 3 * 60_000;
    rows.push(
      <div
        key={m.id}
        class={`message ${m.outgoing ? "out" : "in"}${grouped ? " grouped" : ""}`}
        data-id={m.id}
        data-state={m.state}
        data-outgoing={String(m.outgoing)}
      >
        <div class="bubble">
          <div class="text">{m.text}</div>
          <div class="meta">
            <time dateTime={new Date(t).toISOString()} title={fullTime(t)}>
              {clock(t)}
            </time>
            {m.outgoing && <StateIcon state={m.state} />}
          </div>
        </div>
        {m.state === "failed" && (
          <div class="failure">
            <span>Not sent{m.error ? `: ${m.error}` : ""}</span>
            <button type="button" class="button small danger retry" onClick={() => onRetry(m)}>
              <Retry size={14} /> Retry
            </button>
          </div>
        )}
      </div>,
    );
    prev = m;
  }
  return <>{rows}</>;
}
