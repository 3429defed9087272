// The safety number dialog: the 60 digits, the QR code, and the verified
// toggle.

import { useEffect, useState } from "preact/hooks";
import type { Parley, SafetyNumber } from "./api";
import { Dialog } from "./dialog";
import { digitGroups, errorText } from "./format";
import { ShieldCheck, Warning } from "./icons";

interface Props {
  parley: Parley;
  peer: string;
  changed: boolean;
  onClose: () => void;
  onChanged: () => void;
}

export function SafetyDialog({ parley, peer, changed, onClose, onChanged }: Props) {
  const [sn, setSn] = useState<SafetyNumber | null>(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  const load = () => {
    setError("");
    parley.safetyNumber(peer).then(setSn, (e) => setError(errorText(e)));
  };
  useEffect(load, []);

  const toggle = async () => {
    if (!sn || busy) return;
    setBusy(true);
    setError("");
    try {
      await parley.setVerified(peer, !sn.verified);
      setSn({ ...sn, verified: !sn.verified });
      onChanged();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog title={`Safety number with ${peer}`} kind="safety" onClose={onClose}>
      {changed && (
        <p class="banner warning small">
          <Warning size={16} /> This number changed recently. Compare it again before you trust new messages.
        </p>
      )}
      <p class="muted">
        Compare these numbers with the ones on {peer}’s device, in person or over a call you trust, or scan the code. If they match, no one
        is in the middle of your conversation.
      </p>
      {sn ? (
        <>
          <div id="safety-digits" class="digits">
            {digitGroups(sn.digits).map((g, i) => (
              <span key={i}>{g}</span>
            ))}
          </div>
          <img class="qr" src={sn.qr} width={176} height={176} alt={`QR code of the safety number with ${peer}`} />
          <p class={sn.verified ? "verified-state yes" : "verified-state"}>
            {sn.verified ? (
              <>
                <ShieldCheck size={16} /> You marked {peer} as verified.
              </>
            ) : (
              `${peer} is not verified.`
            )}
          </p>
          {error && (
            <p class="error-text" role="alert">
              {error}
            </p>
          )}
          <div class="dialog-actions">
            <button
              type="button"
              id="verify-toggle"
              class={sn.verified ? "button" : "button primary"}
              disabled={busy}
              onClick={toggle}
            >
              {sn.verified ? "Clear verification" : "Mark as verified"}
            </button>
          </div>
        </>
      ) : error ? (
        <div class="dialog-actions column">
          <p class="error-text" role="alert">
            Could not get the safety number: {error}
          </p>
          <button type="button" class="button" onClick={load}>
            Try again
          </button>
        </div>
      ) : (
        <p class="muted center-text">
          <span class="spinner small" aria-hidden="true" /> Getting {peer}’s keys…
        </p>
      )}
    </Dialog>
  );
}
