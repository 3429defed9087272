# Parley: `make run` starts the server on the embedded default, `make test`
# runs every test. See README.md.

GO      ?= go
DATA    ?= ./parley-data
LISTEN  ?= 127.0.0.1:8080
NODEDIR := signal/signaltest/node

.PHONY: run build test interop-deps vet bench load clean

run: build
	./bin/parleyd --listen $(LISTEN) --data $(DATA)

build:
	$(GO) build -o bin/ ./cmd/...

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
test: interop-deps vet
	@echo "go test -bench . -benchtime 1x (each benchmark once)"
	@$(GO) test -run '^$$' -bench . -benchtime 1x ./... >bench-smoke.log 2>&1 || { cat bench-smoke.log; rm -f bench-smoke.log; exit 1; }; rm -f bench-smoke.log
	$(GO) test ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The server's capacity, measured the way messaging servers are: parleyd on
# core 0, the load on core 1; 100 and 500 pairs with rising rates (20 s
# steps), then 10,000 idle devices. About 10 minutes. See package load.
load: build
	./bin/parley-load --pairs 100 --start 2000 --step-rate 2000 --max 30000 --stop-p99 500ms
	./bin/parley-load --pairs 500 --start 2000 --step-rate 2000 --max 30000 --stop-p99 500ms
	./bin/parley-load --idle 10000

clean:
	rm -rf bin
