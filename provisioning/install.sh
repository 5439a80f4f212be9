#!/usr/bin/env bash
# medic-edge appliance installer. Idempotent: run it again to change a setting,
# renew certificates that are close to expiry, or repair permissions. Secrets,
# the CA, enrolled devices and a locally edited config.yaml are kept.
# See docs/install.md.
set -euo pipefail
umask 022

SCRIPT_DIR=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$SCRIPT_DIR/lib/common.sh"

usage() {
    cat <<'EOF'
Usage: install.sh --site-id SLUG --tenant-id UUID [options]

Site
  --site-id SLUG            the clinic site, [a-z0-9-]{1,48} (kept from a previous run if omitted)
  --tenant-id UUID          the clinic's tenant in the cloud (kept from a previous run if omitted)
  --timezone ZONE           IANA time zone (default America/Sao_Paulo)

Cloud (omit all to run offline-only; secrets are stored root-only, never in the unit)
  --events-url URL          Inngest Event API URL with its event key
  --events-url-file FILE    ... read from a file instead (keeps it out of shell history)
  --directus-url URL        Directus base URL (the roster)
  --directus-token TOKEN    Directus static token
  --directus-token-file FILE

Binary
  --binary PATH             install this prebuilt medic-edge (swift build -c release --static-swift-stdlib)
  --build                   build it from this repository first (needs the Swift toolchain)

Network and storage
  --lan-console             serve the reception console over HTTPS on 0.0.0.0:8443
  --password-listener       also accept sensors with a password (no TLS) on port 1884
                            (never check-in kiosks: they always use a certificate and TLS)
  --device-bind ADDR        address of the device listeners (default 0.0.0.0)
  --san NAME[,NAME...]      extra host names / IP addresses for the broker and console certificates
  --encrypted-data          require /var/lib/medic-edge to be on an unlocked LUKS (dm-crypt) volume
  --force-config            overwrite a locally edited config.yaml (a backup is kept)

Test mode
  --destdir DIR             write everything under DIR; no apt-get, useradd, chown to the
                            service user or systemctl
  -h, --help
EOF
}

SITE_ID='' TENANT_ID='' TIMEZONE='' EVENTS_URL='' DIRECTUS_URL='' DIRECTUS_TOKEN=''
BINARY='' BUILD=0 LAN_CONSOLE='' PASSWORD_LISTENER='' DEVICE_BIND='' EXTRA_SAN='' ENCRYPTED=0 FORCE_CONFIG=0
EVENTS_URL_SET=0 DIRECTUS_TOKEN_SET=0 DIRECTUS_URL_SET=0

need_arg() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --site-id) need_arg "$@"; SITE_ID=$2; shift 2 ;;
        --tenant-id) need_arg "$@"; TENANT_ID=$2; shift 2 ;;
        --timezone) need_arg "$@"; TIMEZONE=$2; shift 2 ;;
        --events-url) need_arg "$@"; EVENTS_URL=$2; EVENTS_URL_SET=1; shift 2 ;;
        --events-url-file) need_arg "$@"; [[ -r $2 ]] || die "cannot read $2"; EVENTS_URL=$(tr -d '\r\n' <"$2"); EVENTS_URL_SET=1; shift 2 ;;
        --directus-url) need_arg "$@"; DIRECTUS_URL=$2; DIRECTUS_URL_SET=1; shift 2 ;;
        --directus-token) need_arg "$@"; DIRECTUS_TOKEN=$2; DIRECTUS_TOKEN_SET=1; shift 2 ;;
        --directus-token-file) need_arg "$@"; [[ -r $2 ]] || die "cannot read $2"; DIRECTUS_TOKEN=$(tr -d '\r\n' <"$2"); DIRECTUS_TOKEN_SET=1; shift 2 ;;
        --binary) need_arg "$@"; BINARY=$2; shift 2 ;;
        --build) BUILD=1; shift ;;
        --lan-console) LAN_CONSOLE=yes; shift ;;
        --no-lan-console) LAN_CONSOLE=no; shift ;;
        --password-listener) PASSWORD_LISTENER=yes; shift ;;
        --no-password-listener) PASSWORD_LISTENER=no; shift ;;
        --device-bind) need_arg "$@"; DEVICE_BIND=$2; shift 2 ;;
        --san) need_arg "$@"; EXTRA_SAN=$2; shift 2 ;;
        --encrypted-data) ENCRYPTED=1; shift ;;
        --force-config) FORCE_CONFIG=1; shift ;;
        --destdir) need_arg "$@"; DESTDIR=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done
[[ $DESTDIR == / ]] && DESTDIR=
require_root

# --- settings: flags, else the previous run's, else defaults -----------------
load_settings || true
SITE_ID=${SITE_ID:-$(setting SITE_ID)}
TENANT_ID=${TENANT_ID:-$(setting TENANT_ID)}
TIMEZONE=${TIMEZONE:-$(setting TIMEZONE America/Sao_Paulo)}
LAN_CONSOLE=${LAN_CONSOLE:-$(setting LAN_CONSOLE no)}
PASSWORD_LISTENER=${PASSWORD_LISTENER:-$(setting PASSWORD_LISTENER no)}
DEVICE_BIND=${DEVICE_BIND:-$(setting DEVICE_BIND 0.0.0.0)}
EXTRA_SAN=${EXTRA_SAN:-$(setting EXTRA_SAN)}
[[ $DIRECTUS_URL_SET == 1 ]] || DIRECTUS_URL=$(setting DIRECTUS_URL)
TENANT_ID=${TENANT_ID,,}

[[ -n $SITE_ID ]] || die "--site-id is required"
valid_site "$SITE_ID" || die "--site-id must match [a-z0-9-]{1,48}, got '$SITE_ID'"
[[ -n $TENANT_ID ]] || die "--tenant-id is required"
valid_uuid "$TENANT_ID" || die "--tenant-id must be a UUID, got '$TENANT_ID'"
if [[ -d /usr/share/zoneinfo && ! -f /usr/share/zoneinfo/$TIMEZONE ]]; then
    die "--timezone: unknown IANA time zone '$TIMEZONE'"
fi
for u in "$EVENTS_URL" "$DIRECTUS_URL"; do
    [[ -z $u || $u =~ ^https?://[^/[:space:]]+ ]] || die "cloud URLs must be http(s) URLs"
done
[[ $DEVICE_BIND =~ ^[0-9A-Fa-f.:]+$ ]] || die "--device-bind must be an IP address"
[[ $BUILD == 1 && -n $BINARY ]] && die "give --binary or --build, not both"
if [[ -n $DIRECTUS_URL && $DIRECTUS_TOKEN_SET == 0 && ! -s $(r "$ME_CREDS")/directus-token ]]; then
    die "--directus-url needs --directus-token (or --directus-token-file)"
fi

TLS_PORT=8883 PASSWORD_PORT=1884 DAEMON_PORT=1883

# --- 1. packages, service user -----------------------------------------------
PACKAGES=(mosquitto mosquitto-clients libmosquitto1 openssl libcurl4 libsqlite3-0)
if test_mode; then
    info "test mode: writing under $DESTDIR (no apt-get, useradd, systemctl)"
else
    missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    # An NTP client, so that time-sync.target means a synchronised clock (CONTRACT §5, Clock).
    ntp_client=''
    for p in systemd-timesyncd chrony ntpsec ntp openntpd; do
        if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then ntp_client=$p; break; fi
    done
    [[ -n $ntp_client ]] || missing+=(systemd-timesyncd)
    if [[ ${#missing[@]} -gt 0 ]]; then
        info "installing Debian packages: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" \
            || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; }
    fi
    if ! user_exists "$ME_USER"; then
        info "creating system user $ME_USER"
        useradd --system --user-group --home-dir "$ME_DATA" --no-create-home \
            --shell /usr/sbin/nologin --comment "medic-edge appliance daemon" "$ME_USER"
    fi
fi
for t in openssl mosquitto_passwd; do
    command -v "$t" >/dev/null || die "$t is missing (apt-get install ${PACKAGES[*]})"
done

# --- 2. directories --------------------------------------------------------------
install_dir 0750 "root:$ME_USER" "$ME_ETC"
install_dir 0700 root:root "$ME_CREDS"
install_dir 0700 root:root "$ME_CA"
install_dir 0700 root:root "$ME_CA/issued"
install_dir 0755 root:root "$ME_TLS"
install_dir 0700 root:root "$ME_DEVICE_BUNDLES"
install_dir 0700 "$ME_USER:$ME_USER" "$ME_DATA"
install_dir 0755 root:root /etc/mosquitto/conf.d
install_dir 0750 "root:$MQ_USER" "$MQ_DIR"
install_dir 0755 root:root /etc/systemd/system

# --- 3. encrypted data volume (optional) ------------------------------------------
if [[ $ENCRYPTED == 1 ]]; then
    if test_mode; then
        warn "--encrypted-data: the LUKS check is skipped in test mode"
    else
        src=$(findmnt -n -o SOURCE --target "$ME_DATA" 2>/dev/null || true)
        if [[ -z $src ]] || ! lsblk -s -n -o TYPE "$src" 2>/dev/null | grep -qx crypt; then
            die "--encrypted-data: $ME_DATA is on '${src:-?}', which is not an unlocked LUKS (dm-crypt) volume.
       Create and mount one first (docs/install.md, 'Encrypting the data volume'), then re-run."
        fi
        info "$ME_DATA is on encrypted volume $src"
    fi
fi

# --- 4. the binary ----------------------------------------------------------------
if [[ $BUILD == 1 ]]; then
    command -v swift >/dev/null || die "--build needs the Swift toolchain (or build elsewhere and use --binary)"
    if ! test_mode; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            libmosquitto-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev
    fi
    info "building medic-edge (swift build -c release --static-swift-stdlib); this takes a while"
    (cd "$REPO_DIR" && swift build -c release --static-swift-stdlib --product medic-edge)
    BINARY="$REPO_DIR/.build/release/medic-edge"
fi
if [[ -n $BINARY ]]; then
    [[ -f $BINARY && -x $BINARY ]] || die "--binary: $BINARY is not an executable file"
    mkdir -p "$(r "$(dirname "$ME_BIN")")"
    install -m 0755 "$BINARY" "$(r "$ME_BIN")"
    info "installed $ME_BIN"
fi
HAVE_BINARY=0
[[ -x $(r "$ME_BIN") ]] && HAVE_BINARY=1

# --- 5. secrets (LoadCredential= sources: root-only files) ----------------------
cred() { printf '%s' "$(r "$ME_CREDS")/$1"; }
if [[ ! -s $(cred mqtt-password) ]]; then
    random_secret | write_file 0600 root:root "$ME_CREDS/mqtt-password"
    info "generated the daemon's MQTT password"
fi
if [[ $EVENTS_URL_SET == 1 ]]; then printf '%s' "$EVENTS_URL" | write_file 0600 root:root "$ME_CREDS/events-url"; fi
if [[ $DIRECTUS_TOKEN_SET == 1 ]]; then printf '%s' "$DIRECTUS_TOKEN" | write_file 0600 root:root "$ME_CREDS/directus-token"; fi
# LoadCredential= fails the unit when a source is missing: keep empty placeholders.
for c in events-url directus-token; do
    [[ -f $(cred "$c") ]] || write_file 0600 root:root "$ME_CREDS/$c" </dev/null
    chmod 0600 "$(cred "$c")"
done
chmod 0600 "$(cred mqtt-password)"
HAVE_EVENTS=0 HAVE_DIRECTUS=0
[[ -s $(cred events-url) ]] && HAVE_EVENTS=1
if [[ -n $DIRECTUS_URL ]]; then
    [[ -s $(cred directus-token) ]] || die "--directus-url needs --directus-token (or --directus-token-file)"
    HAVE_DIRECTUS=1
fi

# --- 6. local CA ------------------------------------------------------------------
CA=$(r "$ME_CA")
write_file 0600 root:root "$ME_CA/ca.cnf" <<'EOF'
# The appliance's local CA (openssl ca). Paths come from the environment so the
# same file works in test installs: MEDIC_EDGE_CA_DIR, MEDIC_EDGE_SAN.
[ ca ]
default_ca = medic_edge_ca

[ medic_edge_ca ]
dir              = $ENV::MEDIC_EDGE_CA_DIR
database         = $dir/index.txt
new_certs_dir    = $dir/issued
serial           = $dir/serial
crlnumber        = $dir/crlnumber
certificate      = $dir/ca.crt
private_key      = $dir/ca.key
default_md       = sha256
default_days     = 3650
default_crl_days = 3650
policy           = policy_cn
unique_subject   = no
copy_extensions  = none
email_in_dn      = no
crl_extensions   = crl_ext

[ policy_cn ]
organizationName = optional
commonName       = supplied

[ device_cert ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid, issuer

[ server_cert ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid, issuer
subjectAltName         = $ENV::MEDIC_EDGE_SAN

[ crl_ext ]
authorityKeyIdentifier = keyid:always

[ req_ca ]
basicConstraints       = critical, CA:TRUE, pathlen:0
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
EOF
if [[ ! -s $CA/ca.key || ! -s $CA/ca.crt ]]; then
    info "creating the local CA"
    (umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$CA/ca.key" 2>/dev/null)
    ca_env
    openssl req -new -x509 -key "$CA/ca.key" -days 7300 -sha256 \
        -subj "/O=MedicSaaS Edge/CN=medic-edge local CA ($SITE_ID)" \
        -config "$CA/ca.cnf" -extensions req_ca -out "$CA/ca.crt" 2>/dev/null
    : >"$CA/index.txt"
    openssl rand -hex 16 >"$CA/serial"
    echo 1000 >"$CA/crlnumber"
fi
[[ -f $CA/index.txt.attr ]] || echo 'unique_subject = no' >"$CA/index.txt.attr"
chmod 0600 "$CA/ca.key"
chmod 0644 "$CA/ca.crt"
# The file to trust on the reception PC and to load on devices:
write_file 0644 root:root "$ME_TLS/medic-edge-ca.crt" <"$CA/ca.crt"
write_file 0644 "$MQ_USER:$MQ_USER" "$MQ_DIR/ca.crt" <"$CA/ca.crt"

# --- 7. server certificates (broker TLS listener, console) -----------------------
san_list() {
    local names=() n host fqdn
    host=$(hostname -s 2>/dev/null || hostname)
    fqdn=$(hostname -f 2>/dev/null || true)
    names+=("DNS:localhost" "DNS:$host" "DNS:$host.local" "IP:127.0.0.1")
    [[ -n $fqdn && $fqdn != "$host" && $fqdn != localhost ]] && names+=("DNS:$fqdn")
    if [[ $DEVICE_BIND != 0.0.0.0 ]]; then names+=("IP:$DEVICE_BIND"); fi
    for n in $(hostname -I 2>/dev/null || true); do names+=("IP:$n"); done
    IFS=, read -r -a extra <<<"$EXTRA_SAN"
    for n in "${extra[@]}"; do
        [[ -z $n ]] && continue
        if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then names+=("IP:$n"); else names+=("DNS:$n"); fi
    done
    printf '%s\n' "${names[@]}" | awk '!seen[$0]++' | paste -sd, -
}
SAN=$(san_list)

# needs_cert CRT : missing, expiring within 30 days, or issued for another list of
# names (the previous run's list is in provisioning.env).
needs_cert() {
    local crt=$1
    [[ -s $crt ]] || return 0
    openssl x509 -in "$crt" -noout -checkend $((30 * 86400)) >/dev/null 2>&1 || return 0
    [[ $(setting SAN) != "$SAN" ]]
}
TLS=$(r "$ME_TLS")
BROKER_CRT=$(r "$MQ_DIR")/server.crt
BROKER_KEY=$(r "$MQ_DIR")/server.key
if needs_cert "$BROKER_CRT"; then
    info "issuing the broker's TLS certificate ($SAN)"
    tmpk=$(mktemp) tmpc=$(mktemp)
    rm -f "$tmpk"
    issue_cert server_cert "$(hostname -s 2>/dev/null || hostname)" 3650 "$tmpk" "$tmpc" "$SAN"
    write_file 0600 "$MQ_USER:$MQ_USER" "$MQ_DIR/server.key" <"$tmpk"
    write_file 0644 "$MQ_USER:$MQ_USER" "$MQ_DIR/server.crt" <"$tmpc"
    rm -f "$tmpk" "$tmpc"
fi
if needs_cert "$TLS/console.crt"; then
    info "issuing the console's HTTPS certificate"
    # 825 days: the longest validity Apple platforms accept for a TLS server certificate.
    issue_cert server_cert "$(hostname -s 2>/dev/null || hostname)" 825 "$TLS/console.key" "$TLS/console.crt" "$SAN"
fi
chmod 0600 "$TLS/console.key" "$BROKER_KEY"
chmod 0644 "$TLS/console.crt" "$BROKER_CRT"
refresh_crl

# --- 8. mosquitto: passwords, ACLs, listeners -------------------------------------
MQ=$(r "$MQ_DIR")
tmp=$(mktemp)
: >"$tmp"
{ cat "$(cred mqtt-password)"; echo; cat "$(cred mqtt-password)"; echo; } \
    | mosquitto_passwd "$tmp" "$ME_USER" >/dev/null 2>&1 || { rm -f "$tmp"; die "mosquitto_passwd failed"; }
write_file 0600 "$MQ_USER:$MQ_USER" "$MQ_DIR/passwd-daemon" <"$tmp"
rm -f "$tmp"
[[ -f $MQ/passwd-devices ]] || write_file 0600 "$MQ_USER:$MQ_USER" "$MQ_DIR/passwd-devices" </dev/null

write_file 0640 "$MQ_USER:$MQ_USER" "$MQ_DIR/acl-daemon" <<EOF
# Generated by medic-edge provisioning/install.sh; re-run it to change.
# The daemon (loopback listener only): reads every device topic of the site,
# writes kiosk results, device acks and its own status.
user $ME_USER
topic read clinic/$SITE_ID/#
topic write clinic/$SITE_ID/kiosk/+/result
topic write clinic/$SITE_ID/device/+/ack
topic write clinic/$SITE_ID/edge/status
EOF
[[ -f $(r "$ME_DEVICES_TSV") ]] || printf '%s\n' "$TSV_HEADER" | write_file 0644 root:root "$ME_DEVICES_TSV"
render_device_acl "$SITE_ID"

{
cat <<EOF
# medic-edge broker configuration. Generated by provisioning/install.sh; re-run it
# to change (local edits are overwritten). Files live in $MQ_DIR.
# Debian's /etc/mosquitto/mosquitto.conf includes this file (include_dir).

# Each listener has its own authentication and ACL.
per_listener_settings true
# No Nagle: otherwise each QoS-1 round trip waits ~40 ms (delayed ACK).
set_tcp_nodelay true
# No persistence: nothing the devices send (kiosk scans carry QR codes, which are
# credentials) is ever written to the broker's disk. This overrides Debian's
# "persistence true" in /etc/mosquitto/mosquitto.conf. Nothing acknowledged is lost by
# it: the daemon acks a message only after its own database holds it, devices resend
# what is not acked, the daemon's session and queue live in the broker's memory while
# the daemon restarts, and retained statuses are republished on every reconnect.
persistence false
# Above the contract's 64 KiB so an oversized message still reaches the daemon
# and is counted as too_large (dead letter) instead of vanishing in the broker.
message_size_limit 262144
# Room for the daemon's persistent session: a burst while it restarts, and a flood while its
# intake bound (mqtt.max_pending_bytes) holds it back. The flood test runs its broker with the
# same figure (Sources/EdgeTestSupport/Harness.swift); past it the broker drops messages.
max_queued_messages 100000

# 1. The daemon: loopback only, password auth (user $ME_USER).
listener $DAEMON_PORT 127.0.0.1
allow_anonymous false
password_file $MQ_DIR/passwd-daemon
acl_file $MQ_DIR/acl-daemon

# 2. Devices: TLS with a client certificate from the local CA (CN = device id).
listener $TLS_PORT $DEVICE_BIND
allow_anonymous false
cafile $MQ_DIR/ca.crt
certfile $MQ_DIR/server.crt
keyfile $MQ_DIR/server.key
crlfile $MQ_DIR/crl.pem
tls_version tlsv1.2
require_certificate true
use_identity_as_username true
# A device cannot take over another client's session (or the daemon's).
use_username_as_clientid true
acl_file $MQ_DIR/acl-devices
EOF
if [[ $PASSWORD_LISTENER == yes ]]; then
cat <<EOF

# 3. Devices that cannot do TLS: password auth, plain TCP (enroll with --password).
listener $PASSWORD_PORT $DEVICE_BIND
allow_anonymous false
password_file $MQ_DIR/passwd-devices
use_username_as_clientid true
# Its own ACL: password devices only, and never a check-in kiosk (QR codes are
# credentials; they cross the LAN only over TLS).
acl_file $MQ_DIR/acl-devices-password
EOF
fi
} | write_file 0644 root:root "$MQ_CONF"

if ! test_mode; then
    for f in /etc/mosquitto/conf.d/*.conf; do
        [[ -e $f && $f != "$MQ_CONF" ]] && warn "$f also configures mosquitto; check it does not add listeners or security options"
    done
fi

# --- 9. the daemon's config.yaml ----------------------------------------------------
render_config() {
    cat <<EOF
# medic-edge configuration (CONTRACT §5). Generated by provisioning/install.sh.
# You may edit it (rooms, limits): install.sh keeps a locally edited file and
# writes config.yaml.dist beside it instead. Secrets are files handed over by
# systemd (LoadCredential=), readable only inside the service.
site_id: $SITE_ID
tenant_id: $TENANT_ID
timezone: $TIMEZONE
data_dir: $ME_DATA
mqtt: {host: 127.0.0.1, port: $DAEMON_PORT, client_id: medic-edge, username: $ME_USER,
       password_file: $ME_CRED_RUNTIME/mqtt-password}
EOF
    if [[ $HAVE_EVENTS == 1 || $HAVE_DIRECTUS == 1 ]]; then
        echo "cloud:"
        [[ $HAVE_EVENTS == 1 ]] && echo "  events_url_file: $ME_CRED_RUNTIME/events-url"
        if [[ $HAVE_DIRECTUS == 1 ]]; then
            echo "  directus_url: $DIRECTUS_URL"
            echo "  directus_token_file: $ME_CRED_RUNTIME/directus-token"
        fi
        echo "  roster_sync_seconds: 60"
    else
        echo "# cloud: not configured (offline-only). Re-run install.sh with --events-url,"
        echo "# --directus-url and --directus-token to connect it."
    fi
    echo "http:"
    echo "  listen: 127.0.0.1:8080              # plain HTTP: loopback only"
    if [[ $LAN_CONSOLE == yes ]]; then
        echo "  tls_listen: 0.0.0.0:8443            # the reception console on the LAN"
        echo "  cert_file: $ME_TLS/console.crt"
        echo "  key_file: $ME_CRED_RUNTIME/console-key"
    fi
    cat <<EOF
checkin: {open_before_minutes: 120}
noshow: {grace_minutes: 15, check_interval_seconds: 60}
sync: {days_ahead: 7}
storage: {max_bytes: 2147483648}   # 2 GiB for the database + WAL; telemetry goes oldest-first past it
# rooms:                           # names and alert limits per room key (topics' room_id)
#   geladeira-vacinas: {name: Geladeira de vacinas,
#                       limits: {temperature_c: {min: 2, max: 8, hysteresis: 0.5}}}
#   sala-2: {name: Sala 2, limits: {co2_ppm: {min: 0, max: 1200, hysteresis: 100}}}
EOF
}
CONFIG=$(r "$ME_CONFIG")
SUMFILE=$(r "$ME_ETC")/.config.yaml.sha256
new_config=$(render_config)
# A config.yaml whose checksum differs from the one we last wrote was edited by hand.
locally_edited=0
if [[ -f $CONFIG ]]; then
    if [[ ! -f $SUMFILE || $(sha256sum <"$CONFIG" | cut -d' ' -f1) != "$(cut -d' ' -f1 <"$SUMFILE")" ]]; then
        locally_edited=1
    fi
fi
if [[ -f $CONFIG && $locally_edited == 1 && $FORCE_CONFIG == 0 ]]; then
    if [[ $(cat "$CONFIG") != "$new_config" ]]; then
        printf '%s\n' "$new_config" | write_file 0640 "root:$ME_USER" "$ME_CONFIG.dist"
        warn "$ME_CONFIG was edited locally and is kept; the generated one is $ME_CONFIG.dist (merge it, or re-run with --force-config)"
    fi
else
    if [[ -f $CONFIG && $locally_edited == 1 ]]; then
        cp -p "$CONFIG" "$CONFIG.bak-$(date +%Y%m%d%H%M%S)"
        warn "overwriting the locally edited $ME_CONFIG (backup kept beside it)"
    fi
    printf '%s\n' "$new_config" | write_file 0640 "root:$ME_USER" "$ME_CONFIG"
    sha256sum <"$CONFIG" | cut -d' ' -f1 | write_file 0600 root:root "$ME_ETC/.config.yaml.sha256"
    rm -f "$(r "$ME_CONFIG").dist"
fi

# --- 10. settings for enroll-device / revoke-device / the next run ------------------------
BROKER_HOST=$(hostname -I 2>/dev/null | awk '{print $1}')
[[ $DEVICE_BIND != 0.0.0.0 ]] && BROKER_HOST=$DEVICE_BIND
write_file 0644 root:root "$ME_SETTINGS" <<EOF
# Written by provisioning/install.sh; read by enroll-device, revoke-device and the next install.sh run.
SITE_ID=$SITE_ID
TENANT_ID=$TENANT_ID
TIMEZONE=$TIMEZONE
DIRECTUS_URL=$DIRECTUS_URL
LAN_CONSOLE=$LAN_CONSOLE
PASSWORD_LISTENER=$PASSWORD_LISTENER
DEVICE_BIND=$DEVICE_BIND
EXTRA_SAN=$EXTRA_SAN
TLS_PORT=$TLS_PORT
PASSWORD_PORT=$PASSWORD_PORT
DAEMON_PORT=$DAEMON_PORT
BROKER_HOST=${BROKER_HOST:-$(hostname -s 2>/dev/null || hostname).local}
SAN=$SAN
EOF

# --- 11. systemd unit, admin tools ------------------------------------------------------------
UNIT_SRC=$REPO_DIR/systemd/medic-edge.service
[[ -f $UNIT_SRC ]] || die "missing $UNIT_SRC (run install.sh from the repository checkout)"
write_file 0644 root:root "$ME_UNIT" <"$UNIT_SRC"
DROPIN=$ME_UNIT.d/encrypted-data.conf
if [[ $ENCRYPTED == 1 ]]; then
    write_file 0644 root:root "$DROPIN" <<EOF
# Written by install.sh --encrypted-data: start only once the LUKS volume
# holding the data directory is unlocked and mounted.
[Unit]
RequiresMountsFor=$ME_DATA
EOF
fi
# Clock (CONTRACT §5): the unit is ordered after time-sync.target, which only means "the
# clock is synchronised" when systemd-time-wait-sync is enabled. Its own start time-out is
# infinite: a clinic whose internet is down at boot would then never get its daemon
# (no check-in at all). Bounded here: after TIME_SYNC_WAIT the target is reached anyway,
# the daemon starts with the clock it has, and a later correction is a clock jump it
# logs and counts (medic_edge_clock_jumps_total).
TIME_SYNC_WAIT=3min
write_file 0644 root:root /etc/systemd/system/systemd-time-wait-sync.service.d/medic-edge.conf <<EOF
# Written by medic-edge provisioning/install.sh. medic-edge waits for time-sync.target;
# wait at most $TIME_SYNC_WAIT for the clock to be synchronised, then start without it.
[Service]
TimeoutStartSec=$TIME_SYNC_WAIT
EOF
install_dir 0755 root:root "$ME_TOOLS"
install_dir 0755 root:root "$ME_TOOLS/lib"
install -m 0755 "$SCRIPT_DIR/enroll-device" "$(r "$ME_TOOLS")/enroll-device"
install -m 0755 "$SCRIPT_DIR/revoke-device" "$(r "$ME_TOOLS")/revoke-device"
install -m 0644 "$SCRIPT_DIR/lib/common.sh" "$(r "$ME_TOOLS")/lib/common.sh"
install_dir 0755 root:root /usr/local/share/doc/medic-edge
for doc in install.md devices.md; do
    if [[ -f $REPO_DIR/docs/$doc ]]; then install -m 0644 "$REPO_DIR/docs/$doc" "$(r /usr/local/share/doc/medic-edge)/$doc"; fi
done
install_dir 0755 root:root "$ME_SBIN"
ln -sfn "$ME_TOOLS/enroll-device" "$(r "$ME_SBIN")/medic-edge-enroll-device"
ln -sfn "$ME_TOOLS/revoke-device" "$(r "$ME_SBIN")/medic-edge-revoke-device"

# --- 12. start ------------------------------------------------------------------------------------
if test_mode; then
    info "test mode: would enable systemd-time-wait-sync.service (medic-edge starts after time-sync.target)"
else
    systemctl daemon-reload
    if systemctl cat systemd-time-wait-sync.service >/dev/null 2>&1; then
        systemctl enable systemd-time-wait-sync.service
    else
        warn "systemd-time-wait-sync.service is not available: medic-edge starts without waiting for the clock to be synchronised"
    fi
    systemctl enable --now mosquitto
    systemctl restart mosquitto            # listeners are read only at start
    if [[ $HAVE_BINARY == 1 ]]; then
        systemctl enable --now medic-edge
        systemctl restart medic-edge       # pick up a new binary or config
    else
        systemctl enable medic-edge
        warn "no $ME_BIN yet: install one with --binary PATH or --build; the service is enabled but not started"
    fi
fi

# --- 12b. nightly backup (CONTRACT §7; docs/operations.md, "Backup and restore") -------------
# A self-contained block: medic-edge-backup.timer starts medic-edge-backup.service nightly,
# which runs `medic-edge backup --dir /var/lib/medic-edge/backups --keep 7` as medic-edge.
for unit in medic-edge-backup.service medic-edge-backup.timer; do
    [[ -f $REPO_DIR/systemd/$unit ]] || die "missing $REPO_DIR/systemd/$unit (run install.sh from the repository checkout)"
    write_file 0644 root:root "/etc/systemd/system/$unit" <"$REPO_DIR/systemd/$unit"
done
install_dir 0700 "$ME_USER:$ME_USER" "$ME_DATA/backups"
if [[ -f $REPO_DIR/docs/operations.md ]]; then
    install_dir 0755 root:root /usr/local/share/doc/medic-edge
    install -m 0644 "$REPO_DIR/docs/operations.md" "$(r /usr/local/share/doc/medic-edge)/operations.md"
fi
if test_mode; then
    info "test mode: would enable medic-edge-backup.timer (nightly backup, newest 7 kept in $ME_DATA/backups)"
else
    systemctl daemon-reload
    systemctl enable --now medic-edge-backup.timer
fi

# The broker no longer persists (see medic-edge.conf): a database left by an earlier
# configuration may still hold queued kiosk scans. The broker was restarted above (or is
# not running in test mode), so nothing writes it again.
for db in /var/lib/mosquitto/mosquitto.db /var/lib/mosquitto/mosquitto.db.new; do
    if [[ -e $(r "$db") ]]; then
        rm -f "$(r "$db")"
        info "removed $db (the broker keeps no messages on disk)"
    fi
done

# --- 13. what next ----------------------------------------------------------------------------------
cat <<EOF

medic-edge is installed for site '$SITE_ID' (tenant $TENANT_ID, $TIMEZONE).
${DESTDIR:+(test install under $DESTDIR)}
Next steps
  1. Trust the appliance's CA on the reception PC / tablet:
       $ME_TLS/medic-edge-ca.crt
     SHA-256 fingerprint: $(openssl x509 -in "$CA/ca.crt" -noout -fingerprint -sha256 | cut -d= -f2)
EOF
if [[ $LAN_CONSOLE == yes ]]; then
    echo "     then open https://${BROKER_HOST:-<appliance-ip>}:8443/ (reception console)."
else
    echo "     (the console listens on 127.0.0.1:8080 only; re-run with --lan-console for https://<ip>:8443/)"
fi
cat <<EOF
  2. Enroll each device (prints what to configure on it):
       medic-edge-enroll-device --id kiosk-1 --type checkin_kiosk
       medic-edge-enroll-device --id env-geladeira --type environment --room geladeira-vacinas
     Devices connect to ${BROKER_HOST:-<appliance-ip>}:$TLS_PORT (TLS, client certificate).
  3. Check the service:
       systemctl status medic-edge mosquitto
       journalctl -u medic-edge -f
       curl -s http://127.0.0.1:8080/api/v1/status
EOF
if [[ $HAVE_EVENTS == 0 && $HAVE_DIRECTUS == 0 ]]; then
    echo "  Note: no cloud configured: the appliance runs offline-only (no roster, so QR check-in has no patients)."
fi
