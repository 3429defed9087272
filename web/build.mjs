// Builds the web UI into dist/: app.js and app.css (minified, fixed names, no
// hashes, no source maps, so the committed output is the same on every
// machine) and index.html (copied). dist/wasm_exec.js and dist/parley.wasm are
// not made here; the Makefile puts them beside these files.
//
//   node build.mjs          build once
//   node build.mjs --watch  rebuild on every change (development)
import * as esbuild from "esbuild";
import { copyFile, mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");

/** @type {import("esbuild").BuildOptions} */
const options = {
  entryPoints: [join(here, "src/main.tsx")],
  outfile: join(dist, "app.js"), // the imported CSS goes to dist/app.css
  bundle: true,
  format: "esm",
  target: ["chrome123", "firefox120", "safari17.5"], // CSS light-dark() needs these
  minify: true,
  charset: "utf8",
  legalComments: "eof", // licences, if a dependency has any
  jsx: "automatic",
  jsxImportSource: "preact",
  sourcemap: false,
  logLevel: "info",
};

await mkdir(dist, { recursive: true });
await copyFile(join(here, "index.html"), join(dist, "index.html"));

if (process.argv.includes("--watch")) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  await esbuild.build(options);
}
