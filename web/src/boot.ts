// Starting the protocol core: download parley.wasm (with progress), run it
// under Go's wasm_exec.js, and wait until it has set globalThis.parley.

import type { Parley } from "./api";

/** Why the core could not start, and what the person running the server can
 * do about it. */
export class LoadError extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

const rebuildHint =
  "The server was probably built without the web client. Build it with `make` " +
  "(which compiles web/wasm to parley.wasm and copies wasm_exec.js), restart parleyd, then reload this page.";

export interface Core {
  parley: Parley;
  /** Resolves when the Go program exits (it should not, while the page is open). */
  exited: Promise<void>;
}

export async function loadCore(
  url: string,
  progress: (loaded: number, total: number) => void,
): Promise<Core> {
  if (typeof WebAssembly !== "object") {
    throw new LoadError(
      "This browser cannot run WebAssembly.",
      "Use a current version of Chrome, Firefox, Safari or Edge, and check that WebAssembly is not turned off.",
    );
  }
  if (typeof Go !== "function") {
    throw new LoadError("wasm_exec.js did not load, so the protocol core cannot start.", rebuildHint);
  }

  let resp: Response;
  try {
    resp = await fetch(url);
  } catch (e) {
    throw new LoadError(`Could not download ${url}: ${(e as Error).message}`, "Check that the server is running and reachable, then reload.");
  }
  if (!resp.ok) {
    throw new LoadError(`Could not download ${url}: HTTP ${resp.status} ${resp.statusText}`.trim(), rebuildHint);
  }

  const total = Number(resp.headers.get("Content-Length")) || 0;
  let loaded = 0;
  progress(0, total);
  let body: BodyInit | null = resp.body;
  if (resp.body) {
    body = resp.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, out) {
          loaded += chunk.byteLength;
          progress(loaded, total);
          out.enqueue(chunk);
        },
      }),
    );
  }
  // A fresh Response with the right type, so streaming compilation works even
  // when the server sends another Content-Type.
  const counted = new Response(body, { headers: { "Content-Type": "application/wasm" } });

  const go = new Go();
  let instance: WebAssembly.Instance;
  try {
    instance = (await WebAssembly.instantiateStreaming(counted, go.importObject)).instance;
  } catch (e) {
    throw new LoadError(`${url} is not a usable WebAssembly module: ${(e as Error).message}`, rebuildHint);
  }

  // Listen before running: the program may announce itself at once.
  const ready = new Promise<Parley>((resolve) => {
    const done = () => {
      if (globalThis.parley) resolve(globalThis.parley);
    };
    window.addEventListener("parley-ready", done, { once: true });
    done();
  });
  const exited = go.run(instance);
  const early = exited.then((): never => {
    throw new LoadError(
      "The protocol core stopped while starting.",
      "Its error is in the browser's developer console. Reload the page; if it happens again, rebuild the server with `make`.",
    );
  });
  early.catch(() => {}); // seen by the race below, or by nobody once ready
  const parley = await Promise.race([ready, early]);
  return { parley, exited };
}
