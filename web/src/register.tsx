// The welcome screen: pick a username; the core makes this device's keys and
// registers it on this server (location.origin).

import { useEffect, useRef, useState } from "preact/hooks";
import type { Account, Parley } from "./api";
import { errorText, sentence, usernameRule } from "./format";
import { Logo, ShieldCheck } from "./icons";

export function Register({ parley, onDone }: { parley: Parley; onDone: (a: Account) => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const input = useRef<HTMLInputElement>(null);

  useEffect(() => {
    document.body.dataset.ready = "true";
    input.current?.focus();
    return () => {
      delete document.body.dataset.ready;
    };
  }, []);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (busy) return;
    const name = (input.current?.value ?? "").trim();
    // The server checks the rule and says what is wrong; only an empty
    // field is answered here.
    if (!name) {
      setError("Choose a username.");
      input.current?.focus();
      return;
    }
    setError("");
    setBusy(true);
    try {
      const account = await parley.register(location.origin, name);
      onDone(account);
    } catch (err) {
      setError(sentence(errorText(err)));
      setBusy(false);
      setTimeout(() => input.current?.focus());
    }
  };

  return (
    <div class="screen center welcome">
      <form class="card register" onSubmit={submit} aria-busy={busy} noValidate>
        <Logo size={48} />
        <h1>Welcome to Parley</h1>
        <p class="muted">
          Private messages, end-to-end encrypted. Create an account on <strong>{location.host}</strong>.
        </p>
        <label for="register-username">Username</label>
        <input
          id="register-username"
          ref={input}
          name="username"
          type="text"
          autoComplete="username"
          autoCapitalize="none"
          autoCorrect="off"
          spellcheck={false}
          maxLength={64}
          placeholder="e.g. alice"
          disabled={busy}
          aria-invalid={error ? true : undefined}
          aria-describedby="register-hint register-error"
        />
        <small id="register-hint" class="muted">
          {usernameRule}
        </small>
        <p id="register-error" class="error-text" role="alert">
          {error}
        </p>
        <button id="register-submit" class="button primary wide" type="submit" disabled={busy}>
          {busy ? (
            <>
              <span class="spinner small" aria-hidden="true" /> Creating your keys…
            </>
          ) : (
            "Create account"
          )}
        </button>
        <p class="fine-print">
          <ShieldCheck size={16} /> Your keys are made here and never leave this device
        </p>
      </form>
    </div>
  );
}
