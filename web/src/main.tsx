// Entry point: applies the theme and renders the app into #app. With ?mock in
// the URL the UI runs on an in-memory core (mock.ts) instead of parley.wasm;
// &screen=register|chat|changed|safety|incoming|locked|error|loading starts it in a
// given state.

import { render } from "preact";
import { App } from "./app";
import { createMock } from "./mock";
import { initTheme } from "./theme";
import "./style.css";

initTheme();

const params = new URLSearchParams(location.search);
let mock;
let screen: string | undefined;
if (params.has("mock")) {
  screen = params.get("screen") ?? "";
  if (screen === "chat" || screen === "safety" || screen === "incoming") history.replaceState(null, "", "#bob");
  if (screen === "changed") history.replaceState(null, "", "#carol");
  mock = createMock(screen);
}

const root = document.getElementById("app")!;
root.textContent = ""; // the static "Loading Parley…" from index.html
render(<App mock={mock} screen={screen} />, root);
