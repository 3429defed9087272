# Parley: `make run` starts the server on the embedded default, `make test`
# runs every test. See README.md.

GO      ?= go
DATA    ?= ./parley-data
LISTEN  ?= 127.0.0.1:8080
NODEDIR := signal/signaltest/node

WASMDIR  = $(shell $(GO) env GOROOT)/lib/wasm
IDBTEST := web/idbstore/testdata

.PHONY: run build web web-ui test test-wasm test-web interop-deps vet bench load clean lab-test lab-report lab-long

run: build
	./bin/parleyd --listen $(LISTEN) --data $(DATA)

build: web
	$(GO) build -o bin/ ./cmd/...

# The web client's protocol core: package client compiled to WebAssembly,
# with Go's loader beside it. parleyd embeds web/dist, so build this first.
web:
	GOOS=js GOARCH=wasm $(GO) build -trimpath -ldflags="-s -w" -o web/dist/parley.wasm ./web/wasm
	gzip -9 -n -k -f web/dist/parley.wasm
	cp $(WASMDIR)/wasm_exec.js web/dist/wasm_exec.js

# The web client's interface (TypeScript, needs Node): rebuilds the committed
# web/dist/{index.html,app.js,app.css}. Run it after changing web/src.
web-ui:
	cd web && npm ci --no-audit --no-fund --loglevel=error && npm run check && npm run build

# The interop tests drive the reference libsignal through Node 20; without
# node/npm they are skipped with a message saying so (and fail under CI=true).
interop-deps:
	@if command -v npm >/dev/null 2>&1; then \
		cd $(NODEDIR) && npm ci --no-audit --no-fund --loglevel=error; \
	else \
		echo "npm not found: the libsignal interop tests will be skipped (apt-get install nodejs npm)"; \
	fi

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Every benchmark runs once so that none rots; then the tests.
test: interop-deps web vet test-web test-wasm
	@echo "go test -bench . -benchtime 1x (each benchmark once)"
	@$(GO) test -run '^$$' -bench . -benchtime 1x ./... >bench-smoke.log 2>&1 || { cat bench-smoke.log; rm -f bench-smoke.log; exit 1; }; rm -f bench-smoke.log
	$(GO) test -timeout 30m ./...

# The web client's interface type-checks, and the committed build is what
# web/src makes (skipped, saying so, without npm; CI=true fails instead).
test-web:
	@if command -v npm >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory web-ui && git diff --exit-code --stat -- web/dist \
		|| { echo "web/dist is stale: run make web-ui and commit the result"; exit 1; }; \
	elif [ "$$CI" = true ]; then echo "npm not found: cannot check the web client's build"; exit 1; \
	else echo "npm not found: skipping the check of the web client's build (apt-get install nodejs npm)"; fi

# The IndexedDB store's tests run under Node (Go's js/wasm runner) with a
# fake IndexedDB from npm; without them the tests skip and say why.
test-wasm:
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix $(IDBTEST) --no-audit --no-fund --loglevel=error; fi
	@if command -v node >/dev/null 2>&1; then \
		GOOS=js GOARCH=wasm $(GO) test -exec=$(WASMDIR)/go_js_wasm_exec ./web/idbstore/ && \
		GOOS=js GOARCH=wasm $(GO) test -exec=$(WASMDIR)/go_js_wasm_exec -run '^$$' -bench . -benchtime 1x ./web/idbstore/ >/dev/null; \
	elif [ "$$CI" = true ]; then echo "node not found: cannot run the IndexedDB store's tests"; exit 1; \
	else echo "node not found: skipping the IndexedDB store's tests (apt-get install nodejs npm)"; fi

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The hostile-network lab (package lab/netlab): namespaces, a censor and its
# profiles. Needs root, iproute2 and iptables; otherwise its tests skip and
# say why (CI=true fails them instead).
lab-test:
	$(GO) test -timeout 30m ./lab/...

# The lab's report: every profile, calls of 15 s, 2 runs each (medians), CLI
# and browser tiers; writes docs/lab-report.{md,json,svg}. Needs root,
# espeak-ng, opus-tools and chromium. About 20 minutes.
lab-report: build
	./bin/parley-lab --bin bin --out docs --runs 2 --call 15s

# The tunnel's long calls that its targets ask for: 5 minutes under
# rate-32k, 10 under tcp-freeze-16k (one run, no browser tier); writes
# docs/lab-long/lab-report.{md,json,svg}. About 20 minutes.
lab-long: build
	mkdir -p docs/lab-long
	./bin/parley-lab --bin bin --out docs/lab-long --profiles rate-32k,tcp-freeze-16k --runs 1 --call 15s --long --chromium none

# The server's capacity, measured the way messaging servers are: parleyd on
# core 0, the load on core 1; 100 and 500 pairs with rising rates (20 s
# steps), then 10,000 idle devices. About 10 minutes. See package load.
load: build
	./bin/parley-load --pairs 100 --start 2000 --step-rate 2000 --max 30000 --stop-p99 500ms
	./bin/parley-load --pairs 500 --start 2000 --step-rate 2000 --max 30000 --stop-p99 500ms
	./bin/parley-load --idle 10000

clean:
	rm -rf bin web/dist/parley.wasm web/dist/parley.wasm.gz web/dist/wasm_exec.js

# The TURN relay's capacity: parleyd's relay and Debian's coturn in turn
# (twice each, alternating), pinned to core 0 with the load on core 1 and
# both at nice -10 so that other programs disturb them less; calls climb
# until loss > 1%, p99 > 100 ms or the core is full. About 10 minutes.
# Without coturn's turnserver (apt-get install coturn) only parleyd runs.
.PHONY: load-turn
load-turn: build
	@if command -v turnserver >/dev/null 2>&1; then servers=parleyd,coturn; \
	else echo "turnserver not found: parleyd only (apt-get install coturn)"; servers=parleyd; fi; \
	./bin/parley-load --turn $$servers --rounds 2 --nice -10
