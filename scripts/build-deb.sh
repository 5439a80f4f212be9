#!/usr/bin/env bash
# Builds the Debian package medic-edge_<version>_<arch>.deb (CONTRACT §7, Packaging) from a
# release build, with dpkg-deb and no network. What goes where, the maintainer scripts and
# the lintian tags left: docs/install.md, "Install from the package". The package test is
# packaging/tests/run.sh.
#
#   scripts/build-deb.sh                      # swift build -c release --static-swift-stdlib, then package it
#   scripts/build-deb.sh --binary PATH        # package an already built binary (tests: the debug build)
#   scripts/build-deb.sh --version 0.1.0~rc1 --out /tmp/debs
#   scripts/build-deb.sh --fast …             # gzip -1 instead of xz: quicker, larger (tests)
#
# The version comes from the file VERSION unless --version is given. Prints the .deb's path
# on its last line.
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
PKG=$REPO/packaging
MAINTAINER=${DEB_MAINTAINER:-"MedicSaaS Edge maintainers <edge@medicsaas.example>"}

die() { printf 'build-deb: error: %s\n' "$*" >&2; exit 1; }
info() { printf 'build-deb: %s\n' "$*" >&2; }
usage() {
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

VERSION='' BINARY='' OUT=$REPO/.build/deb COMPRESS=(-Zxz)
while [[ $# -gt 0 ]]; do
    case $1 in
        --version) [[ -n ${2:-} ]] || die "--version needs a value"; VERSION=$2; shift 2 ;;
        --binary) [[ -n ${2:-} ]] || die "--binary needs a path"; BINARY=$2; shift 2 ;;
        --out) [[ -n ${2:-} ]] || die "--out needs a directory"; OUT=$2; shift 2 ;;
        --fast) COMPRESS=(-Zgzip -z1); shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done
if [[ -z $VERSION ]]; then
    [[ -s $REPO/VERSION ]] || die "no version: $REPO/VERSION is missing (or give --version)"
    VERSION=$(tr -d '[:space:]' <"$REPO/VERSION")
fi
# A native package's version: digits first, then letters, digits and . + ~ (no '-': there is
# no Debian revision, the package is built from this repository).
[[ $VERSION =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || die "version '$VERSION' is not a Debian native version (e.g. 0.1.0, 0.2.0~rc1)"
for tool in dpkg-deb dpkg-shlibdeps readelf strip gzip; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install dpkg-dev binutils)"
done

# --- the binary ------------------------------------------------------------------------
if [[ -z $BINARY ]]; then
    command -v swift >/dev/null || die "no --binary and no Swift toolchain to build one"
    # -z now: full RELRO (lintian hardening-no-bindnow); it changes only the link step.
    info "swift build -c release --static-swift-stdlib --product medic-edge -Xlinker -z -Xlinker now"
    start=$(date +%s)
    (cd "$REPO" && swift build -c release --static-swift-stdlib --product medic-edge -Xlinker -z -Xlinker now)
    info "release build took $(($(date +%s) - start)) s"
    BINARY=$REPO/.build/release/medic-edge
fi
[[ -f $BINARY && -x $BINARY ]] || die "--binary: $BINARY is not an executable file"
case $(readelf -h "$BINARY" 2>/dev/null | sed -n 's/^ *Machine: *//p') in
    *X86-64*) ARCH=amd64 ;;
    AArch64) ARCH=arm64 ;;
    '') die "$BINARY is not an ELF executable" ;;
    *) die "$BINARY: unsupported machine ($(readelf -h "$BINARY" | sed -n 's/^ *Machine: *//p'))" ;;
esac
STATIC_SWIFT=1
if readelf -d "$BINARY" | grep -q 'NEEDED.*libswiftCore'; then
    STATIC_SWIFT=0
    info "warning: $BINARY links the Swift runtime dynamically (not --static-swift-stdlib): this package"
    info "         runs only where that runtime is installed (a test package, not one for an appliance)"
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
ROOT=$TMP/root
mkdir -p "$ROOT/DEBIAN"
d() { install -d -m 0755 "$ROOT/$1"; }

d usr/bin
install -m 0755 "$BINARY" "$ROOT/usr/bin/medic-edge"
# Drops the symbol table and debug info (lintian: unstripped-binary-or-object); the Swift
# metadata the runtime needs is in sections of its own and stays.
strip --remove-section=.comment "$ROOT/usr/bin/medic-edge"
if [[ $ARCH == "$(dpkg --print-architecture)" ]]; then
    "$ROOT/usr/bin/medic-edge" --help >/dev/null 2>&1 || die "the stripped binary does not run (medic-edge --help failed)"
fi

# --- units: the package's copies name /usr/bin ------------------------------------------
# systemd/*.service are written for the source install (provisioning/install.sh, /usr/local);
# the package ships the same units with its own paths. Any systemd/medic-edge-*.{service,timer}
# (e.g. a backup timer) is shipped too; its timers are enabled like the daemon.
d lib/systemd/system
UNITS=() ENABLE=(medic-edge.service)
for src in "$REPO"/systemd/medic-edge.service "$REPO"/systemd/medic-edge-*.service "$REPO"/systemd/medic-edge-*.timer; do
    [[ -f $src ]] || continue
    unit=$(basename "$src")
    dst=$ROOT/lib/systemd/system/$unit
    sed -e 's#/usr/local/bin/medic-edge\b#/usr/bin/medic-edge#g' \
        -e 's#/usr/local/share/doc/medic-edge/#/usr/share/doc/medic-edge/#g' \
        "$src" >"$dst.body"
    {
        printf '# The Debian package'"'"'s copy of systemd/%s (made by scripts/build-deb.sh), in\n' "$unit"
        printf '# /lib/systemd/system/ with /usr paths. A package upgrade replaces it: local changes belong\n'
        printf '# in a drop-in (systemctl edit %s). Where the notes below say install.sh and\n' "$unit"
        printf '# /etc/systemd/system/, read this package.\n'
        cat "$dst.body"
    } >"$dst"
    rm -f "$dst.body"
    chmod 0644 "$dst"
    if grep -n '/usr/local' "$dst" >&2; then
        die "$unit still names /usr/local after rewriting (lines above): teach scripts/build-deb.sh its new paths"
    fi
    UNITS+=("$unit")
    [[ $unit == *.timer ]] && ENABLE+=("$unit")
done
grep -q '^ExecStart=/usr/bin/medic-edge run ' "$ROOT/lib/systemd/system/medic-edge.service" \
    || die "systemd/medic-edge.service: no ExecStart=/usr/local/bin/medic-edge run … to rewrite"
# BACKUP TIMER: systemd/medic-edge-backup.{service,timer} (another branch) are picked up by the
# loop above once they exist, the timer enabled; docs/operations.md goes to the doc directory.

# --- config (a conffile), provisioning tools, docs ------------------------------------------
d etc/medic-edge
install -m 0644 "$PKG/config.yaml" "$ROOT/etc/medic-edge/config.yaml"
d usr/share/medic-edge/provisioning/lib
for t in install.sh enroll-device revoke-device; do
    install -m 0755 "$REPO/provisioning/$t" "$ROOT/usr/share/medic-edge/provisioning/$t"
done
# Sourced, never run: without its #! line (lintian: script-not-executable).
sed '1{/^#!/d}' "$REPO/provisioning/lib/common.sh" >"$ROOT/usr/share/medic-edge/provisioning/lib/common.sh"
chmod 0644 "$ROOT/usr/share/medic-edge/provisioning/lib/common.sh"
d usr/sbin
ln -s ../share/medic-edge/provisioning/enroll-device "$ROOT/usr/sbin/medic-edge-enroll-device"
ln -s ../share/medic-edge/provisioning/revoke-device "$ROOT/usr/sbin/medic-edge-revoke-device"

# Man pages made from the commands' own --help (so they cannot drift from it); only when the
# binary runs here (a package built for another architecture has none: lintian no-manual-page).
manpage() {  # manpage NAME SUMMARY < help text : usr/share/man/man8/NAME.8.gz
    d usr/share/man/man8
    {
        printf '.TH %s 8 "%s" "medic-edge %s" "MedicSaaS Edge"\n' "$(tr a-z A-Z <<<"$1")" "$(LC_ALL=C date -u -d "@$EPOCH" +%Y-%m-%d)" "$VERSION"
        printf '.SH NAME\n%s \\- %s\n.SH DESCRIPTION\n.nf\n' "${1//-/\\-}" "$2"
        # "WORDS:" lines are sections ("COMMAND X:" a section, the headers inside it subsections).
        awk '{ gsub(/\\/, "\\e") }
             /^COMMAND [A-Z-]+:$/ { sub(/:$/, ""); print ".fi\n.SH " $0 "\n.nf"; cmd = 1; next }
             /^[A-Z][A-Z ]*:$/ { sub(/:$/, ""); print ".fi\n" (cmd ? ".SS " : ".SH ") $0 "\n.nf"; next }
             /^[.\047]/ { $0 = "\\&" $0 }
             { print }'
        printf '.fi\n.SH SEE ALSO\n/usr/share/doc/medic\\-edge/install.md (the technician'"'"'s guide), https://medic\\-edge.local\n'
    } | gzip -9n >"$ROOT/usr/share/man/man8/$1.8.gz"
    chmod 0644 "$ROOT/usr/share/man/man8/$1.8.gz"
}
EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)}
if [[ $ARCH == "$(dpkg --print-architecture)" ]]; then
    {
        "$ROOT/usr/bin/medic-edge" --help
        # Each daemon command's own help (the lab's commands are not in the package).
        for c in $("$ROOT/usr/bin/medic-edge" --help | sed -n '/^SUBCOMMANDS:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p'); do
            "$ROOT/usr/bin/medic-edge" help "$c" 2>/dev/null | grep -q 'medic-edge-lab' && continue
            printf '\nCOMMAND %s:\n' "$(tr a-z A-Z <<<"$c")"
            "$ROOT/usr/bin/medic-edge" help "$c"
        done
    } | manpage medic-edge "the MedicSaaS Edge clinic appliance daemon and its operator commands"
    "$REPO/provisioning/enroll-device" --help | manpage medic-edge-enroll-device "enroll a device on the appliance's broker"
    "$REPO/provisioning/revoke-device" --help | manpage medic-edge-revoke-device "revoke an enrolled device"
fi

DOC=usr/share/doc/medic-edge
d "$DOC"
install -m 0644 "$PKG/copyright" "$ROOT/$DOC/copyright"
# install.md stays uncompressed: the unit's Documentation= names it.
for f in README.md docs/install.md docs/devices.md docs/operations.md; do
    [[ -f $REPO/$f ]] && install -m 0644 "$REPO/$f" "$ROOT/$DOC/$(basename "$f")"
done
COMMIT=$(git -C "$REPO" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
DIRTY=''
if [[ $COMMIT != unknown && -n $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]]; then DIRTY=' (with uncommitted changes)'; fi
{
    printf 'medic-edge (%s) stable; urgency=medium\n\n' "$VERSION"
    printf '  * medic-edge %s, built from git commit\n    %s%s.\n' "$VERSION" "$COMMIT" "$DIRTY"
    printf '    The changes are in the repository'"'"'s history (git log).\n\n'
    printf ' -- %s  %s\n' "$MAINTAINER" "$(LC_ALL=C date -u -R -d "@$EPOCH")"
} | gzip -9n >"$ROOT/$DOC/changelog.gz"
chmod 0644 "$ROOT/$DOC/changelog.gz"
d usr/share/lintian/overrides
install -m 0644 "$PKG/lintian-overrides" "$ROOT/usr/share/lintian/overrides/medic-edge"

# --- control, maintainer scripts --------------------------------------------------------------
fill() {  # fill TEMPLATE OUT : the unit lists into a maintainer script
    sed -e "s#@ENABLE@#${ENABLE[*]}#g" -e "s#@STOP@#${UNITS[*]}#g" "$1" >"$2"
    chmod 0755 "$2"
}
fill "$PKG/debian/postinst" "$ROOT/DEBIAN/postinst"
fill "$PKG/debian/prerm" "$ROOT/DEBIAN/prerm"
fill "$PKG/debian/postrm" "$ROOT/DEBIAN/postrm"
printf '/etc/medic-edge/config.yaml\n' >"$ROOT/DEBIAN/conffiles"

# Library dependencies from the binary itself (dpkg-shlibdeps reads its NEEDED entries and
# the shlibs/symbols files of the packages providing them). A debug build's Swift runtime
# (under the toolchain, in no package) is left out.
mkdir -p "$TMP/shlibs/debian"
printf 'Source: medic-edge\n\nPackage: medic-edge\nArchitecture: any\n' >"$TMP/shlibs/debian/control"
shlib_args=()
[[ $STATIC_SWIFT == 0 ]] && shlib_args+=(--ignore-missing-info)
SHLIBS=$(cd "$TMP/shlibs" && dpkg-shlibdeps -O "${shlib_args[@]}" -e"$ROOT/usr/bin/medic-edge" 2>"$TMP/shlibdeps.err" \
    | sed -n 's/^shlibs:Depends=//p') || { cat "$TMP/shlibdeps.err" >&2; die "dpkg-shlibdeps failed"; }
[[ -n $SHLIBS ]] || { cat "$TMP/shlibdeps.err" >&2; die "dpkg-shlibdeps found no library dependency"; }
for lib in libmosquitto1 libcurl4 libsqlite3-0 libssl3 libc6; do
    [[ $SHLIBS == *"$lib "* || $SHLIBS == *"$lib," || $SHLIBS == *"$lib" ]] || die "Depends lacks $lib (got: $SHLIBS)"
done

find "$ROOT" -exec touch -h -d "@$EPOCH" {} +
INSTALLED_KB=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
cat >"$ROOT/DEBIAN/control" <<EOF
Package: medic-edge
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $INSTALLED_KB
Depends: adduser, $SHLIBS
Recommends: mosquitto, openssl, systemd-timesyncd | time-daemon
Section: admin
Priority: optional
Description: MedicSaaS Edge clinic appliance daemon
 The on-premise daemon of a MedicSaaS clinic: it takes in the clinic's devices
 over MQTT (check-in kiosks, presence and environment sensors, vaccine
 fridges), records check-ins locally and durably, serves the reception console
 and sends the events to the MedicSaaS cloud.
 .
 Installed, it runs offline-only with a local broker. Provision the site, the
 broker's users and certificates, the cloud and the console with
 /usr/share/medic-edge/provisioning/install.sh.
EOF
(cd "$ROOT" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$ROOT/DEBIAN/md5sums"
chmod 0644 "$ROOT/DEBIAN/control" "$ROOT/DEBIAN/conffiles" "$ROOT/DEBIAN/md5sums"
touch -h -d "@$EPOCH" "$ROOT/DEBIAN" "$ROOT/DEBIAN"/*

mkdir -p "$OUT"
DEB=$(cd "$OUT" && pwd)/medic-edge_${VERSION}_${ARCH}.deb
SOURCE_DATE_EPOCH=$EPOCH dpkg-deb --root-owner-group "${COMPRESS[@]}" --build "$ROOT" "$DEB" >/dev/null
info "$(du -h "$DEB" | cut -f1) $(basename "$DEB") (installed $((INSTALLED_KB / 1024)) MiB; units: ${UNITS[*]})"
echo "$DEB"
