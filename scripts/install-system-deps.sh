#!/usr/bin/env bash
# Debian packages: OpenBLAS (native engine sgemm) and Chromium (headless report rendering tests).
set -euo pipefail
need=()
for p in libopenblas-dev chromium; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
[ ${#need[@]} -eq 0 ] && { echo "system packages present"; exit 0; }
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get install -y "${need[@]}" || { $SUDO apt-get update && $SUDO apt-get install -y "${need[@]}"; }
