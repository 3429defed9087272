// Go's wasm_exec.js (copied into dist by the Makefile) defines the global Go
// class that runs a Go program compiled to WebAssembly.
declare class Go {
  importObject: WebAssembly.Imports;
  /** Runs the program; resolves when it exits. */
  run(instance: WebAssembly.Instance): Promise<void>;
}
