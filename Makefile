# snomprov build and test tasks. `make run` and `make test` are the two a
# newcomer needs; see README.md.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/snomprov
export CGO_ENABLED := 0

.PHONY: build run test test-short vet fmt cross clean

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/snomprov

# Runs the appliance on its embedded defaults: HTTP on an unprivileged port,
# PnP recording phones without answering them, DHCP off.
run: build
	./$(BIN) serve

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Every test. Namespace tests need root; they skip without it (and fail under CI=true).
test: vet build
	$(GO) test -count=1 -timeout 20m ./...

test-short:
	$(GO) test -short ./...

cross:
	GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/amd64/snomprov ./cmd/snomprov
	GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/arm64/snomprov ./cmd/snomprov
	GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/armhf/snomprov ./cmd/snomprov

clean:
	rm -rf bin dist
