// Package web is Parley's web client, served by parleyd at its root URL.
//
// The protocol core is package client compiled to WebAssembly (web/wasm,
// over the IndexedDB store in web/idbstore); the user interface is
// TypeScript and Preact (web/src, the contract between the two in
// web/src/api.ts), bundled by esbuild (web/build.mjs). Dist holds the
// result, embedded in parleyd: index.html, app.js and app.css are built
// from web/src and committed, so that building parleyd needs Go alone;
// parley.wasm and Go's wasm_exec.js are made by `make` (make web).
package web

import (
	"embed"
	"io/fs"
)

//go:embed dist
var dist embed.FS

// Dist returns the web client's files, index.html at the top.
func Dist() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // "dist" is a valid path
	}
	return sub
}
