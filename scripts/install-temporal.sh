#!/usr/bin/env bash
# Installs the pinned Temporal CLI (dev server + Web UI) with `go install`, unless already present.
set -euo pipefail
VERSION=v1.5.1
BIN="$(go env GOPATH)/bin/temporal"
if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "${VERSION#v}"; then echo "temporal ${VERSION} present: $BIN"; exit 0; fi
go install "github.com/temporalio/cli/cmd/temporal@${VERSION}"
"$BIN" --version
