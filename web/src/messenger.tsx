// The main screen: header, conversation list, the open conversation. It owns
// the list, the connection state and which conversation is open (kept in
// location.hash, so the browser's Back button leaves a conversation on a
// phone).

import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { Account, Connection, Conversation, Parley } from "./api";
import { Calls } from "./call";
import { CallScreen, SettingsDialog, callSettings, useCall } from "./callview";
import { ConversationView } from "./conversation";
import { errorText, usernamePattern } from "./format";
import { Gear, Lock, Logo, Moon, Sun } from "./icons";
import { Avatar, ConversationList, NewConversation } from "./list";
import { currentTheme, onSystemThemeChange, setTheme } from "./theme";

const narrowQuery = matchMedia("(max-width: 640px)");

function peerFromHash(): string {
  let h = location.hash.slice(1);
  try {
    h = decodeURIComponent(h);
  } catch {
    return "";
  }
  return usernamePattern.test(h) ? h : "";
}

/** Runs fn, and once more after it if asked again meanwhile; never twice at once. */
function useCoalesced(fn: () => Promise<void>): () => void {
  const f = useRef(fn);
  f.current = fn;
  const st = useRef({ running: false, again: false });
  return useCallback(() => {
    const s = st.current;
    if (s.running) {
      s.again = true;
      return;
    }
    s.running = true;
    (async () => {
      do {
        s.again = false;
        try {
          await f.current();
        } catch (e) {
          console.warn("parley:", e);
        }
      } while (s.again);
      s.running = false;
    })();
  }, []);
}

function useMedia(q: MediaQueryList): boolean {
  const [m, setM] = useState(q.matches);
  useEffect(() => {
    const on = () => setM(q.matches);
    q.addEventListener("change", on);
    return () => q.removeEventListener("change", on);
  }, []);
  return m;
}

function useVisible(): boolean {
  const [v, setV] = useState(document.visibilityState === "visible");
  useEffect(() => {
    const on = () => setV(document.visibilityState === "visible");
    document.addEventListener("visibilitychange", on);
    return () => document.removeEventListener("visibilitychange", on);
  }, []);
  return v;
}

const connectionLabel: Record<Connection, string> = {
  online: "Online",
  connecting: "Connecting…",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

export function Messenger({ parley, account, screen }: { parley: Parley; account: Account; screen?: string }) {
  const [conn, setConn] = useState<Connection>(() => parley.connection());
  const [connError, setConnError] = useState("");
  const [convs, setConvs] = useState<Conversation[] | null>(null);
  const [selected, setSelected] = useState(peerFromHash);
  const [focusComposer, setFocusComposer] = useState(false);
  const [filter, setFilter] = useState("");
  const [announcement, setAnnouncement] = useState("");
  const [theme, setThemeState] = useState(currentTheme);
  const narrow = useMedia(narrowQuery);
  const visible = useVisible();
  const [settings, setSettings] = useState(false);
  const calls = useMemo(() => {
    const c = new Calls(parley, callSettings);
    // Diagnostics (and the end-to-end tests): the current call's statistics.
    (globalThis as { parleyCalls?: Calls }).parleyCalls = c;
    return c;
  }, [parley]);
  const call = useCall(calls);

  const [listError, setListError] = useState("");
  const refresh = useCoalesced(async () => {
    try {
      setConvs(await parley.conversations());
      setListError("");
    } catch (e) {
      setListError(errorText(e));
      setConvs((c) => c ?? []);
    }
  });

  useEffect(() => {
    refresh();
    const off = parley.onEvent((e) => {
      switch (e.type) {
        case "connection":
          setConn(e.state);
          setConnError(e.error ?? "");
          break;
        case "message":
          if (!e.message.outgoing && !e.message.notice) setAnnouncement(`New message from ${e.message.peer}: ${e.message.text}`);
          refresh();
          break;
        default:
          refresh();
      }
    });
    // The state may have changed between the first render and subscribing.
    setConn(parley.connection());
    return off;
  }, []);

  // Interactive once the list is there (the end-to-end tests wait for this).
  const loaded = convs !== null;
  useEffect(() => {
    if (!loaded) return;
    document.body.dataset.ready = "true";
    return () => {
      delete document.body.dataset.ready;
    };
  }, [loaded]);

  const unreadTotal = (convs ?? []).reduce((n, c) => n + c.unread, 0);
  useEffect(() => {
    document.title = unreadTotal ? `(${unreadTotal}) Parley` : "Parley";
  }, [unreadTotal]);

  useEffect(() => onSystemThemeChange(() => setThemeState(currentTheme())), []);

  // Which conversation is open lives in the URL's hash.
  useEffect(() => {
    const on = () => setSelected(peerFromHash());
    addEventListener("popstate", on);
    return () => removeEventListener("popstate", on);
  }, []);

  const open = (peer: string, focus: boolean) => {
    setFocusComposer(focus);
    if (peer === selected) {
      if (focus) document.getElementById("composer")?.focus();
      return;
    }
    const url = "#" + encodeURIComponent(peer);
    if (selected) history.replaceState(history.state, "", url);
    else history.pushState({ parley: "conversation" }, "", url);
    setSelected(peer);
  };

  const back = () => {
    if (!selected) return;
    if ((history.state as { parley?: string } | null)?.parley === "conversation") history.back();
    else {
      history.replaceState(null, "", location.pathname + location.search);
      setSelected("");
    }
  };

  // Leaving a conversation on a phone puts the focus back on its list item.
  const prevSelected = useRef(selected);
  useEffect(() => {
    const prev = prevSelected.current;
    prevSelected.current = selected;
    if (!selected && prev) document.querySelector<HTMLElement>(`.conversation[data-peer="${prev}"]`)?.focus();
  }, [selected]);

  // Escape goes back to the list on a phone (dialogs handle their own).
  useEffect(() => {
    const on = (e: KeyboardEvent) => {
      if (e.key !== "Escape" || e.defaultPrevented || !narrowQuery.matches) return;
      if (document.querySelector("dialog[open]")) return;
      back();
    };
    document.addEventListener("keydown", on);
    return () => document.removeEventListener("keydown", on);
  });

  const toggleTheme = () => {
    const next = theme === "dark" ? "light" : "dark";
    setTheme(next);
    setThemeState(next);
  };

  const conversation = convs?.find((c) => c.peer === selected);
  const reading = selected && visible ? selected : "";

  return (
    <div class="shell">
      <header class="topbar">
        <div class="brand">
          <Logo size={26} />
          <span class="hide-narrow">Parley</span>
        </div>
        <span class="spacer" />
        <span
          id="connection"
          data-state={conn}
          role="status"
          title={connError ? `${connectionLabel[conn]} — ${connError}` : connectionLabel[conn]}
        >
          <span class="dot" aria-hidden="true" />
          <span class="label">{connectionLabel[conn]}</span>
        </span>
        <span class="me" title={`Signed in as ${account.user} (device ${account.device}) on ${account.server}`}>
          <Avatar name={account.user} />
          <span id="account-name" class="me-name">
            {account.user}
          </span>
        </span>
        <button
          type="button"
          id="theme-toggle"
          class="icon-button"
          onClick={toggleTheme}
          aria-label={theme === "dark" ? "Use the light theme" : "Use the dark theme"}
          title={theme === "dark" ? "Light theme" : "Dark theme"}
        >
          {theme === "dark" ? <Sun size={19} /> : <Moon size={19} />}
        </button>
        <button type="button" id="settings-button" class="icon-button" onClick={() => setSettings(true)} aria-label="Settings" title="Settings">
          <Gear size={19} />
        </button>
      </header>
      {call && <CallScreen calls={calls} view={call} />}
      {settings && <SettingsDialog onClose={() => setSettings(false)} />}

      {conn === "offline" && connError && (
        <p class="connection-banner" role="alert">
          Not connected: {connError}
        </p>
      )}
      <div class="main" data-view={selected ? "conversation" : "list"}>
        <div class="sidebar">
          <NewConversation me={account.user} filter={filter} onFilter={setFilter} onOpen={(p) => open(p, true)} />
          {listError && <p class="error-text list-error">Could not load the conversations: {listError}</p>}
          <ConversationList
            conversations={convs}
            selected={selected}
            filter={filter}
            reading={reading}
            onOpen={(p) => open(p, !narrow)}
          />
        </div>
        <main class="pane">
          {selected ? (
            <ConversationView
              key={selected}
              parley={parley}
              peer={selected}
              conversation={conversation}
              reading={!!reading}
              focus={focusComposer || !narrow}
              openSafety={screen === "safety"}
              onBack={back}
              onChanged={refresh}
              onCall={conn === "online" && (!call || call.phase === "ended") ? () => void calls.dial(selected) : undefined}
            />
          ) : (
            <div class="pane-empty">
              <Logo size={56} />
              <h2>Parley</h2>
              <p class="muted">Choose a conversation, or type a username under “New conversation” to start one.</p>
              <p class="muted small">
                <Lock size={14} /> Messages are end-to-end encrypted.
              </p>
            </div>
          )}
        </main>
      </div>

      <div class="sr-only" aria-live="polite" aria-atomic="true">
        {announcement}
      </div>
    </div>
  );
}
