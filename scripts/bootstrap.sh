#!/usr/bin/env bash
# Installs everything pactvault needs on a fresh Debian machine: system packages that are missing,
# a virtualenv in .venv, and the project with its pinned-range dependencies.
#   scripts/bootstrap.sh          runtime (fonts for Chinese signature stamps)
#   scripts/bootstrap.sh test     runtime + what the test suite uses (PostgreSQL, poppler, NSS tools)
set -euo pipefail
cd "$(dirname "$0")/.."

profile="${1:-run}"
packages=(fonts-noto-cjk)
if [ "$profile" = "test" ]; then
  packages+=(postgresql poppler-utils openssl libnss3-tools chromium)
fi

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "Installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's interpreter runs pure-Python code about twice as fast as the image's default one.
python="${PYTHON:-}"
if [ -z "$python" ]; then
  if /usr/bin/python3.11 -c "import venv, ensurepip" >/dev/null 2>&1; then
    python=/usr/bin/python3.11
  else
    python=python3
  fi
fi

stamp=.venv/.installed-$profile
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  if [ "$profile" = "test" ]; then
    .venv/bin/python -m pip install -q -e ".[test]"
  else
    .venv/bin/python -m pip install -q -e .
  fi
  touch "$stamp"
fi
