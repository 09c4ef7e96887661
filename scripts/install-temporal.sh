#!/usr/bin/env bash
# Installs the pinned Temporal CLI (dev server + Web UI) into $(go env GOPATH)/bin with `go install`,
# unless that exact version is already there. CI caches $(go env GOPATH)/bin and the Go module cache
# between runs, so this is a no-op after the first.
set -euo pipefail
VERSION=v1.5.1
if ! command -v go >/dev/null 2>&1; then
  echo "install-temporal: Go is required (https://go.dev/dl/), or install a prebuilt CLI: curl -sSf https://temporal.download/cli.sh | sh" >&2
  exit 1
fi
BIN="$(go env GOPATH)/bin/temporal"
# `go install` builds report 0.0.0-DEV from --version; the module version is in the build info.
if [ -x "$BIN" ] && go version -m "$BIN" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+github.com/temporalio/cli[[:space:]]+${VERSION}[[:space:]]"; then
  echo "temporal CLI ${VERSION} present: $BIN"
  exit 0
fi
echo "installing temporal CLI ${VERSION} with go install (a few minutes the first time)"
go install "github.com/temporalio/cli/cmd/temporal@${VERSION}"
"$BIN" --version
