#!/usr/bin/env bash
# Builds the installable packages (docs/packages.md, docs/deploy-windows.md):
#
#   target/packages/kaoqin-collector_VERSION_ARCH.deb
#   target/packages/kaoqin-agent_VERSION_ARCH.deb
#   target/packages/kaoqin-agent-VERSION-setup.exe      (Windows, NSIS)
#
# VERSION is the workspace's (Cargo.toml, [workspace.package]). The trees in
# packaging/deb/ are copied, the binaries added and stripped, the control files
# filled in, and dpkg-deb builds the .deb files (files owned by root whoever
# builds). makensis builds the Windows installer from packaging/windows/.
#
#   scripts/package.sh                 # release build, then all three
#   scripts/package.sh --no-windows    # the .deb files only (no makensis needed)
#
# Environment:
#   KAOQIN_PACKAGE_BIN_DIR   a directory with kaoqin-collector and kaoqin-agent
#                            already built for Linux: no cargo build
#   KAOQIN_PACKAGE_WIN_EXE   a kaoqin-agent.exe already built: no cross-build
#   KAOQIN_PACKAGE_OUT_DIR   where the packages go (default target/packages)
#   KAOQIN_PACKAGE_DEB_COMPRESSION
#                            dpkg-deb's compressor: xz (default), gzip, zstd, none
#
# Needs dpkg-deb (package dpkg), strip and objdump (binutils), and for the
# installer makensis (package nsis); says which is missing and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

die() {
  echo "package.sh: $*" >&2
  exit 1
}

windows=1
while [ "$#" -gt 0 ]; do
  case "$1" in
  --no-windows) windows=0 ;;
  -h | --help)
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
    exit 0
    ;;
  *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done

for tool in dpkg-deb strip objdump readelf; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "$tool is missing (apt-get install dpkg binutils)"
done
if [ "$windows" = 1 ] && ! command -v makensis >/dev/null 2>&1; then
  die "makensis is missing: apt-get install nsis (or --no-windows to build the .deb files only)"
fi

version=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || die "no version in Cargo.toml's [workspace.package]"
# Debian orders 0.2.0~rc.1 before 0.2.0, as Cargo orders 0.2.0-rc.1.
deb_version=${version/-/\~}
# Windows' four-number version: the release part, then 0.
vi_version="${version%%-*}.0"
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
compression=${KAOQIN_PACKAGE_DEB_COMPRESSION:-xz}
target=${CARGO_TARGET_DIR:-$root/target}
out=${KAOQIN_PACKAGE_OUT_DIR:-$target/packages}

# The binaries.
if [ -n "${KAOQIN_PACKAGE_BIN_DIR:-}" ]; then
  bin_dir=$KAOQIN_PACKAGE_BIN_DIR
else
  echo "==> cargo build --release (kaoqin-collector, kaoqin-agent)"
  cargo build --release -p kaoqin-collector -p kaoqin-agent
  bin_dir=$target/release
fi
for b in kaoqin-collector kaoqin-agent; do
  [ -x "$bin_dir/$b" ] || die "$bin_dir/$b is missing"
  # A stale directory would package another version under this one's name.
  said=$("$bin_dir/$b" --version)
  [ "$said" = "$b $version" ] || die "$bin_dir/$b says \"$said\", not \"$b $version\""
done
if [ "$windows" = 1 ]; then
  if [ -n "${KAOQIN_PACKAGE_WIN_EXE:-}" ]; then
    win_exe=$KAOQIN_PACKAGE_WIN_EXE
  else
    echo "==> cargo build --release --target x86_64-pc-windows-gnu (kaoqin-agent.exe)"
    cargo build --release -p kaoqin-agent --target x86_64-pc-windows-gnu
    win_exe=$target/x86_64-pc-windows-gnu/release/kaoqin-agent.exe
  fi
  [ -f "$win_exe" ] || die "$win_exe is missing"
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/kaoqin-package.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The Depends of a package's binaries on the C library and libgcc, from the
# libraries they load and the newest glibc symbol version they use.
shlibs() {
  local glibc deps
  glibc=$(objdump -T "$@" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -uV | tail -n 1)
  deps="libc6${glibc:+ (>= $glibc)}"
  if readelf -d "$@" | grep -q 'NEEDED.*\[libgcc_s\.so\.1\]'; then
    deps="$deps, libgcc-s1 | libgcc1"
  fi
  echo "$deps"
}

# build_deb PACKAGE EXAMPLE_CONFIG: packaging/deb/PACKAGE plus /usr/bin/PACKAGE.
build_deb() {
  local pkg=$1 example=$2
  local tree=$work/$pkg
  local doc=$tree/usr/share/doc/$pkg
  cp -R "packaging/deb/$pkg" "$tree"
  install -D -m 0755 "$bin_dir/$pkg" "$tree/usr/bin/$pkg"
  strip --strip-unneeded --remove-section=.comment --remove-section=.note "$tree/usr/bin/$pkg"
  install -D -m 0644 packaging/deb/copyright "$doc/copyright"
  install -D -m 0644 "$example" "$doc/examples/$(basename "$example")"
  # Modes as Debian wants them, whatever the checkout's umask.
  find "$tree" -type d -exec chmod 0755 {} +
  find "$tree" -type f -perm /111 -exec chmod 0755 {} +
  find "$tree" -type f ! -perm /111 -exec chmod 0644 {} +

  local size deps
  size=$(du -sk --exclude=DEBIAN "$tree" | cut -f1)
  deps=$(shlibs "$tree/usr/bin/$pkg")
  sed -i -e "s/@VERSION@/$deb_version/" -e "s/@ARCH@/$arch/" \
    -e "s/@INSTALLED_SIZE@/$size/" -e "s/@SHLIBS@/$deps/" "$tree/DEBIAN/control"
  if grep -q '@[A-Z_]*@' "$tree/DEBIAN/control"; then
    die "unfilled field in $pkg's control file"
  fi
  (cd "$tree" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' |
    LC_ALL=C sort -z | xargs -0 md5sum) >"$tree/DEBIAN/md5sums"
  chmod 0644 "$tree/DEBIAN/md5sums"

  local deb=$out/${pkg}_${deb_version}_${arch}.deb
  dpkg-deb --root-owner-group -Z"$compression" --build "$tree" "$deb" >/dev/null
  echo "$deb"
}

echo "==> Debian packages, version $deb_version ($arch)"
build_deb kaoqin-collector collector/collector.example.toml
build_deb kaoqin-agent agent/agent.example.toml

if [ "$windows" = 1 ]; then
  echo "==> Windows installer (makensis)"
  setup=$out/kaoqin-agent-$version-setup.exe
  makensis -V2 -INPUTCHARSET UTF8 \
    "-DVERSION=$version" "-DVI_VERSION=$vi_version" \
    "-DAGENT_EXE=$(cd "$(dirname "$win_exe")" && pwd)/$(basename "$win_exe")" \
    "-DOUTFILE=$setup" packaging/windows/kaoqin-agent.nsi >&2
  echo "$setup"
fi
