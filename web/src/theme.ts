// Light and dark themes: the system's preference unless the person chose one
// with the header's toggle (kept in localStorage). CSS reads
// <html data-theme>, see style.css.

export type Theme = "light" | "dark";

const key = "parley-theme";
const dark = matchMedia("(prefers-color-scheme: dark)");
let chosen: Theme | null = null; // when localStorage cannot be used

function stored(): Theme | null {
  try {
    const v = localStorage.getItem(key);
    return v === "light" || v === "dark" ? v : null;
  } catch {
    return chosen;
  }
}

/** The theme in effect now. */
export function currentTheme(): Theme {
  return stored() ?? (dark.matches ? "dark" : "light");
}

function apply(): void {
  const t = stored();
  if (t) document.documentElement.dataset.theme = t;
  else delete document.documentElement.dataset.theme;
}

/** Applies the stored choice; call once before the first render. */
export function initTheme(): void {
  apply();
}

/** Overrides the system's preference from now on. */
export function setTheme(t: Theme): void {
  chosen = t;
  try {
    localStorage.setItem(key, t);
  } catch {
    // private mode: the choice lasts for this page only
  }
  document.documentElement.dataset.theme = t;
}

/** Calls cb when the system's preference changes. */
export function onSystemThemeChange(cb: () => void): () => void {
  dark.addEventListener("change", cb);
  return () => dark.removeEventListener("change", cb);
}
