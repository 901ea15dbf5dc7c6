# snomprov build and test tasks. `make run` and `make test` are the two a
# newcomer needs; see README.md.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/snomprov
export CGO_ENABLED := 0

.PHONY: build run test test-short vet fmt demo clean

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/snomprov

# Runs the appliance on its embedded defaults: HTTP on an unprivileged port,
# PnP recording phones without answering them, DHCP off.
run: build
	./$(BIN) serve

# test/browser is its own module (chromedp stays out of the product's
# go.mod): vet and test it too.
TESTMODS := test/browser

vet:
	$(GO) vet ./...
	@for m in $(TESTMODS); do (cd $$m && $(GO) vet ./...) || exit 1; done
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Every test. Namespace tests need root; they skip without it (and fail under CI=true).
test: vet build
	$(GO) test -count=1 -timeout 20m ./...
	@for m in $(TESTMODS); do (cd $$m && $(GO) test -count=1 -timeout 5m ./...) || exit 1; done

test-short:
	$(GO) test -short ./...

# The whole appliance on a private namespace LAN with simulated phones (root).
demo: build
	scripts/demo.sh

# --- Release artefacts: make cross, make deb, make test-packaging ---------
# Static (CGO_ENABLED=0) binaries for the three Debian architectures, and a
# .deb for each built with nfpm, pinned in tools/go.mod so its dependencies
# stay out of the product's go.mod.
DIST        ?= dist
DEB_ARCHES  ?= amd64 arm64 armhf
# Debian versions must start with a digit: v1.2.3-4-gabc1234 becomes
# 1.2.3+4+gabc1234; an untagged checkout becomes 0.0.0~git<hash>. Expanded
# once (:=), so a commit landing mid-build cannot give the file name and the
# control file different versions. `make deb DEB_VERSION=...` overrides it.
DEB_VERSION := $(shell echo '$(VERSION)' | sed -e 's/^v\([0-9]\)/\1/' -e '/^[0-9][0-9]*\./!s/^/0.0.0~git/' -e 's/-/+/g')
CONFFILE    ?= packaging/snomprov.toml
NFPM        := $(GO) tool -modfile=tools/go.mod nfpm
goenv_amd64 := GOARCH=amd64
goenv_arm64 := GOARCH=arm64
# ARMv7: Pi 2 and later on 32-bit Raspberry Pi OS. The Pi 1 and Zero need GOARM=6.
goenv_armhf := GOARCH=arm GOARM=7
# nfpm's name for Debian's armhf is arm7.
nfpmarch_amd64 := amd64
nfpmarch_arm64 := arm64
nfpmarch_armhf := arm7

.PHONY: cross deb test-packaging FORCE
.PRECIOUS: $(DIST)/%/snomprov

cross: $(foreach a,$(DEB_ARCHES),$(DIST)/$(a)/snomprov)

deb: $(foreach a,$(DEB_ARCHES),$(DIST)/snomprov_$(DEB_VERSION)_$(a).deb)

# go build is incremental, so always asking it is cheap and never stale.
$(DIST)/%/snomprov: FORCE
	GOOS=linux $(goenv_$*) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/snomprov

$(DIST)/snomprov_$(DEB_VERSION)_%.deb: $(DIST)/%/snomprov FORCE
	@test -f '$(CONFFILE)' || { echo "make deb: $(CONFFILE) is missing; it becomes /etc/snomprov/snomprov.toml (CONFFILE=path overrides)" >&2; exit 1; }
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || echo 0) \
	VERSION='$(DEB_VERSION)' NFPM_ARCH=$(nfpmarch_$*) DEB_ARCH=$* DIST='$(DIST)' CONFFILE='$(CONFFILE)' \
		$(NFPM) package --config packaging/nfpm.yaml --packager deb --target $@

# The unit checks and the install/remove/purge test in a debootstrap root
# (root only; `make test` runs them too).
test-packaging:
	$(GO) test -count=1 -v -timeout 15m ./systemd/ ./test/packaging/

clean:
	rm -rf bin dist
