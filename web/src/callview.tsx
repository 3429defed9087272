// The call screen (incoming, calling, in a call, and how it ended) and the
// settings dialog with the "relay only" and "tunnel" choices. The logic is in call.ts.

import { useEffect, useRef, useState } from "preact/hooks";
import { type CallView, type Calls, type Quality, duration } from "./call";
import { Dialog } from "./dialog";
import { Lock, Mic, MicOff, Phone, PhoneDown } from "./icons";
import { Avatar } from "./list";

/** The current call, kept in step with calls. */
export function useCall(calls: Calls): CallView | null {
  const [v, setV] = useState(() => calls.view());
  useEffect(() => calls.subscribe(setV), [calls]);
  return v;
}

const qualityLabel: Record<Quality, string> = {
  good: "Good connection",
  fair: "Fair connection",
  poor: "Poor connection",
  unknown: "Checking the connection…",
};

function status(v: CallView, now: number): string {
  switch (v.phase) {
    case "calling":
      return "Calling…";
    case "ringing":
      return "Incoming call";
    case "connecting":
      return "Connecting…";
    case "active":
      return duration(now - v.connectedAt);
    case "ended":
      return v.summary;
  }
}

export function CallScreen({ calls, view }: { calls: Calls; view: CallView }) {
  const [now, setNow] = useState(Date.now());
  const first = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (view.phase !== "active") return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [view.phase]);
  // The first button takes the focus when the call arrives (keyboard users
  // answer with Enter) — but not from someone typing a message.
  useEffect(() => {
    const typing = document.activeElement?.id === "composer";
    if (!typing) first.current?.focus();
  }, [view.id, view.phase === "ringing"]);

  const ringing = view.phase === "ringing";
  const ended = view.phase === "ended";
  const bars = { good: 3, fair: 2, poor: 1, unknown: 0 }[view.quality];
  return (
    <section
      id="call-screen"
      class={`call-screen ${view.phase}`}
      data-phase={view.phase}
      data-outcome={view.outcome ?? ""}
      role={ringing ? "alertdialog" : "region"}
      aria-label={ringing ? `Incoming call from ${view.peer}` : `Call with ${view.peer}`}
      aria-live="polite"
    >
      <div class="call-who">
        <Avatar name={view.peer} size="large" />
        <div>
          <h2>{view.peer}</h2>
          <p id="call-status" class={view.outcome === "failed" ? "error-text" : "muted"} role="status">
            {status(view, now)}
          </p>
        </div>
      </div>
      {view.phase === "active" && (
        <p id="call-quality" class={`call-quality ${view.quality}`} data-quality={view.quality} title={view.path ? `Path: ${view.path}` : undefined}>
          <span class="bars" aria-hidden="true">
            {[1, 2, 3].map((i) => (
              <span key={i} class={i <= bars ? "on" : ""} />
            ))}
          </span>
          {qualityLabel[view.quality]}
          {view.path && <span class="muted"> · {view.path}</span>}
        </p>
      )}
      {!ended && (
        <p class="call-e2e muted small">
          <Lock size={12} /> End-to-end encrypted
        </p>
      )}
      <div class="call-actions">
        {ringing ? (
          <>
            <button ref={first} type="button" id="call-accept" class="call-button accept" onClick={() => void calls.accept()}>
              <Phone size={22} />
              <span>Accept</span>
            </button>
            <button type="button" id="call-decline" class="call-button hangup" onClick={() => calls.decline()}>
              <PhoneDown size={22} />
              <span>Decline</span>
            </button>
          </>
        ) : ended ? (
          <button ref={first} type="button" id="call-dismiss" class="button small" onClick={() => calls.dismiss()}>
            Close
          </button>
        ) : (
          <>
            <button
              type="button"
              id="call-mute"
              class={view.muted ? "call-button toggled" : "call-button"}
              aria-pressed={view.muted}
              onClick={() => calls.setMuted(!view.muted)}
            >
              {view.muted ? <MicOff size={22} /> : <Mic size={22} />}
              <span>{view.muted ? "Unmute" : "Mute"}</span>
            </button>
            <button ref={first} type="button" id="call-hangup" class="call-button hangup" onClick={() => calls.hangup()}>
              <PhoneDown size={22} />
              <span>{view.phase === "calling" ? "Cancel" : "Hang up"}</span>
            </button>
          </>
        )}
      </div>
    </section>
  );
}

const relayKey = "parley-relay-only";
const tunnelKey = "parley-tunnel";
const raceKey = "parley-race";
/** Not in the dialog: keeps tunnel calls to one carrier ("websocket" or
 * "webtransport"), as the CLI's --carrier does, to diagnose a network. */
const carrierKey = "parley-tunnel-carrier";

/** The "relay only", "tunnel" and "race" settings, and the tunnel's carrier, per browser profile (one user per profile). */
export const callSettings = {
  race: () => localStorage.getItem(raceKey) !== "off",
  setRace: (on: boolean) => (on ? localStorage.removeItem(raceKey) : localStorage.setItem(raceKey, "off")),
  relayOnly: () => localStorage.getItem(relayKey) === "true",
  setRelayOnly: (on: boolean) => (on ? localStorage.setItem(relayKey, "true") : localStorage.removeItem(relayKey)),
  tunnel: () => localStorage.getItem(tunnelKey) === "true",
  setTunnel: (on: boolean) => (on ? localStorage.setItem(tunnelKey, "true") : localStorage.removeItem(tunnelKey)),
  carrier: () => localStorage.getItem(carrierKey) ?? "",
};

/** The settings dialog's switches, in order. */
const settingSwitches: SettingProps[] = [
  {
    id: "relay-only",
    get: callSettings.relayOnly,
    set: callSettings.setRelayOnly,
    title: "Relay calls through the server",
    help: "Hides your IP address from the people you call. Calls may sound slightly later. Applies to the next call.",
  },
  {
    id: "tunnel-calls",
    get: callSettings.tunnel,
    set: callSettings.setTunnel,
    title: "Carry calls through the server (tunnel)",
    help: "For networks that block ordinary calls: the audio goes, still end-to-end encrypted, over the same connection as your messages. Applies to calls you make.",
  },
  {
    id: "race-calls",
    get: callSettings.race,
    set: callSettings.setRace,
    title: "Keep calls going when the network changes",
    help: "Direct calls start through the server when a direct path is slow to come, and move to it when the direct path breaks, without hanging up. Applies to the next call.",
  },
];

export function SettingsDialog({ onClose }: { onClose: () => void }) {
  return (
    <Dialog id="settings" title="Settings" onClose={onClose}>
      {settingSwitches.map((p) => (
        <Setting key={p.id} {...p} />
      ))}
    </Dialog>
  );
}

interface SettingProps {
  id: string;
  get: () => boolean;
  set: (on: boolean) => void;
  title: string;
  help: string;
}

/** One switch of the settings dialog, kept by get and set. */
function Setting(p: SettingProps) {
  const [on, setOn] = useState(p.get);
  return (
    <label class="setting">
      <input
        type="checkbox"
        id={p.id}
        checked={on}
        onChange={(e) => {
          const v = (e.target as HTMLInputElement).checked;
          p.set(v);
          setOn(v);
        }}
      />
      <span>
        <strong>{p.title}</strong>
        <small class="muted">{p.help}</small>
      </span>
    </label>
  );
}
