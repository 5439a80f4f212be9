#!/usr/bin/env bash
# Provisioning test: install.sh --destdir into a temp dir, check files and
# permissions, then run a REAL mosquitto with the generated configuration
# (rewritten to free 127.0.0.1 ports) and prove the access rules with real
# mosquitto_pub / mosquitto_sub clients. Then the real daemon (the built
# binary: $MEDIC_EDGE_BIN, else .build/debug/medic-edge; SKIP when there is none)
# runs from the generated config.yaml (paths and ports rewritten only): it must
# reach that broker with its generated credentials and serve the console over
# HTTPS with the installer's certificate. Needs root (the broker drops to the
# mosquitto user), mosquitto, mosquitto-clients, openssl, curl, python3; no network.
# KEEP_TMP=1 keeps the temp dir (generated files, broker log) for inspection.
# Prints one line per check and ends with "N passed, M failed".
set -euo pipefail

HERE=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
PROV=$(cd "$HERE/.." && pwd)
SITE=test-site
TENANT=6f1c2a9e-0000-4000-8000-0000000000aa
T=5   # seconds: the bound on every client step

PASSED=0 FAILED=0
pass() { PASSED=$((PASSED + 1)); printf 'ok   - %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); printf 'FAIL - %s\n' "$*"; }
check() {  # check "description" command...
    local d=$1; shift
    if "$@"; then pass "$d"; else fail "$d"; fi
}
finish() {
    printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
    [[ $FAILED -eq 0 ]]
}
bail() {  # a step the rest depends on failed: stop here
    fail "$*"
    [[ -n ${BROKER_LOG:-} && -f $BROKER_LOG ]] && { echo "--- broker log (tail)"; tail -n 20 "$BROKER_LOG"; }
    finish || exit 1
}

if [[ $(id -u) -ne 0 ]]; then echo "run as root (the test broker drops privileges to 'mosquitto')" >&2; exit 2; fi
for tool in mosquitto mosquitto_pub mosquitto_sub mosquitto_passwd openssl curl python3 timeout; do
    command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || {
        echo "missing $tool: apt-get install -y mosquitto mosquitto-clients openssl curl python3" >&2; exit 2; }
done
MOSQUITTO=/usr/sbin/mosquitto
[[ -x $MOSQUITTO ]] || MOSQUITTO=$(command -v mosquitto)

TMP=$(mktemp -d /tmp/medic-edge-prov-test.XXXXXX)
chmod 0755 "$TMP"   # the broker runs as 'mosquitto' and must reach its files
ROOT=$TMP/root
BROKER_PID='' DAEMON_PID='' BG_PIDS=()
cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [[ -n $DAEMON_PID ]]; then
        kill "$DAEMON_PID" 2>/dev/null || true
        for _ in $(seq 1 75); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$DAEMON_PID" 2>/dev/null || true
    fi
    if [[ -n $BROKER_PID ]]; then
        kill "$BROKER_PID" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$BROKER_PID" 2>/dev/null || true
    fi
    if [[ -n ${KEEP_TMP:-} ]]; then echo "(kept $TMP)" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. install into DESTDIR ---------------------------------------------------------
printf 'fake-binary\n' >"$TMP/medic-edge" && chmod 0755 "$TMP/medic-edge"
TOKEN=tok-$RANDOM$RANDOM-secret
EVENTS=https://inn.gs/e/key-$RANDOM$RANDOM
printf '%s' "$TOKEN" >"$TMP/token"
if timeout 60 "$PROV/install.sh" --destdir "$ROOT" --site-id "$SITE" --tenant-id "$TENANT" \
        --events-url "$EVENTS" --directus-url https://api.example.com --directus-token-file "$TMP/token" \
        --lan-console --password-listener --binary "$TMP/medic-edge" >"$TMP/install.out" 2>&1; then
    pass "install.sh --destdir completes"
else
    cat "$TMP/install.out"; bail "install.sh --destdir completes"
fi

# Bad input stops before anything is written.
bad_install() { ! timeout 30 "$PROV/install.sh" --destdir "$TMP/bad" "$@" >/dev/null 2>&1 && [[ ! -e $TMP/bad/etc/medic-edge ]]; }
check "install.sh refuses a missing --site-id" bad_install --tenant-id "$TENANT"
check "install.sh refuses a malformed --site-id" bad_install --site-id Clinic_1 --tenant-id "$TENANT"
check "install.sh refuses a malformed --tenant-id" bad_install --site-id "$SITE" --tenant-id 1234
check "install.sh refuses an unknown time zone" bad_install --site-id "$SITE" --tenant-id "$TENANT" --timezone Mars/Olympus
check "install.sh refuses --directus-url without a token" bad_install --site-id "$SITE" --tenant-id "$TENANT" --directus-url https://api.example.com

mode_is() { [[ -e $ROOT$2 && $(stat -c %a "$ROOT$2") == "$1" ]]; }
check "data dir /var/lib/medic-edge is 0700" mode_is 700 /var/lib/medic-edge
check "credentials dir is 0700" mode_is 700 /etc/medic-edge/credentials
for f in mqtt-password events-url directus-token; do
    check "secret credentials/$f is 0600 and root-owned" \
        bash -c "[[ \$(stat -c '%a %U' '$ROOT/etc/medic-edge/credentials/$f') == '600 root' ]]"
done
check "secrets hold the given values" \
    bash -c "[[ \$(cat '$ROOT/etc/medic-edge/credentials/directus-token') == '$TOKEN' && \$(cat '$ROOT/etc/medic-edge/credentials/events-url') == '$EVENTS' ]]"
check "generated MQTT password is non-trivial" bash -c "[[ \$(wc -c <'$ROOT/etc/medic-edge/credentials/mqtt-password') -ge 24 ]]"
for f in /etc/medic-edge/ca/ca.key /etc/medic-edge/tls/console.key /etc/mosquitto/medic-edge/server.key \
         /etc/mosquitto/medic-edge/passwd-daemon; do
    check "key $f is 0600" mode_is 600 "$f"
done
check "CA dir is 0700" mode_is 700 /etc/medic-edge/ca
check "no world-readable file under credentials/ or ca/ except certificates and the CRL" \
    bash -c "[[ -z \$(find '$ROOT/etc/medic-edge/credentials' '$ROOT/etc/medic-edge/ca' -type f -perm -o=r \
        ! -name '*.crt' ! -name '*.pem' ! -name 'index.txt*' ! -name 'serial*' ! -name 'crlnumber*') ]]"
check "no secret value in the config, the unit or the broker config" \
    bash -c "! grep -rqF -e '$TOKEN' -e '$EVENTS' -e \"\$(cat '$ROOT/etc/medic-edge/credentials/mqtt-password')\" \
        '$ROOT/etc/medic-edge/config.yaml' '$ROOT/etc/systemd' '$ROOT/etc/mosquitto'"
check "unit installed with LoadCredential= for the three secrets" \
    bash -c "[[ \$(grep -cE '^LoadCredential=(mqtt-password|events-url|directus-token):/etc/medic-edge/credentials/' '$ROOT/etc/systemd/system/medic-edge.service') == 3 ]]"
check "binary installed 0755" mode_is 755 /usr/local/bin/medic-edge

CONFIG=$ROOT/etc/medic-edge/config.yaml
if python3 -c 'import yaml' 2>/dev/null; then
    check "config.yaml parses as YAML with the contract's keys" python3 - "$CONFIG" "$SITE" "$TENANT" <<'EOF'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
cred = "/run/credentials/medic-edge.service/"
assert c["site_id"] == sys.argv[2] and c["tenant_id"] == sys.argv[3], c
assert c["timezone"] == "America/Sao_Paulo" and c["data_dir"] == "/var/lib/medic-edge"
m = c["mqtt"]
assert (m["host"], m["port"], m["username"], m["password_file"]) == ("127.0.0.1", 1883, "medic-edge", cred + "mqtt-password"), m
assert c["cloud"]["events_url_file"] == cred + "events-url" and c["cloud"]["directus_token_file"] == cred + "directus-token"
assert c["cloud"]["directus_url"] == "https://api.example.com"
assert c["http"]["listen"] == "127.0.0.1:8080" and c["http"]["tls_listen"] == "0.0.0.0:8443"
assert c["http"]["cert_file"] == "/etc/medic-edge/tls/console.crt"
EOF
else
    check "config.yaml has the contract's keys (grep)" \
        grep -q "password_file: /run/credentials/medic-edge.service/mqtt-password" "$CONFIG"
fi
MQCONF=$ROOT/etc/mosquitto/conf.d/medic-edge.conf
check "every listener has allow_anonymous false" \
    bash -c "[[ \$(grep -c '^listener ' '$MQCONF') -ge 3 && \$(grep -c '^listener ' '$MQCONF') == \$(grep -c '^allow_anonymous false' '$MQCONF') && ! \$(grep -q '^allow_anonymous true' '$MQCONF') ]]"
check "broker config: per_listener_settings, tcp_nodelay, 256 KiB limit, no persistence (kiosk scans never on the broker's disk)" \
    bash -c "grep -qx 'per_listener_settings true' '$MQCONF' && grep -qx 'set_tcp_nodelay true' '$MQCONF' \
        && grep -qx 'message_size_limit 262144' '$MQCONF' && grep -qx 'persistence false' '$MQCONF' \
        && ! grep -qx 'persistence true' '$MQCONF'"
check "the password listener has an ACL of its own" \
    bash -c "[[ \$(sed -n '/^listener 1884 /,\$p' '$MQCONF' | grep '^acl_file') == 'acl_file /etc/mosquitto/medic-edge/acl-devices-password' ]]"

# Clock (CONTRACT §5): the unit waits for time-sync.target, the installer enables
# systemd-time-wait-sync (in test mode it says it would) and bounds its wait.
UNITF=$ROOT/etc/systemd/system/medic-edge.service
check "the unit wants and is ordered after time-sync.target" \
    bash -c "grep -Eq '^Wants=.*\btime-sync\.target\b' '$UNITF' && grep -Eq '^After=.*\btime-sync\.target\b' '$UNITF'"
check "the installer enables systemd-time-wait-sync" grep -q 'would enable systemd-time-wait-sync.service' "$TMP/install.out"
check "systemd-time-wait-sync waits a bounded time (a clinic offline at boot still gets its daemon)" \
    grep -qx 'TimeoutStartSec=3min' "$ROOT/etc/systemd/system/systemd-time-wait-sync.service.d/medic-edge.conf"
check "console certificate verifies against the local CA" bash -c \
    "openssl verify -CAfile '$ROOT/etc/medic-edge/tls/medic-edge-ca.crt' '$ROOT/etc/medic-edge/tls/console.crt' >/dev/null"

# Idempotence: a second run keeps secrets, the CA and the config.
pw_before=$(cat "$ROOT/etc/medic-edge/credentials/mqtt-password")
ca_before=$(sha256sum <"$ROOT/etc/medic-edge/ca/ca.crt")
cfg_before=$(sha256sum <"$CONFIG")
srv_before=$(sha256sum <"$ROOT/etc/mosquitto/medic-edge/server.crt")
# A broker database left by an earlier, persisting configuration (it may hold queued scans).
mkdir -p "$ROOT/var/lib/mosquitto" && printf 'old queued scan\n' >"$ROOT/var/lib/mosquitto/mosquitto.db"
if timeout 60 "$PROV/install.sh" --destdir "$ROOT" >"$TMP/install2.out" 2>&1 \
    && [[ $(cat "$ROOT/etc/medic-edge/credentials/mqtt-password") == "$pw_before" \
       && $(sha256sum <"$ROOT/etc/medic-edge/ca/ca.crt") == "$ca_before" \
       && $(sha256sum <"$CONFIG") == "$cfg_before" \
       && $(sha256sum <"$ROOT/etc/mosquitto/medic-edge/server.crt") == "$srv_before" \
       && $(cat "$ROOT/etc/medic-edge/credentials/directus-token") == "$TOKEN" ]]; then
    pass "install.sh is idempotent (same password, CA, broker cert, config, token)"
else
    cat "$TMP/install2.out"; fail "install.sh is idempotent (same password, CA, broker cert, config, token)"
fi
check "install.sh removes a broker database left from a persisting configuration" \
    test ! -e "$ROOT/var/lib/mosquitto/mosquitto.db"
echo "# local edit" >>"$CONFIG"
if timeout 60 "$PROV/install.sh" --destdir "$ROOT" >"$TMP/install3.out" 2>&1 \
    && tail -n 1 "$CONFIG" | grep -qx '# local edit' && [[ -f $CONFIG.dist ]]; then
    pass "a locally edited config.yaml is kept (config.yaml.dist written beside it)"
else
    fail "a locally edited config.yaml is kept (config.yaml.dist written beside it)"
fi

# --- 2. enroll devices ------------------------------------------------------------
enroll() { timeout 30 "$PROV/enroll-device" --destdir "$ROOT" "$@" >>"$TMP/enroll.out" 2>&1; }
check "enroll kiosk-a (certificate)" enroll --id kiosk-a --type checkin_kiosk
check "enroll kiosk-b (certificate)" enroll --id kiosk-b --type checkin_kiosk
check "enroll env-1 (environment, room geladeira-vacinas)" enroll --id env-1 --type environment --room geladeira-vacinas
check "enroll pres-pw (presence, password, room sala-2)" enroll --id pres-pw --type presence_sensor --room sala-2 --password
check "re-enrolling kiosk-a keeps its certificate" bash -c "
    before=\$(sha256sum <'$ROOT/etc/medic-edge/devices/kiosk-a/kiosk-a.crt')
    timeout 30 '$PROV/enroll-device' --destdir '$ROOT' --id kiosk-a --type checkin_kiosk >/dev/null 2>&1
    [[ \$(sha256sum <'$ROOT/etc/medic-edge/devices/kiosk-a/kiosk-a.crt') == \"\$before\" ]]"
check "a kiosk cannot be enrolled with a password (refused, saying it needs a certificate)" bash -c "
    ! timeout 30 '$PROV/enroll-device' --destdir '$ROOT' --id kiosk-pw --type checkin_kiosk --password >'$TMP/kiosk-pw.out' 2>&1 &&
    grep -q 'refused for a check-in kiosk' '$TMP/kiosk-pw.out' && grep -q 'client certificate' '$TMP/kiosk-pw.out' &&
    ! grep -q '^kiosk-pw' '$ROOT/etc/medic-edge/devices.tsv'"
check "the daemon's id cannot be enrolled" bash -c "! timeout 30 '$PROV/enroll-device' --destdir '$ROOT' --id medic-edge --type checkin_kiosk >/dev/null 2>&1"
check "an invalid device id is refused" bash -c "! timeout 30 '$PROV/enroll-device' --destdir '$ROOT' --id 'bad id' --type environment >/dev/null 2>&1"
check "the password listener's ACL has the password device and no kiosk topic" bash -c "
    grep -qx 'user pres-pw' '$ROOT/etc/mosquitto/medic-edge/acl-devices-password' &&
    ! grep -q '/kiosk/' '$ROOT/etc/mosquitto/medic-edge/acl-devices-password' &&
    ! grep -qx 'user kiosk-a' '$ROOT/etc/mosquitto/medic-edge/acl-devices-password'"
check "device keys are 0600, registry has 4 active devices" bash -c "
    [[ \$(stat -c %a '$ROOT/etc/medic-edge/devices/kiosk-a/kiosk-a.key') == 600 ]] &&
    [[ \$(awk -F'\t' '\$5 == \"active\"' '$ROOT/etc/medic-edge/devices.tsv' | wc -l) == 4 ]]"
check "kiosk-a certificate has CN=kiosk-a and verifies against the CA" bash -c "
    openssl x509 -in '$ROOT/etc/medic-edge/devices/kiosk-a/kiosk-a.crt' -noout -subject | grep -q 'CN *= *kiosk-a' &&
    openssl verify -CAfile '$ROOT/etc/medic-edge/ca/ca.crt' '$ROOT/etc/medic-edge/devices/kiosk-a/kiosk-a.crt' >/dev/null"

# A certificate from a foreign CA, for the refusal check.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=kiosk-a \
    -keyout "$TMP/rogue.key" -out "$TMP/rogue.crt" >/dev/null 2>&1

# --- 3. a real broker with the generated configuration ---------------------------
read -r P_DAEMON P_TLS P_PW < <(python3 - <<'EOF'
import socket
socks = []
for _ in range(3):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(*[s.getsockname()[1] for s in socks])
for s in socks: s.close()
EOF
)
BCONF=$TMP/broker.conf
BROKER_LOG=$TMP/broker.log
mkdir -p "$TMP/broker-data"
chown mosquitto:mosquitto "$TMP/broker-data" 2>/dev/null || true
sed -e "s#^\(password_file\|acl_file\|cafile\|certfile\|keyfile\|crlfile\) /etc/#\1 $ROOT/etc/#" \
    -e "s#^listener 1883 .*#listener $P_DAEMON 127.0.0.1#" \
    -e "s#^listener 8883 .*#listener $P_TLS 127.0.0.1#" \
    -e "s#^listener 1884 .*#listener $P_PW 127.0.0.1#" "$MQCONF" >"$BCONF"
cat >>"$BCONF" <<EOF
persistence_location $TMP/broker-data/
log_dest stdout
log_type all
EOF
# Safety: the test broker binds loopback only.
if grep -E '^listener ' "$BCONF" | grep -vqE "^listener [0-9]+ 127\.0\.0\.1$"; then
    bail "test broker config binds loopback only"
fi
"$MOSQUITTO" -c "$BCONF" >"$BROKER_LOG" 2>&1 &
BROKER_PID=$!
up=0
for _ in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$P_TLS") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$P_DAEMON") 2>/dev/null; then up=1; break; fi
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.1
done
if [[ $up == 1 ]]; then pass "mosquitto starts with the generated configuration (ports $P_DAEMON, $P_TLS, $P_PW)"; else bail "mosquitto starts with the generated configuration"; fi

DPW=$(cat "$ROOT/etc/medic-edge/credentials/mqtt-password")
CA=$ROOT/etc/medic-edge/devices/kiosk-a/ca.crt
D=$ROOT/etc/medic-edge/devices
R=clinic/$SITE
# Clients. Every call is bounded by timeout.
daemon_pub() { timeout "$T" mosquitto_pub -h 127.0.0.1 -p "$P_DAEMON" -u medic-edge -P "$DPW" -q 1 "$@" 2>/dev/null; }
dev_pub() {    # dev_pub ID args... : TLS with the device's certificate
    local id=$1; shift
    timeout "$T" mosquitto_pub -h 127.0.0.1 -p "$P_TLS" --cafile "$CA" --cert "$D/$id/$id.crt" --key "$D/$id/$id.key" -q 1 "$@" 2>/dev/null
}
pw_pub() {     # pw_pub ID PASSWORD args... : the password listener
    local id=$1 pw=$2; shift 2
    timeout "$T" mosquitto_pub -h 127.0.0.1 -p "$P_PW" -u "$id" -P "$pw" -q 1 "$@" 2>/dev/null
}

check "the daemon user connects with its generated password" daemon_pub -t "$R/edge/status" -r -m '{"state":"online","cloud":"offline","backlog":0}'
check "the daemon user with a wrong password is refused" bash -c "! timeout $T mosquitto_pub -h 127.0.0.1 -p $P_DAEMON -u medic-edge -P wrong -t $R/edge/status -m x 2>/dev/null"
check "anonymous client refused on the daemon listener" bash -c "! timeout $T mosquitto_pub -h 127.0.0.1 -p $P_DAEMON -t $R/kiosk/kiosk-a/scan -m x 2>/dev/null"
check "anonymous client refused on the password listener" bash -c "! timeout $T mosquitto_pub -h 127.0.0.1 -p $P_PW -t $R/kiosk/kiosk-a/scan -m x 2>/dev/null"
check "client without a certificate refused on the TLS listener" bash -c "! timeout $T mosquitto_pub -h 127.0.0.1 -p $P_TLS --cafile '$CA' -t $R/kiosk/kiosk-a/scan -m x 2>/dev/null"
check "client with a certificate from another CA refused on the TLS listener" bash -c "! timeout $T mosquitto_pub -h 127.0.0.1 -p $P_TLS --cafile '$CA' --cert '$TMP/rogue.crt' --key '$TMP/rogue.key' -t $R/kiosk/kiosk-a/scan -m x 2>/dev/null"
check "plain MQTT (no TLS) refused on the TLS listener" bash -c "! timeout $T mosquitto_pub -h 127.0.0.1 -p $P_TLS -t $R/kiosk/kiosk-a/scan -m x 2>/dev/null"

# The daemon's subscriber: sees everything the daemon would see.
SEEN=$TMP/daemon.seen
: >"$SEEN"
timeout 120 mosquitto_sub -h 127.0.0.1 -p "$P_DAEMON" -u medic-edge -P "$DPW" -i medic-edge -q 1 -v \
    -t "$R/#" >"$SEEN" 2>>"$TMP/daemon-sub.err" &
BG_PIDS+=($!)
seen() { grep -qF -- "$1" "$SEEN"; }
wait_seen() {  # wait_seen TEXT : up to T seconds
    local i
    for ((i = 0; i < T * 20; i++)); do seen "$1" && return 0; sleep 0.05; done
    return 1
}
fence_n=0
fence() {      # a message published by a device after another: once it is seen, the earlier one was routed
    local id=$1; shift
    fence_n=$((fence_n + 1))
    "$@" -t "$R/device/$id/status" -m "{\"state\":\"online\",\"fence\":$fence_n}" || return 1
    wait_seen "\"fence\":$fence_n}"
}
# Readiness: the retained edge status arrives once the subscription is active.
if wait_seen "$R/edge/status"; then pass "daemon subscriber is subscribed to $R/#"; else bail "daemon subscriber is subscribed"; fi

if dev_pub kiosk-a -t "$R/kiosk/kiosk-a/scan" -m '{"scan_id":"t-1","qr":"PROOF-OWN-SCAN"}' && wait_seen PROOF-OWN-SCAN; then
    pass "kiosk-a publishes its own scan and the daemon sees it"
else fail "kiosk-a publishes its own scan and the daemon sees it"; fi
dev_pub kiosk-a -t "$R/kiosk/kiosk-b/scan" -m '{"scan_id":"t-2","qr":"PROOF-SPOOF"}' || true
dev_pub kiosk-a -t "$R/room/sala-2/presence/kiosk-a" -m '{"occupied":true,"note":"PROOF-WRONG-TYPE"}' || true
if fence kiosk-a dev_pub kiosk-a && ! seen PROOF-SPOOF; then
    pass "kiosk-a cannot publish as kiosk-b (the daemon does not see it)"
else fail "kiosk-a cannot publish as kiosk-b (the daemon does not see it)"; fi
if ! seen PROOF-WRONG-TYPE; then pass "kiosk-a cannot publish another type's topic (presence)"; else fail "kiosk-a cannot publish another type's topic (presence)"; fi
check "kiosk-a publishes its retained status" seen "$R/device/kiosk-a/status"

# kiosk-a subscribes to its own result and to kiosk-b's: it must get only its own.
KSEEN=$TMP/kiosk-a.seen
: >"$KSEEN"
timeout 30 mosquitto_sub -h 127.0.0.1 -p "$P_TLS" --cafile "$CA" --cert "$D/kiosk-a/kiosk-a.crt" --key "$D/kiosk-a/kiosk-a.key" \
    -q 1 -v -t "$R/edge/status" -t "$R/kiosk/kiosk-a/result" -t "$R/kiosk/kiosk-b/result" -t "$R/kiosk/+/result" \
    >"$KSEEN" 2>>"$TMP/kiosk-sub.err" &
BG_PIDS+=($!)
k_ready=0
for ((i = 0; i < T * 20; i++)); do grep -qF "$R/edge/status" "$KSEEN" && { k_ready=1; break; }; sleep 0.05; done
check "kiosk-a reads the appliance status (retained)" test "$k_ready" = 1
daemon_pub -t "$R/kiosk/kiosk-b/result" -m '{"scan_id":"b-1","outcome":"unknown_code","note":"PROOF-OTHER-RESULT"}' || true
daemon_pub -t "$R/kiosk/kiosk-a/result" -m '{"scan_id":"t-1","outcome":"checked_in","note":"PROOF-OWN-RESULT"}' || true
got_own=0
for ((i = 0; i < T * 20; i++)); do grep -qF PROOF-OWN-RESULT "$KSEEN" && { got_own=1; break; }; sleep 0.05; done
check "kiosk-a receives its own result" test "$got_own" = 1
if [[ $got_own == 1 ]] && ! grep -qF PROOF-OTHER-RESULT "$KSEEN"; then
    pass "kiosk-a cannot read kiosk-b's results"
else fail "kiosk-a cannot read kiosk-b's results"; fi

# Devices cannot write what only the daemon writes.
dev_pub kiosk-a -t "$R/kiosk/kiosk-a/result" -m '{"scan_id":"x","outcome":"checked_in","note":"PROOF-FAKE-RESULT"}' || true
dev_pub kiosk-a -t "$R/device/kiosk-b/ack" -m '{"msg_id":"x","note":"PROOF-FAKE-ACK"}' || true
dev_pub kiosk-a -t "$R/edge/status" -m '{"state":"offline","note":"PROOF-FAKE-EDGE"}' || true
if fence kiosk-a dev_pub kiosk-a && ! seen PROOF-FAKE-RESULT && ! seen PROOF-FAKE-ACK && ! seen PROOF-FAKE-EDGE; then
    pass "a device cannot publish results, acks or the appliance status"
else fail "a device cannot publish results, acks or the appliance status"; fi

# Client id takeover: a device using the daemon's client id gets its own id instead.
dev_pub kiosk-a -i medic-edge -t "$R/kiosk/kiosk-a/scan" -m '{"scan_id":"t-3","qr":"PROOF-TAKEOVER"}' || true
if wait_seen PROOF-TAKEOVER && ! grep -q 'Client medic-edge already connected' "$BROKER_LOG"; then
    pass "a device cannot take over the daemon's client id (use_username_as_clientid)"
else fail "a device cannot take over the daemon's client id (use_username_as_clientid)"; fi

# Environment device bound to its room.
if dev_pub env-1 -t "$R/room/geladeira-vacinas/environment/env-1" -m '{"temperature_c":4.2,"note":"PROOF-ENV-OWN"}' \
    && wait_seen PROOF-ENV-OWN; then pass "env-1 publishes readings for its room"; else fail "env-1 publishes readings for its room"; fi
dev_pub env-1 -t "$R/room/sala-2/environment/env-1" -m '{"temperature_c":4.2,"note":"PROOF-ENV-OTHER-ROOM"}' || true
if fence env-1 dev_pub env-1 && ! seen PROOF-ENV-OTHER-ROOM; then
    pass "env-1 cannot publish for another room"; else fail "env-1 cannot publish for another room"; fi

# Password device.
PPW=$(cat "$D/pres-pw/password")
if pw_pub pres-pw "$PPW" -t "$R/room/sala-2/presence/pres-pw" -m '{"occupied":true,"note":"PROOF-PW-OWN"}' && wait_seen PROOF-PW-OWN; then
    pass "password device publishes presence on the password listener"; else fail "password device publishes presence on the password listener"; fi
check "password device with a wrong password is refused" bash -c "! timeout $T mosquitto_pub -h 127.0.0.1 -p $P_PW -u pres-pw -P wrong -t $R/room/sala-2/presence/pres-pw -m x 2>/dev/null"

# Size limit: over the contract's 64 KiB still reaches the daemon; over 256 KiB does not.
python3 -c 'import json; print(json.dumps({"pad": "x" * 100000, "note": "PROOF-BIG"}))' >"$TMP/big.json"
python3 -c 'import json; print(json.dumps({"pad": "x" * 300000, "note": "PROOF-HUGE"}))' >"$TMP/huge.json"
if dev_pub env-1 -t "$R/room/geladeira-vacinas/environment/env-1" -f "$TMP/big.json" && wait_seen PROOF-BIG; then
    pass "a 100 KiB message reaches the daemon (counted there as too_large)"; else fail "a 100 KiB message reaches the daemon"; fi
dev_pub env-1 -t "$R/room/geladeira-vacinas/environment/env-1" -f "$TMP/huge.json" || true
if fence env-1 dev_pub env-1 && ! seen PROOF-HUGE; then pass "a 300 KiB message is dropped by the broker (message_size_limit)"; else fail "a 300 KiB message is dropped by the broker"; fi

# --- 4. revocation ---------------------------------------------------------------------
check "kiosk-b connects before revocation" dev_pub kiosk-b -t "$R/device/kiosk-b/status" -m '{"state":"online"}'
# keep kiosk-b's files for the attempt after revocation (revoke removes the key)
cp "$D/kiosk-b/kiosk-b.crt" "$TMP/kb.crt"; cp "$D/kiosk-b/kiosk-b.key" "$TMP/kb.key"
if timeout 30 "$PROV/revoke-device" --destdir "$ROOT" --id kiosk-b --pid "$BROKER_PID" >"$TMP/revoke.out" 2>&1; then
    pass "revoke-device kiosk-b"; else cat "$TMP/revoke.out"; fail "revoke-device kiosk-b"; fi
check "kiosk-b's certificate is on the CRL" bash -c "openssl crl -in '$ROOT/etc/mosquitto/medic-edge/crl.pem' -noout -text | grep -q \"\$(openssl x509 -in '$TMP/kb.crt' -noout -serial | cut -d= -f2)\""
sleep 0.5   # let the broker finish its reload
refused=0
for _ in 1 2 3; do
    if ! timeout "$T" mosquitto_pub -h 127.0.0.1 -p "$P_TLS" --cafile "$CA" --cert "$TMP/kb.crt" --key "$TMP/kb.key" \
        -q 1 -t "$R/kiosk/kiosk-b/scan" -m '{"scan_id":"r-1","qr":"PROOF-REVOKED"}' 2>/dev/null; then refused=1; break; fi
    sleep 0.5
done
if [[ $refused == 1 ]] && ! seen PROOF-REVOKED; then pass "revoked kiosk-b is refused"; else fail "revoked kiosk-b is refused"; fi
check "kiosk-a still connects after kiosk-b's revocation" dev_pub kiosk-a -t "$R/device/kiosk-a/status" -m '{"state":"online"}'
check "revoke-device pres-pw (password)" bash -c "timeout 30 '$PROV/revoke-device' --destdir '$ROOT' --id pres-pw --pid $BROKER_PID >/dev/null 2>&1"
sleep 0.5
check "revoked password device is refused" bash -c "! timeout $T mosquitto_pub -h 127.0.0.1 -p $P_PW -u pres-pw -P '$PPW' -t $R/room/sala-2/presence/pres-pw -m x 2>/dev/null"
check "revoking again is a no-op" bash -c "timeout 30 '$PROV/revoke-device' --destdir '$ROOT' --id kiosk-b >/dev/null 2>&1"
check "kiosk-b can be enrolled again after revocation (new certificate)" bash -c "
    timeout 30 '$PROV/enroll-device' --destdir '$ROOT' --id kiosk-b --type checkin_kiosk --pid $BROKER_PID >/dev/null 2>&1 &&
    ! cmp -s '$TMP/kb.crt' '$D/kiosk-b/kiosk-b.crt'"
sleep 0.5
check "re-enrolled kiosk-b connects with its new certificate" dev_pub kiosk-b -t "$R/device/kiosk-b/status" -m '{"state":"online"}'
check "the broker is still running" kill -0 "$BROKER_PID"

# --- 5. the real daemon with the generated configuration ------------------------------
# The built binary (not the installed fake) runs from a copy of the generated config.yaml
# in which only paths and ports change: data_dir into the temp dir, each
# /run/credentials/medic-edge.service/NAME to the file the installed unit's
# LoadCredential=NAME:PATH names (under the temp root), the broker's and HTTP ports to free
# loopback ones, and no cloud. Username, password, certificate and key are the installer's.
REPO=$(cd "$PROV/.." && pwd)
ME_REAL=${MEDIC_EDGE_BIN:-$REPO/.build/debug/medic-edge}
if [[ ! -x $ME_REAL ]]; then
    echo "SKIP - the real daemon with the generated configuration: no built medic-edge at $ME_REAL (swift build first, or set MEDIC_EDGE_BIN)"
    finish
    exit
fi
# The daemon subscriber above used the daemon's client id: stop it (and the others) first.
for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
BG_PIDS=()
read -r P_HTTP P_HTTPS < <(python3 - <<'EOF'
import socket
socks = []
for _ in range(2):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(*[s.getsockname()[1] for s in socks])
for s in socks: s.close()
EOF
)
DDIR=$TMP/daemon
mkdir -p "$DDIR"
DCONF=$DDIR/config.yaml
UNIT=$ROOT/etc/systemd/system/medic-edge.service
if ! python3 - "$CONFIG" "$UNIT" "$ROOT" "$DDIR" "$P_DAEMON" "$P_HTTP" "$P_HTTPS" >"$DCONF" <<'EOF'; then
import re, sys
config, unit, root, ddir, p_mqtt, p_http, p_https = sys.argv[1:]
creds = {}
for line in open(unit):
    m = re.match(r"LoadCredential=([^:]+):(.+)$", line.strip())
    if m:
        creds[m.group(1)] = root + m.group(2)
out, skipping = [], False
for line in open(config).read().splitlines():
    if skipping and (line.startswith(" ") or not line.strip()):
        continue
    skipping = False
    if line.startswith("cloud:"):          # no cloud: nothing leaves the test machine
        skipping = True
        continue
    line = re.sub(r"^data_dir: .*", "data_dir: " + ddir + "/data", line)
    line = re.sub(r"/run/credentials/medic-edge\.service/([A-Za-z0-9_-]+)", lambda m: creds[m.group(1)], line)
    line = re.sub(r"(cert_file: )(/etc/\S+)", lambda m: m.group(1) + root + m.group(2), line)
    line = re.sub(r"^(mqtt: \{.*port: )1883\b", lambda m: m.group(1) + p_mqtt, line)
    line = re.sub(r"(\blisten: )127\.0\.0\.1:8080\b", lambda m: m.group(1) + "127.0.0.1:" + p_http, line)
    line = re.sub(r"(\btls_listen: )0\.0\.0\.0:8443\b", lambda m: m.group(1) + "127.0.0.1:" + p_https, line)
    out.append(line)
text = "\n".join(out) + "\n"
# Everything the daemon opens is under the temp dir, and it binds loopback only.
for bad in ("/run/credentials", "/var/lib", "0.0.0.0", "cloud:", "port: 1883", ":8080", ":8443"):
    assert bad not in text, bad
for p in re.findall(r"_(?:file|dir): (\S+)", text):
    assert p.startswith(root) or p.startswith(ddir), p
print(text, end="")
EOF
    bail "the generated config.yaml rewritten to temp paths and free ports"
fi
pass "the generated config.yaml rewritten to temp paths and free loopback ports (nothing else changed)"
CA_PEM=$ROOT/etc/medic-edge/tls/medic-edge-ca.crt
SECRET=senha-do-teste-$RANDOM$RANDOM

# The operator commands (CONTRACT §5: they read no secret) on the generated config AS IT IS:
# only the test install's DESTDIR goes in front of its /etc paths and the data directory
# moves to the temp dir (the same one the daemon uses below). The cloud stays, and the
# secrets stay under /run/credentials/medic-edge.service, which a shell cannot read (here
# it does not exist; below, a copy that exists but is root-only, read as another user).
OPCONF=$DDIR/config-as-installed.yaml
sed -e "s#^data_dir: .*#data_dir: $DDIR/data#" -e "s# /etc/medic-edge/# $ROOT/etc/medic-edge/#g" "$CONFIG" >"$OPCONF"
check "the as-installed config keeps the cloud and the /run/credentials secrets (only DESTDIR and data_dir changed)" bash -c "
    grep -q '^cloud:' '$OPCONF' && [[ \$(grep -c ': /run/credentials/medic-edge.service/' '$OPCONF') == 4 ]] &&
    [[ \$(diff '$CONFIG' '$OPCONF' | grep -c '^>') == \$(grep -cE '^data_dir:| /etc/medic-edge/' '$CONFIG') ]]"
check "the credentials are unreadable from this shell (as on an installed box)" \
    test ! -r /run/credentials/medic-edge.service/mqtt-password
op() {  # op NAME EXPECTED-TEXT COMMAND... : exits 0 and prints EXPECTED-TEXT
    local name=$1 want=$2; shift 2
    if timeout 30 "$ME_REAL" "$@" --config "$OPCONF" >"$DDIR/op.out" 2>&1 </dev/null && grep -qF -- "$want" "$DDIR/op.out"; then
        pass "medic-edge $name on the as-installed config"
    else
        cat "$DDIR/op.out"; fail "medic-edge $name on the as-installed config"
    fi
}
if printf '%s\n' "$SECRET" | timeout 30 "$ME_REAL" staff add recepcao --config "$OPCONF" >"$DDIR/staff.out" 2>&1 \
    && grep -qF 'staff account "recepcao" created' "$DDIR/staff.out"; then
    pass "medic-edge staff add on the as-installed config"
else cat "$DDIR/staff.out"; fail "medic-edge staff add on the as-installed config"; fi
printf '%s\n' "outra-senha-123" | timeout 30 "$ME_REAL" staff add temporario --config "$OPCONF" >/dev/null 2>&1 || true
op "staff list" temporario staff list
op "staff remove" 'staff account "temporario" removed' staff remove temporario
# A dead letter and a device reject, as the daemon writes them, for outbox and rejects to show.
seed_rows() { python3 - "$DDIR/data/medic-edge.sqlite" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("INSERT INTO outbox_dead (seq, id, name, class, source, data, created_ms, bytes, status, reason, failed_ms) "
           "VALUES (1, '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b', 'clinic/checkin.recorded', 0, 'appointment:a1', '{}', "
           "1764421331000, 2, 400, 'refused by the cloud', 1764421332000)")
db.execute("INSERT INTO rejects (received_ms, topic, kind, device_id, msg_id, reason, detail) VALUES "
           "(1764421333000, 'clinic/test-site/room/sala-2/environment/env-1', 'environment', 'env-1', NULL, 'out_of_range', 'temperature_c')")
db.commit()
EOF
}
check "a dead letter and a device reject written into that database" seed_rows
op "status" "dead letters:    1" status
op "outbox dead-letters" 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b outbox dead-letters
op "rejects" out_of_range rejects
op "outbox retry" "1 event(s) re-queued" outbox retry
op "outbox list" clinic/checkin.recorded outbox list
check "medic-edge run on the as-installed config stops with one line naming the unreadable secret" bash -c "
    ! timeout 30 '$ME_REAL' run --config '$OPCONF' >'$DDIR/run-noread.out' 2>&1 &&
    [[ \$(wc -l <'$DDIR/run-noread.out') == 1 ]] && grep -q 'config error: mqtt.password_file: cannot read secret file' '$DDIR/run-noread.out'"

# The same as the service user would be in a shell: the credentials exist but are root-only.
CREDS=$TMP/run-credentials/medic-edge.service
mkdir -p "$CREDS" && chmod 0700 "$TMP/run-credentials" "$CREDS"
for c in mqtt-password events-url directus-token console-key; do printf 'secret-%s\n' "$c" >"$CREDS/$c"; chmod 0600 "$CREDS/$c"; done
NOBODY_DIR=$TMP/as-nobody
mkdir -p "$NOBODY_DIR/data" && chown -R nobody "$NOBODY_DIR" && chmod 0700 "$NOBODY_DIR/data"
# (The console certificate is world-readable on the box; the test root's /etc/medic-edge is
# not traversable by nobody, as it is root-owned there: a copy stands in for it.)
install -m 0644 "$ROOT/etc/medic-edge/tls/console.crt" "$NOBODY_DIR/console.crt"
sed -e "s#^data_dir: .*#data_dir: $NOBODY_DIR/data#" -e "s#/run/credentials/medic-edge.service/#$CREDS/#g" \
    -e "s#$ROOT/etc/medic-edge/tls/console.crt#$NOBODY_DIR/console.crt#" "$OPCONF" >"$NOBODY_DIR/config.yaml"
chmod 0644 "$NOBODY_DIR/config.yaml"
as_nobody() { timeout 30 setpriv --reuid=nobody --regid=nogroup --clear-groups "$ME_REAL" "$@" --config "$NOBODY_DIR/config.yaml"; }
if ! setpriv --reuid=nobody --regid=nogroup --clear-groups test -x "$ME_REAL"; then
    echo "SKIP - operator commands as an unprivileged user: $ME_REAL is not executable by nobody"
elif setpriv --reuid=nobody --regid=nogroup --clear-groups test -r "$CREDS/mqtt-password"; then
    fail "the root-only credentials copy is unreadable by nobody"
else
    nobody_ops() {
        printf '%s\n' 'senha-nobody-123' | as_nobody staff add ana >"$NOBODY_DIR/ops.out" 2>&1 &&
            as_nobody status </dev/null >>"$NOBODY_DIR/ops.out" 2>&1 && grep -q '^site:' "$NOBODY_DIR/ops.out" &&
            as_nobody outbox list </dev/null >>"$NOBODY_DIR/ops.out" 2>&1 &&
            as_nobody rejects </dev/null >>"$NOBODY_DIR/ops.out" 2>&1 && grep -q 'no rejected messages' "$NOBODY_DIR/ops.out" ||
            { cat "$NOBODY_DIR/ops.out"; return 1; }
    }
    nobody_run() {
        ! as_nobody run >"$NOBODY_DIR/run.out" 2>&1 </dev/null &&
            [[ $(wc -l <"$NOBODY_DIR/run.out") == 1 ]] &&
            grep -q 'config error: mqtt.password_file: cannot read secret file' "$NOBODY_DIR/run.out" ||
            { cat "$NOBODY_DIR/run.out"; return 1; }
    }
    check "as an unprivileged user with root-only credentials: staff add, status, outbox list, rejects exit 0" nobody_ops
    check "as that user, run stops with one line naming the unreadable secret" nobody_run
fi
"$ME_REAL" run --config "$DCONF" >"$DDIR/daemon.log" 2>&1 &
DAEMON_PID=$!
d_up=0
for _ in $(seq 1 300); do   # up to 30 s: a debug build on a busy machine
    curl -fsS --max-time 1 "http://127.0.0.1:$P_HTTP/healthz" >/dev/null 2>&1 && { d_up=1; break; }
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.1
done
if [[ $d_up != 1 ]]; then
    echo "--- daemon log (tail)"; tail -n 20 "$DDIR/daemon.log"
    bail "the real daemon starts with the generated configuration"
fi
pass "the real daemon starts with the generated configuration ($ME_REAL)"

mqtt_connected() {
    local i
    for ((i = 0; i < T * 2 * 10; i++)); do
        curl -fsS --max-time 1 "http://127.0.0.1:$P_HTTP/api/v1/status" 2>/dev/null \
            | python3 -c 'import json, sys; sys.exit(0 if json.load(sys.stdin)["mqtt"]["connected"] is True else 1)' 2>/dev/null \
            && return 0
        sleep 0.1
    done
    return 1
}
check "the daemon connects to the generated broker as medic-edge with the generated password (mqtt.connected true)" mqtt_connected
check "the broker refused nothing from the daemon" bash -c "! grep -qi 'refused' '$DDIR/daemon.log'"
# Its retained status (with a ts: not the stand-in published above), read with the daemon's credentials.
check "the daemon's retained online status is on $R/edge/status" bash -c "
    timeout $T mosquitto_sub -h 127.0.0.1 -p $P_DAEMON -u medic-edge -P '$DPW' -i medic-edge-probe -q 1 -C 1 -t '$R/edge/status' \
        | grep -q '\"state\":\"online\".*\"ts\":'"

# A kiosk scan end to end through the installed broker: kiosk-a (TLS, its certificate) to the
# daemon's own kiosk connection (client id medic-edge-kiosk, the same broker user and ACL) and
# the result back from it (read here with the daemon's credentials: a second kiosk-a
# connection would take the publisher's client id over).
kiosk_roundtrip() {
    local out=$DDIR/kiosk-roundtrip.out
    timeout "$T" mosquitto_sub -h 127.0.0.1 -p "$P_DAEMON" -u medic-edge -P "$DPW" -i medic-edge-probe2 -q 1 -C 1 \
        -t "$R/kiosk/kiosk-a/result" >"$out" 2>/dev/null &
    local sub=$!
    sleep 0.5
    dev_pub kiosk-a -t "$R/kiosk/kiosk-a/scan" -m '{"scan_id":"e2e-1","qr":"not-a-patient","ts":"2026-12-07T10:00:00Z"}' || return 1
    wait "$sub"
    grep -q '"scan_id":"e2e-1"' "$out" && grep -q '"outcome":"unknown_code"' "$out"
}
check "a kiosk scan end to end: kiosk-a (TLS) to the daemon's kiosk connection, its result back (unknown_code)" kiosk_roundtrip

HTTPS=https://127.0.0.1:$P_HTTPS
check "the console answers over HTTPS with the installer's certificate (curl --cacert medic-edge-ca.crt)" bash -c "
    [[ \$(curl -sS --max-time $T --cacert '$CA_PEM' '$HTTPS/healthz') == '{\"status\":\"ok\"}' ]]"
check "the console certificate also verifies as https://localhost" \
    curl -fsS -o /dev/null --max-time "$T" --cacert "$CA_PEM" "https://localhost:$P_HTTPS/healthz"
check "HTTPS login with a staff account sets a Secure, HttpOnly session cookie" bash -c "
    curl -fsS --max-time $T --cacert '$CA_PEM' -D '$DDIR/login.headers' -o /dev/null -H 'Content-Type: application/json' \
        --data '{\"name\":\"recepcao\",\"password\":\"$SECRET\"}' '$HTTPS/api/v1/session' &&
    grep -i '^set-cookie: medic_edge_session=' '$DDIR/login.headers' | grep -qi '; *secure' &&
    grep -i '^set-cookie: medic_edge_session=' '$DDIR/login.headers' | grep -qi '; *httponly'"
check "without the local CA the console certificate is not trusted (curl exit 60)" bash -c "
    curl -sS -o /dev/null --max-time $T '$HTTPS/healthz' 2>/dev/null; [[ \$? == 60 ]]"
check "plain HTTP to the TLS port is not served" bash -c "
    ! curl -sS --max-time $T -o '$DDIR/plain.body' 'http://127.0.0.1:$P_HTTPS/' 2>/dev/null && ! grep -qi 'html' '$DDIR/plain.body' 2>/dev/null"
check "plain HTTP stays on the loopback listener" bash -c "
    [[ \$(curl -sS --max-time $T 'http://127.0.0.1:$P_HTTP/healthz') == '{\"status\":\"ok\"}' ]]"
check "no secret in the daemon's log" bash -c "! grep -qF -e '$DPW' -e '$SECRET' '$DDIR/daemon.log'"

kill -TERM "$DAEMON_PID"
d_rc=timeout
for _ in $(seq 1 150); do
    if ! kill -0 "$DAEMON_PID" 2>/dev/null; then d_rc=0; wait "$DAEMON_PID" || d_rc=$?; DAEMON_PID=''; break; fi
    sleep 0.1
done
check "the daemon exits 0 on SIGTERM" test "$d_rc" = 0

# The daemon's session (persistent, client id medic-edge) outlives it in the broker: a scan
# sent now is queued for it. Stopping the broker must not write that scan (a QR code) to disk.
if dev_pub kiosk-a -t "$R/kiosk/kiosk-a/scan" -m '{"scan_id":"p-1","qr":"PROOF-PERSISTED-QR"}'; then
    kill -TERM "$BROKER_PID"
    for _ in $(seq 1 50); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$BROKER_PID" 2>/dev/null; then fail "the broker stops on SIGTERM"
    else
        BROKER_PID=''
        check "a queued kiosk scan is not on the broker's disk after it stops (no persistence)" bash -c "
            ! grep -rqaF PROOF-PERSISTED-QR '$TMP/broker-data' && [[ -z \$(ls -A '$TMP/broker-data') ]]"
    fi
else fail "kiosk-a publishes a scan while the daemon is stopped"; fi

finish
