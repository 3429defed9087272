// The conversation list and the "new conversation" field above it.

import { useRef, useState } from "preact/hooks";
import type { Conversation, Message } from "./api";
import { shortTime, hue, usernamePattern, usernameRule } from "./format";
import { Alert, Check, CheckCheck, Clock, Plus, ShieldCheck, Warning } from "./icons";

export function Avatar({ name, size = "" }: { name: string; size?: "" | "large" }) {
  return (
    <span class={size ? `avatar ${size}` : "avatar"} style={`--h:${hue(name)}`} aria-hidden="true">
      {(name[0] ?? "?").toUpperCase()}
    </span>
  );
}

/** The small icon for an outgoing message's state. */
export function StateIcon({ state }: { state: Message["state"] }) {
  const [Icon, label] =
    state === "sending"
      ? [Clock, "Sending"]
      : state === "sent"
        ? [Check, "Sent"]
        : state === "delivered"
          ? [CheckCheck, "Delivered"]
          : state === "failed"
            ? [Alert, "Not sent"]
            : [null, ""];
  if (!Icon) return null;
  return (
    <span class={`state-icon ${state}`} role="img" aria-label={label} title={label}>
      <Icon size={15} />
    </span>
  );
}

interface NewConversationProps {
  me: string;
  filter: string;
  onFilter: (q: string) => void;
  onOpen: (peer: string) => void;
}

export function NewConversation({ me, filter, onFilter, onOpen }: NewConversationProps) {
  const [error, setError] = useState("");
  const submit = (e: Event) => {
    e.preventDefault();
    const input = (e.currentTarget as HTMLFormElement).elements.namedItem("peer") as HTMLInputElement;
    const name = input.value.trim().replace(/^@/, "").toLowerCase();
    if (!name) return;
    if (!usernamePattern.test(name)) return setError(`“${name}” cannot be a username (${usernameRule}).`);
    if (name === me) return setError("That is your own username.");
    setError("");
    input.value = "";
    onFilter("");
    onOpen(name);
  };
  const keydown = (e: KeyboardEvent) => {
    if (e.key === "ArrowDown") {
      const first = document.querySelector<HTMLElement>(".conversation");
      if (first) {
        e.preventDefault();
        first.focus();
      }
    } else if (e.key === "Escape" && filter) {
      (e.currentTarget as HTMLInputElement).value = "";
      onFilter("");
      e.stopPropagation();
    }
  };
  return (
    <form class="new-conversation" onSubmit={submit} role="search">
      <label for="new-conversation" class="sr-only">
        New conversation: type a username and press Enter
      </label>
      <input
        id="new-conversation"
        name="peer"
        type="text"
        autoComplete="off"
        autoCapitalize="none"
        autoCorrect="off"
        spellcheck={false}
        placeholder="New conversation: username"
        aria-invalid={error ? true : undefined}
        aria-describedby="new-conversation-error"
        onInput={(e) => {
          onFilter((e.currentTarget as HTMLInputElement).value.trim().toLowerCase());
          if (error) setError("");
        }}
        onKeyDown={keydown}
      />
      <button type="submit" class="icon-button" aria-label="Start conversation" title="Start conversation">
        <Plus />
      </button>
      <p id="new-conversation-error" class="error-text small" role="alert">
        {error}
      </p>
    </form>
  );
}

interface ListProps {
  conversations: Conversation[] | null;
  selected: string;
  filter: string;
  /** The open conversation, when it is on screen: its badge is not shown. */
  reading: string;
  onOpen: (peer: string) => void;
}

export function ConversationList({ conversations, selected, filter, reading, onOpen }: ListProps) {
  const nav = useRef<HTMLElement>(null);
  let items = conversations ?? [];
  if (selected && !items.some((c) => c.peer === selected)) {
    items = [{ peer: selected, last: null, unread: 0, verified: false, identity_changed: false }, ...items];
  }
  if (filter) items = items.filter((c) => c.peer.includes(filter));

  const keydown = (e: KeyboardEvent) => {
    const buttons = Array.from(nav.current?.querySelectorAll<HTMLElement>(".conversation") ?? []);
    const i = buttons.indexOf(document.activeElement as HTMLElement);
    if (i < 0) return;
    const j =
      e.key === "ArrowDown" ? Math.min(i + 1, buttons.length - 1)
      : e.key === "ArrowUp" ? i - 1
      : e.key === "Home" ? 0
      : e.key === "End" ? buttons.length - 1
      : null;
    if (j === null) return;
    e.preventDefault();
    if (j < 0) document.getElementById("new-conversation")?.focus();
    else buttons[j].focus();
  };

  return (
    <nav class="conversation-list" ref={nav} aria-label="Conversations" onKeyDown={keydown}>
      {conversations === null ? (
        <div class="list-empty">
          <span class="spinner small" aria-hidden="true" /> Loading conversations…
        </div>
      ) : items.length === 0 ? (
        <p class="list-empty muted">
          {filter ? `No conversation matches “${filter}”. Press Enter to start one.` : "No conversations yet. Type a username above and press Enter to start one."}
        </p>
      ) : (
        <ul>
          {items.map((c) => (
            <li key={c.peer}>
              <Item c={c} current={c.peer === selected} showUnread={c.peer !== reading} onOpen={onOpen} />
            </li>
          ))}
        </ul>
      )}
    </nav>
  );
}

function Item({ c, current, showUnread, onOpen }: { c: Conversation; current: boolean; showUnread: boolean; onOpen: (p: string) => void }) {
  const last = c.last;
  const when = last ? last.sent_at || last.at : 0;
  const unread = showUnread ? c.unread : 0;
  return (
    <button
      type="button"
      class={unread ? "conversation has-unread" : "conversation"}
      data-peer={c.peer}
      aria-current={current ? "true" : undefined}
      onClick={() => onOpen(c.peer)}
    >
      <Avatar name={c.peer} />
      <span class="conversation-body">
        <span class="conversation-top">
          <span class="peer">{c.peer}</span>
          {c.verified && (
            <span class="verified-mark" title="Safety number verified">
              <ShieldCheck size={14} />
              <span class="sr-only">, verified</span>
            </span>
          )}
          {c.identity_changed && (
            <span class="changed-mark" title="Safety number changed">
              <Warning size={14} />
              <span class="sr-only">, safety number changed</span>
            </span>
          )}
          <time class="when" dateTime={when ? new Date(when).toISOString() : undefined}>
            {shortTime(when)}
          </time>
        </span>
        <span class="conversation-bottom">
          <span class={last?.notice ? "preview notice-preview" : "preview"}>
            {last?.outgoing && <StateIcon state={last.state} />}
            {last ? (last.outgoing && !last.notice ? "You: " : "") + last.text : "No messages yet"}
          </span>
          {unread > 0 && (
            <>
              <span class="unread">{unread}</span>
              <span class="sr-only"> unread</span>
            </>
          )}
        </span>
      </span>
    </button>
  );
}
