// The top of the UI: starts the core and shows whichever screen fits —
// loading, a load error, "open in another tab", registration, or the
// messenger itself.

import { useEffect, useState } from "preact/hooks";
import type { Account, Parley } from "./api";
import { LoadError, loadCore } from "./boot";
import { errorKind, errorText, sentence } from "./format";
import { Lock, Logo, Warning } from "./icons";
import { Messenger } from "./messenger";
import { Register } from "./register";

type Phase =
  | { name: "loading"; step: string; loaded: number; total: number }
  | { name: "error"; message: string; hint: string }
  | { name: "locked" }
  | { name: "register"; parley: Parley }
  | { name: "main"; parley: Parley; account: Account };

export interface AppProps {
  /** Replaces the wasm core (the ?mock development mode). */
  mock?: Parley;
  /** The mock's starting screen, e.g. "error" or "loading". */
  screen?: string;
}

export function App({ mock, screen }: AppProps) {
  const [phase, setPhase] = useState<Phase>({ name: "loading", step: "Loading Parley…", loaded: 0, total: 0 });

  useEffect(() => {
    let cancelled = false;
    const set = (ph: Phase) => !cancelled && setPhase(ph);
    const fatal = (e: unknown) =>
      set({
        name: "error",
        message: errorText(e),
        hint: e instanceof LoadError ? e.hint : "Reload the page. If it happens again, the browser's developer console has the details.",
      });

    (async () => {
      let parley: Parley;
      if (mock) {
        if (screen === "loading") return set({ name: "loading", step: "Loading Parley…", loaded: 3_400_000, total: 9_100_000 });
        if (screen === "error") throw new LoadError("Could not download parley.wasm: HTTP 404 Not Found", "The server was probably built without the web client. Build it with `make`, restart parleyd, then reload this page.");
        parley = mock;
      } else {
        let frame = 0;
        const core = await loadCore("parley.wasm", (loaded, total) => {
          if (frame) return;
          frame = requestAnimationFrame(() => {
            frame = 0;
            set({ name: "loading", step: "Loading Parley…", loaded, total });
          });
        });
        cancelAnimationFrame(frame);
        frame = 0;
        parley = core.parley;
        core.exited.then(() =>
          fatal(new LoadError("Parley's protocol core stopped.", "Its error is in the browser's developer console. Reload the page to start it again.")),
        );
        set({ name: "loading", step: "Opening local storage…", loaded: 0, total: 0 });
      }
      let account: Account | null;
      try {
        account = await parley.open();
      } catch (e) {
        if (errorKind(e) === "locked") return set({ name: "locked" });
        throw e;
      }
      if (!account) return set({ name: "register", parley });
      parley.start();
      set({ name: "main", parley, account });
    })().catch(fatal);

    return () => {
      cancelled = true;
    };
  }, []);

  switch (phase.name) {
    case "loading":
      return <Loading {...phase} />;
    case "error":
      return <LoadFailed message={phase.message} hint={phase.hint} />;
    case "locked":
      return <Locked />;
    case "register":
      return <Register parley={phase.parley} onDone={(account) => setPhase({ name: "main", parley: phase.parley, account })} />;
    case "main":
      return <Messenger parley={phase.parley} account={phase.account} screen={screen} />;
  }
}

function mb(n: number): string {
  return (n / 1e6).toFixed(1) + " MB";
}

function Loading({ step, loaded, total }: { step: string; loaded: number; total: number }) {
  const pct = total && loaded <= total ? Math.round((loaded / total) * 100) : null;
  return (
    <div class="screen splash" role="status" aria-live="polite">
      <div class="spinner" aria-hidden="true" />
      <p>{step}</p>
      {loaded > 0 && (
        <div class="progress-wrap">
          <div
            class={pct === null ? "progress indeterminate" : "progress"}
            role="progressbar"
            aria-label="Downloading the protocol core"
            aria-valuemin={0}
            aria-valuemax={100}
            aria-valuenow={pct ?? undefined}
          >
            <span style={pct === null ? undefined : { width: `${pct}%` }} />
          </div>
          <small class="muted">{pct === null ? mb(loaded) : `${mb(loaded)} of ${mb(total)}`}</small>
        </div>
      )}
    </div>
  );
}

function LoadFailed({ message, hint }: { message: string; hint: string }) {
  return (
    <div class="screen center">
      <div id="load-error" class="card notice-card" role="alert">
        <span class="big-icon danger">
          <Warning size={28} />
        </span>
        <h1>Parley could not start</h1>
        <p class="error-text">{sentence(message)}</p>
        <p class="muted">{formatHint(hint)}</p>
        <button class="button primary" onClick={() => location.reload()}>
          Reload
        </button>
      </div>
    </div>
  );
}

/** Shows `code` spans for text between backticks. */
function formatHint(hint: string) {
  return hint.split("`").map((part, i) => (i % 2 ? <code>{part}</code> : part));
}

function Locked() {
  return (
    <div class="screen center">
      <div id="locked" class="card notice-card" role="alert">
        <span class="big-icon">
          <Lock size={28} />
        </span>
        <h1>Parley is open in another tab</h1>
        <p class="muted">
          Parley can run in only one tab of this browser at a time, so that your keys and messages stay consistent. Close the other tab, or
          switch to it. To use this tab instead, close the other one and press Retry.
        </p>
        <button class="button primary" id="locked-retry" onClick={() => location.reload()} autoFocus>
          Retry
        </button>
      </div>
      <div class="brand-foot">
        <Logo size={20} /> Parley
      </div>
    </div>
  );
}
