#!/usr/bin/env bash
# Shared helpers for install.sh, enroll-device and revoke-device.
# shellcheck disable=SC2034  # constants are used by the scripts that source this file
# Sourced, never run. Everything here honours DESTDIR (test mode): a real path
# P on the appliance is "$DESTDIR$P" on disk, while the files we write keep
# naming the real path P (the DESTDIR convention of `make install`).

# --- fixed layout (real paths on the appliance) -------------------------------
readonly ME_ETC=/etc/medic-edge
readonly ME_CONFIG=$ME_ETC/config.yaml
readonly ME_SETTINGS=$ME_ETC/provisioning.env
readonly ME_DEVICES_TSV=$ME_ETC/devices.tsv
readonly ME_CREDS=$ME_ETC/credentials
readonly ME_CA=$ME_ETC/ca
readonly ME_TLS=$ME_ETC/tls
readonly ME_DEVICE_BUNDLES=$ME_ETC/devices
readonly ME_DATA=/var/lib/medic-edge
readonly ME_USER=medic-edge
readonly ME_UNIT=/etc/systemd/system/medic-edge.service
readonly ME_BIN=/usr/local/bin/medic-edge
readonly ME_TOOLS=/usr/local/lib/medic-edge/provisioning
readonly ME_SBIN=/usr/local/sbin
readonly MQ_CONF=/etc/mosquitto/conf.d/medic-edge.conf
readonly MQ_DIR=/etc/mosquitto/medic-edge
readonly MQ_USER=mosquitto
# Credentials handed to the service by systemd's LoadCredential= (see systemd/medic-edge.service).
readonly ME_CRED_RUNTIME=/run/credentials/medic-edge.service
# Device ids that must never be issued: the daemon's own MQTT user/client id.
readonly RESERVED_IDS=" medic-edge "
readonly DEVICE_TYPES="checkin_kiosk presence_sensor environment wearable_gateway"

DESTDIR=${DESTDIR:-}

log()  { printf '%s\n' "$*" >&2; }
info() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die()  { printf 'error: %s\n' "$*" >&2; exit 1; }

# r PATH: where a real path lives on disk now (DESTDIR-aware).
r() { printf '%s%s' "$DESTDIR" "$1"; }

test_mode() { [[ -n $DESTDIR ]]; }

require_root() {
    if ! test_mode && [[ $(id -u) -ne 0 ]]; then die "run as root (or use --destdir DIR for a test install)"; fi
}

valid_id()     { [[ $1 =~ ^[A-Za-z0-9_-]{1,64}$ ]]; }
valid_site()   { [[ $1 =~ ^[a-z0-9-]{1,48}$ ]]; }
valid_uuid()   { [[ $1 =~ ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$ ]]; }
valid_type()   { [[ " $DEVICE_TYPES " == *" $1 "* ]]; }
user_exists()  { getent passwd "$1" >/dev/null 2>&1; }

# set_owner OWNER[:GROUP] PATH... : chown when that user exists. In test mode the
# service user (medic-edge) is never created, so files stay root-owned there.
set_owner() {
    local owner=$1; shift
    local u=${owner%%:*} g=${owner#*:}
    if test_mode && [[ $u == "$ME_USER" || $g == "$ME_USER" ]]; then return 0; fi
    user_exists "$u" || return 0
    getent group "$g" >/dev/null 2>&1 || return 0
    chown "$owner" "$@"
}

# install_dir MODE OWNER REALPATH
install_dir() {
    local mode=$1 owner=$2 path
    path=$(r "$3")
    mkdir -p "$path"
    chmod "$mode" "$path"
    set_owner "$owner" "$path"
}

# write_file MODE OWNER REALPATH < content : atomic replace (temp file + rename),
# created with the final mode, so a secret is never briefly world-readable.
write_file() {
    local mode=$1 owner=$2 path tmp
    path=$(r "$3")
    mkdir -p "$(dirname "$path")"
    tmp=$(mktemp "$path.XXXXXX")
    chmod "$mode" "$tmp"
    cat >"$tmp"
    set_owner "$owner" "$tmp"
    mv -f "$tmp" "$path"
}

# random_secret: 32 url-safe characters.
random_secret() { openssl rand -base64 48 | tr -dc 'A-Za-z0-9' | head -c 32; }

# --- settings recorded by install.sh, read by the other tools ----------------
# provisioning.env holds KEY=VALUE lines (values never contain newlines). It is
# parsed, not sourced.
declare -A SETTINGS=()
load_settings() {
    local f key value
    f=$(r "$ME_SETTINGS")
    [[ -f $f ]] || return 1
    while IFS='=' read -r key value; do
        [[ -z $key || $key == \#* ]] && continue
        SETTINGS[$key]=$value
    done <"$f"
    return 0
}
setting() { printf '%s' "${SETTINGS[$1]:-${2:-}}"; }

# --- the local CA (openssl ca keeps the index used for revocation) ------------
ca_env() {
    MEDIC_EDGE_CA_DIR=$(r "$ME_CA")
    MEDIC_EDGE_SAN=${MEDIC_EDGE_SAN:-DNS:localhost}
    export MEDIC_EDGE_CA_DIR MEDIC_EDGE_SAN
}
ca_cmd() { ca_env; openssl ca -batch -config "$(r "$ME_CA")/ca.cnf" "$@"; }

# issue_cert EXTENSION_SECTION CN DAYS KEYFILE CERTFILE [SAN] : new EC P-256 key
# (kept if KEYFILE exists) and a certificate signed by the local CA.
issue_cert() {
    local ext=$1 cn=$2 days=$3 key=$4 crt=$5 san=${6:-}
    local csr
    csr=$(mktemp)
    if [[ ! -s $key ]]; then
        (umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$key" 2>/dev/null)
    fi
    chmod 0600 "$key"
    openssl req -new -key "$key" -subj "/O=MedicSaaS Edge/CN=$cn" -out "$csr" 2>/dev/null
    # Valid from yesterday: a device whose clock is a little behind still accepts it.
    MEDIC_EDGE_SAN=$san ca_cmd -extensions "$ext" -days "$days" -notext -in "$csr" -out "$crt" \
        -startdate "$(date -u -d '1 day ago' +%Y%m%d%H%M%SZ)" 2>/dev/null \
        || { rm -f "$csr"; die "the local CA could not sign the certificate for $cn"; }
    rm -f "$csr"
    chmod 0644 "$crt"
}

# refresh_crl: regenerate the CRL (valid 10 years; every enroll/revoke/install
# refreshes it) and hand a copy to the broker.
refresh_crl() {
    ca_cmd -gencrl -crldays 3650 -out "$(r "$ME_CA")/crl.pem" 2>/dev/null || die "could not generate the CRL"
    chmod 0644 "$(r "$ME_CA")/crl.pem"
    write_file 0644 "$MQ_USER:$MQ_USER" "$MQ_DIR/crl.pem" <"$(r "$ME_CA")/crl.pem"
}

# --- device registry -----------------------------------------------------------
# devices.tsv columns: id type room auth(cert|password) state(active|revoked) serial enrolled_at
readonly TSV_HEADER=$'# id\ttype\troom\tauth\tstate\tserial\tenrolled_at'

device_row() {  # device_row ID -> prints the active row, or nothing
    local f
    f=$(r "$ME_DEVICES_TSV")
    [[ -f $f ]] || return 0
    awk -F'\t' -v id="$1" '$1 == id && $5 == "active"' "$f"
}

# device_acl_blocks SITE LISTENER : the per-device ACL blocks for one listener, from
# devices.tsv. LISTENER is "tls" (devices with a client certificate) or "password"
# (devices enrolled with --password). A check-in kiosk never gets a block on the password
# listener: its scans carry QR codes (credentials) that must not cross the LAN in clear.
device_acl_blocks() {
    local site=$1 listener=$2 f id type room auth state topic_room
    f=$(r "$ME_DEVICES_TSV")
    [[ -f $f ]] || return 0
    while IFS=$'\t' read -r id type room auth state _; do
        [[ -z $id || $id == \#* || $state != active ]] && continue
        if [[ $listener == password ]]; then
            [[ $auth == password ]] || continue
            if [[ $type == checkin_kiosk ]]; then
                warn "kiosk '$id' is registered with a password: it gets no access on the password listener (re-enroll it with a certificate)"
                printf '\n# %s: a check-in kiosk is never allowed on the password listener (re-enroll it with a certificate)\n' "$id"
                continue
            fi
        fi
        topic_room=${room:-+}
        [[ $topic_room == - ]] && topic_room=+
        printf '\nuser %s\n' "$id"
        printf 'topic read clinic/%s/edge/status\n' "$site"
        case $type in
            checkin_kiosk)
                printf 'topic write clinic/%s/kiosk/%s/scan\n' "$site" "$id"
                printf 'topic read clinic/%s/kiosk/%s/result\n' "$site" "$id" ;;
            presence_sensor)
                printf 'topic write clinic/%s/room/%s/presence/%s\n' "$site" "$topic_room" "$id" ;;
            environment)
                printf 'topic write clinic/%s/room/%s/environment/%s\n' "$site" "$topic_room" "$id" ;;
            wearable_gateway)
                printf 'topic write clinic/%s/wearable/%s\n' "$site" "$id" ;;
        esac
    done <"$f"
}

# render_device_acl SITE : the devices' ACLs, from devices.tsv: acl-devices for the TLS
# listener, acl-devices-password for the password listener. Each active device gets a
# user block with only its own type's topics (and its room when known); the pattern
# lines give every authenticated device its status and its acks. (mosquitto warns about
# a pattern without %u/%c, so the appliance status is granted per device.)
render_device_acl() {
    local site=$1 listener file
    for listener in tls password; do
        file=$MQ_DIR/acl-devices
        [[ $listener == password ]] && file=$MQ_DIR/acl-devices-password
        {
            printf '# Generated by medic-edge provisioning from %s; do not edit (re-run enroll-device).\n' "$ME_DEVICES_TSV"
            if [[ $listener == password ]]; then
                printf '# The password listener (plain TCP): devices enrolled with --password only; never a kiosk.\n'
            else
                printf '# Username = device id (certificate CN on the TLS listener).\n'
            fi
            printf '\n# Every device: its retained status / will, its acks.\n'
            printf 'pattern write clinic/%s/device/%%u/status\n' "$site"
            printf 'pattern read clinic/%s/device/%%u/ack\n' "$site"
            device_acl_blocks "$site" "$listener"
        } | write_file 0640 "$MQ_USER:$MQ_USER" "$file"
    done
}

# reload_broker [PID] : make mosquitto re-read passwords, ACLs, certificates and
# the CRL. On the appliance: systemctl reload (SIGHUP). In test mode only when a
# test broker's PID is given.
reload_broker() {
    local pid=${1:-}
    if [[ -n $pid ]]; then
        kill -HUP "$pid" || warn "could not signal broker pid $pid"
        return 0
    fi
    if test_mode; then
        log "(test mode: broker not reloaded; pass --pid PID to signal a test broker)"
        return 0
    fi
    if command -v systemctl >/dev/null && systemctl is-active --quiet mosquitto; then
        systemctl reload mosquitto
    elif [[ -f /run/mosquitto/mosquitto.pid ]]; then
        kill -HUP "$(cat /run/mosquitto/mosquitto.pid)"
    else
        warn "mosquitto is not running; the change applies when it starts"
    fi
}
