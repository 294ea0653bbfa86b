# crsub — build, test, demo, benchmark. Nothing is vendored; Go modules come
# from the module proxy and the C test subjects are built with the system cc.

GO      ?= go
BIN     := bin/crsub
CRSUB   := $(abspath $(BIN))
GOFLAGS ?=
export GOFLAGS

.PHONY: all build test vet unit kselftest deps bench demo clean fuzz zdtm soak

all: build

build: $(BIN)

# Always rebuild: Go's own cache makes an unchanged build cheap.
$(BIN): FORCE
	$(GO) build -o $(BIN) ./cmd/crsub
FORCE:

vet:
	$(GO) vet ./...

# The fault injection sweeps (docs/reliability.md) need the faultinject
# build tag; without it the hooks compile to nothing.
unit: deps
	$(GO) test -count=1 ./...
	$(GO) test -count=1 -tags faultinject ./internal/fault
	$(GO) test -count=1 -tags faultinject -run 'TestFaults$$|TestNamespaceFaults$$|TestSubstituteFaults$$|TestSample$$|TestMatrixWithin$$' ./cmd/crsub

kselftest: build deps
	$(MAKE) -C kselftest-style run_tests CRSUB=$(CRSUB)

# nft holds TCP connections still between checkpoint and restart (the TCP
# tests of unit and kselftest need it, so both depend on deps);
# redis-server, nginx and tmux are subjects. From Debian's
# packages, installed only if missing; their system services are stopped.
deps:
	@if ! command -v nft >/dev/null 2>&1 || ! command -v redis-server >/dev/null 2>&1 || ! command -v nginx >/dev/null 2>&1 || ! command -v tmux >/dev/null 2>&1; then \
		apt-get update -qq && apt-get install -y -qq nftables redis-server nginx-light tmux; \
		for s in redis-server nginx; do systemctl disable --now $$s >/dev/null 2>&1 || service $$s stop >/dev/null 2>&1 || true; done; \
	fi

test: vet unit kselftest

# Fuzzing of every decoder and parser (not part of test): each Fuzz target
# of every package for FUZZTIME (make fuzz FUZZTIME=10m).
FUZZTIME ?= 30s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$target"; \
			$(GO) test -run='^$$' -fuzz="^$$target\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s $$pkg; \
		done; \
	done

# CRIU's zdtm static tests through crsub (not part of test; the suite is
# not vendored): make zdtm ZDTM_STATIC=/path/to/criu/test/zdtm/static
# [ZDTM_TESTS="env00 pipe00"] [ZDTM_ARGS="--iters 3"]. See docs/zdtm.md.
ZDTM_STATIC ?=
ZDTM_TESTS  ?=
ZDTM_ARGS   ?=
zdtm: build
	@test -n "$(ZDTM_STATIC)" || { echo "make zdtm: set ZDTM_STATIC to CRIU's built test/zdtm/static directory" >&2; exit 2; }
	$(GO) build -o bin/zdtm ./internal/zdtm/cmd/zdtm
	./bin/zdtm --static "$(ZDTM_STATIC)" --crsub $(CRSUB) $(ZDTM_ARGS) $(ZDTM_TESTS)

# An echo server under load, checkpointed and restarted CYCLES times, then
# the same with a --leave-running snapshot before each checkpoint; the
# client checks every byte (not part of test: too long). In a network
# namespace of its own, so that its ports and network lock touch nothing
# else. See docs/reliability.md.
CYCLES ?= 100
soak: build deps
	unshare --net sh -c 'ip link set lo up && CRSUB=$(CRSUB) CRSUB_SOAK_CYCLES=$(CYCLES) $(GO) test -tags soak -run "^TestSoak$$" -count=1 -timeout 0 -v ./cmd/crsub'

bench: build
	$(GO) test -run='^$$' -bench=. -benchtime=1x ./...

demo: build
	./scripts/demo.sh $(CRSUB)

clean:
	rm -rf bin
	$(MAKE) -C kselftest-style clean
