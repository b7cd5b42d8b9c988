#!/usr/bin/env bash
# The one test command (see README): installs what the tests need beyond Rust when it is
# missing, then builds and runs every test. CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

apt_install nginx openssl curl

# The Next.js app of tests/nextjs_e2e.rs, at the exact versions of its package-lock.json. CI's
# machine has Node.js 20 and npm; elsewhere Debian's are installed, and a Node.js older than
# Next.js 16 accepts is named here rather than failing inside the build.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 9) ? 0 : 1)'; then
  echo "tests/nextjs-app (Next.js 16) needs Node.js 20.9 or newer; this machine has $(node --version)." >&2
  echo "Install a newer Node.js (e.g. from deb.nodesource.com) and rerun." >&2
  exit 1
fi
app=tests/nextjs-app
if [ ! -f "$app/node_modules/next/package.json" ]; then
  echo "installing the Next.js test app's packages"
  # Not `npm ci`: the registry reachable here does not serve Next's darwin/win32 SWC binaries,
  # so no lock file written here lists them and `npm ci` refuses it. `npm install --no-save`
  # installs the locked versions and leaves the lock file untouched.
  (cd "$app" && npm install --no-audit --no-fund --no-save --loglevel=error)
fi
# Built once: again only when a source is newer than the build.
if [ ! -f "$app/.next/BUILD_ID" ] || [ -n "$(find "$app/app" "$app/lib" "$app/package.json" \
    "$app/package-lock.json" "$app/next.config.mjs" -newer "$app/.next/BUILD_ID" -print -quit)" ]; then
  echo "building the Next.js test app"
  (cd "$app" && NEXT_TELEMETRY_DISABLED=1 node node_modules/next/dist/bin/next build >/dev/null)
fi

cargo build --all-targets --locked 2>&1 | tail -n 3
cargo test --all-targets --locked
