// A modal dialog with a title and a close button: Escape, the button or a
// click on the backdrop close it, and the focus goes back to what opened it
// (or, if that is gone, to the composer).

import type { ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";

interface Props {
  id?: string;
  title: ComponentChildren;
  /** Extra class of the body, e.g. "safety". */
  kind?: string;
  onClose: () => void;
  children: ComponentChildren;
}

let nextTitle = 0;

export function Dialog({ id, title, kind, onClose, children }: Props) {
  const dialog = useRef<HTMLDialogElement>(null);
  const titleId = useRef(`dialog-title-${++nextTitle}`).current;
  useEffect(() => {
    const d = dialog.current!;
    const opener = document.activeElement as HTMLElement | null;
    if (!d.open) d.showModal();
    return () => {
      if (d.open) d.close();
      (opener?.isConnected ? opener : document.getElementById("composer"))?.focus();
    };
  }, []);
  return (
    <dialog
      ref={dialog}
      id={id}
      class="dialog"
      aria-labelledby={titleId}
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
      onClick={(e) => e.target === dialog.current && onClose()}
    >
      <div class={kind ? `dialog-body ${kind}` : "dialog-body"}>
        <header class="dialog-header">
          <h2 id={titleId}>{title}</h2>
          <button type="button" class="icon-button" aria-label="Close" title="Close (Esc)" onClick={onClose}>
            <span aria-hidden="true" class="close-x">
              ×
            </span>
          </button>
        </header>
        {children}
      </div>
    </dialog>
  );
}
