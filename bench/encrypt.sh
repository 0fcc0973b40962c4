#!/usr/bin/env bash
# Issue 14, step 1: what encrypting the hop between machines costs, measured on the lab.
# One cross-machine hop by name (client container on m1 → mesh proxy on m1 → server on m2):
#   plain       today's mesh: HAProxy (TCP) on m1 → the replica's port published on m2's address;
#   hop2        not a candidate: m1's proxy → a second HAProxy on m2 in clear → the replica, to
#               tell the cost of the gateway's extra hop from the cost of TLS;
#   tls         HAProxy on m1 → mutual TLS 1.3 (ECDSA P-256, fleet CA) → ONE gateway HAProxy on
#               m2 (host network, 172.31.77.12:7443) that picks the replica by SNI and forwards
#               to its port published on 127.0.0.1 (tls) or to its container address (tls-cip);
#               tls-full is tls with `no-ssl-reuse` (every connection a full handshake);
#   http-reuse  tls-cip with both proxies in HTTP mode and `http-reuse always` on m1's side:
#               client connections share pooled TLS connections to the gateway;
#   wg          the plaintext hop carried by a userspace WireGuard tunnel (Debian's
#               wireguard-go in a host-network container with NET_ADMIN and /dev/net/tun on m1
#               and on m2);
# and the ingress (Caddy 2.6) reaching a replica on m2: in clear, over mutual TLS straight to
# the gateway (reverse_proxy transport http tls_client_auth …), and through the local HAProxy.
# Servers on m2: busybox httpd (closes every connection: a new connection per request at every
# hop) serving a small file and a 50 MB one, and Caddy's file-server (keeps connections alive)
# serving the same small file. `hey` runs in a client container on m1, as in bench/mesh.sh.
# Nothing here uses hoist itself: every container is started by hand, named enc-*, and removed
# on exit with the certificates (/tmp/enc-pki in each machine); /dev/net/tun, made in m1 and m2
# when missing, stays (a device node, as the rootless machine has one). The image
# hoist-bench/wireguard-go stays in the box's and the machines' engines.
# Usage: bash bench/encrypt.sh [REQUESTS] [CONCURRENCY] [RUNS]   (defaults 10000, 8, 3)
#   ENC_ONLY="plain tls …" measures only the paths so named (rows of the others stay empty).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
c=${2:-8}
runs=${3:-3}
bulk_n=4 # 50 MB downloads per bulk measurement
command -v hey >/dev/null || { echo "bench: hey not found (apt-get install hey)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "bench: openssl not found" >&2; exit 1; }
lab=${HOIST_LAB_DIR:-/var/tmp/hoist-lab}
# Only m1 and m2 are used. A lab whose machines answer is used as it is, even one `lab.sh status`
# calls STALE (started by another checkout's lab.sh): `ensure` would rebuild it under the others.
if ! docker exec m1 docker info >/dev/null 2>&1 || ! docker exec m2 docker info >/dev/null 2>&1; then
    bash tests/lab/lab.sh ensure 3 >/dev/null
fi
# Like bench/common.sh: hold the lab exclusively while measuring, so no test deploys or kills
# machines meanwhile (ENC_LOCK_WAIT seconds at most; 0 = measure without the lock, and say so).
lock_note="lab held exclusively"
if [ -z "${HOIST_BENCH_LOCKED:-}" ]; then
    exec 7>"$lab/.use.lock"
    if ! flock -x -w "${ENC_LOCK_WAIT:-1800}" 7; then
        lock_note="lab shared with other tests (lock not taken)"
        echo "bench: lab busy, measuring without the lock" >&2
    fi
fi
m1=172.31.77.11 m2=172.31.77.12
wg1=10.99.0.1 wg2=10.99.0.2
wg_image=hoist-bench/wireguard-go:0.0.20220316
work=$(mktemp -d)
in_m1() { docker exec -i m1 docker "$@"; }
in_m2() { docker exec -i m2 docker "$@"; }
cleanup() {
    for m in m1 m2; do
        docker exec "$m" sh -c 'docker rm -f $(docker ps -aq --filter name=^enc-) >/dev/null 2>&1;
            docker network rm enc-net >/dev/null 2>&1; rm -rf /tmp/enc-pki /tmp/enc-hey' || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
cleanup_first() { for m in m1 m2; do docker exec "$m" sh -c 'docker rm -f $(docker ps -aq --filter name=^enc-) >/dev/null 2>&1; docker network rm enc-net >/dev/null 2>&1' || true; done; }
# Everything the runs use, from scratch: run again when the lab is rebuilt under the bench
# (other checkouts on this box rebuild it when their lab.sh differs).
setup() {
cleanup_first

# --- the fleet CA and one certificate per machine (server and client auth, SAN m2.hoist and
# *.m2.hoist: the SNI <replica-key>.m2.hoist both selects a replica and names the machine) ---
pki=$work/pki
rm -rf "$pki" && mkdir -p "$pki"
(
    cd "$pki"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -subj /CN=hoist-fleet-bench-ca -days 30 -out ca.pem \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    for m in m1 m2; do
        openssl ecparam -name prime256v1 -genkey -noout -out "$m.key" 2>/dev/null
        openssl req -new -key "$m.key" -subj "/CN=$m.hoist" -out "$m.csr" 2>/dev/null
        printf 'subjectAltName=DNS:%s.hoist,DNS:*.%s.hoist\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n' \
            "$m" "$m" >"$m.ext"
        openssl x509 -req -in "$m.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
            -extfile "$m.ext" -out "$m.crt" 2>/dev/null
        cat "$m.crt" "$m.key" >"$m.pem" # HAProxy's crt: certificate and key in one file
    done
    rm -f ca.key ./*.csr ./*.ext ca.srl
)

# --- the wireguard-go image: the busybox base + Debian's wireguard-go and wg (both link only
# glibc, copied from the box), built from local files like tests/lab/images.sh does ---
if ! docker image inspect "$wg_image" >/dev/null 2>&1; then
    ctx=$work/wgimg
    mkdir -p "$ctx/debs" "$ctx/x" "$ctx/rootfs/bin"
    (cd "$ctx/debs" && apt-get download -q wireguard-go=0.0.20220316-1+b4 wireguard-tools >/dev/null 2>&1) ||
        { apt-get update -qq && (cd "$ctx/debs" && apt-get download -q wireguard-go wireguard-tools >/dev/null 2>&1); }
    for d in "$ctx"/debs/*.deb; do dpkg-deb -x "$d" "$ctx/x"; done
    cp "$ctx/x/usr/bin/wireguard-go" "$ctx/x/usr/bin/wg" "$ctx/rootfs/bin/"
    for lib in $(ldd "$ctx/x/usr/bin/wg" "$ctx/x/usr/bin/wireguard-go" | awk '$2 == "=>" { print $3 } $1 ~ /^\// && $1 !~ /:$/ { print $1 }' | sort -u); do
        mkdir -p "$ctx/rootfs$(dirname "$lib")"
        cp -L "$lib" "$ctx/rootfs$lib"
    done
    printf 'FROM hoist-test/base:latest\nCOPY rootfs/ /\nRUN mkdir -p /var/run/wireguard\n' >"$ctx/Dockerfile"
    DOCKER_BUILDKIT=0 docker build -q -t "$wg_image" "$ctx" >/dev/null
fi
for m in m1 m2; do
    docker exec "$m" docker image inspect "$wg_image" >/dev/null 2>&1 ||
        docker save "$wg_image" | docker exec -i "$m" docker load >/dev/null
done
wgkey() { docker run --rm "$wg_image" wg genkey; }
wgpub() { docker run --rm -i "$wg_image" wg pubkey; }
k1=$(wgkey) k2=$(wgkey)
p1=$(wgpub <<<"$k1") p2=$(wgpub <<<"$k2")
echo "$k1" >"$pki/wg-m1.key"
echo "$k2" >"$pki/wg-m2.key"
for m in m1 m2; do
    docker exec "$m" sh -c 'rm -rf /tmp/enc-pki && mkdir -p /tmp/enc-pki'
    docker cp "$pki/." "$m:/tmp/enc-pki/"
    docker exec "$m" sh -c 'chmod 600 /tmp/enc-pki/*.key /tmp/enc-pki/*.pem'
    # userspace tunnels need the tun device; a lab machine has none until it is made
    docker exec "$m" sh -c '[ -c /dev/net/tun ] || { mkdir -p /dev/net && mknod /dev/net/tun c 10 200; }'
done

# --- WireGuard: wg0 in each machine's own network namespace (host network), 10.99.0.0/24 ---
start_wg() { # MACHINE KEYFILE MYADDR PEERPUB PEERENDPOINT PEERADDR
    docker exec "$1" docker run -d --name enc-wg --network host --cap-add NET_ADMIN \
        --device /dev/net/tun -v /tmp/enc-pki:/pki:ro -e WG_PROCESS_FOREGROUND=1 "$wg_image" sh -c "
        trap 'kill \$pid; exit 0' TERM
        wireguard-go -f wg0 & pid=\$!
        for i in 1 2 3 4 5 6 7 8 9 10; do [ -S /var/run/wireguard/wg0.sock ] && break; sleep 0.2; done
        wg set wg0 private-key /pki/$2 listen-port 51820 peer $4 endpoint $5:51820 allowed-ips $6/32
        ip addr add $3/24 dev wg0 && ip link set wg0 mtu 1420 up
        wait \$pid" >/dev/null
}
start_wg m1 wg-m1.key "$wg1" "$p2" "$m2" "$wg2"
start_wg m2 wg-m2.key "$wg2" "$p1" "$m1" "$wg1"
for i in $(seq 50); do docker exec m2 ip addr show wg0 2>/dev/null | grep -q "$wg2" && break; sleep 0.2; done

# --- the servers on m2 -------------------------------------------------------------------------
# busybox httpd: published on m2's address (today's mesh), on 127.0.0.1 (behind the gateway)
# and on the tunnel address (wg).
in_m2 run -d --name enc-bb -p "$m2::80" -p 127.0.0.1::80 -p "$wg2::80" hoist-test/base:latest sh -c \
    'mkdir -p /www && echo hello from the encryption bench >/www/index.html &&
     dd if=/dev/zero of=/www/big bs=1M count=50 2>/dev/null && trap "exit 0" TERM &&
     httpd -f -p 80 -h /www & wait' >/dev/null
in_m2 run -d --name enc-ka -p "$m2::80" -p 127.0.0.1::80 -p "$wg2::80" --entrypoint sh hoist-test/caddy:latest -c \
    'mkdir -p /www && echo hello from the encryption bench >/www/index.html &&
     exec caddy file-server --root /www --listen :80' >/dev/null
port() { in_m2 port "$1" 80/tcp | awk -F: -v a="$2" '$1 == a { print $2 }'; }
sleep 1
bb_pub=$(port enc-bb "$m2") bb_lo=$(port enc-bb 127.0.0.1) bb_wg=$(port enc-bb "$wg2")
ka_pub=$(port enc-ka "$m2") ka_lo=$(port enc-ka 127.0.0.1) ka_wg=$(port enc-ka "$wg2")
bb_cip=$(in_m2 inspect -f '{{.NetworkSettings.IPAddress}}' enc-bb)
ka_cip=$(in_m2 inspect -f '{{.NetworkSettings.IPAddress}}' enc-ka)

# --- the gateway on m2: host network, the only listener between machines, TLS 1.3 both ways ---
cat >"$work/gw.cfg" <<EOF
global
    maxconn 4096
defaults
    mode tcp
    timeout connect 3s
    timeout client 1h
    timeout server 1h
frontend gateway
    bind $m2:7443 ssl crt /pki/m2.pem ca-file /pki/ca.pem verify required ssl-min-ver TLSv1.3
    use_backend bb if { ssl_fc_sni -i bb.m2.hoist }
    use_backend bbcip if { ssl_fc_sni -i bbcip.m2.hoist }
    use_backend ka if { ssl_fc_sni -i ka.m2.hoist }
    use_backend kacip if { ssl_fc_sni -i kacip.m2.hoist }
    use_backend bbhttp if { ssl_fc_sni -i bbhttp.m2.hoist }
# The same gateway hop without TLS, for the bench only: what the second proxy alone costs.
frontend hop2_bb
    bind $m2:7080
    default_backend bbcip
frontend hop2_ka
    bind $m2:7081
    default_backend kacip
backend bb
    server r 127.0.0.1:$bb_lo
backend bbcip
    server r $bb_cip:80
backend ka
    server r 127.0.0.1:$ka_lo
backend kacip
    server r $ka_cip:80
# HTTP mode behind the TCP frontend: the TLS connection from m1 stays open across requests
# while each request gets its own connection to the replica (busybox httpd closes every one).
backend bbhttp
    mode http
    server r $bb_cip:80
EOF
docker cp "$work/gw.cfg" m2:/tmp/enc-pki/gw.cfg
in_m2 run -d --name enc-gw --network host -v /tmp/enc-pki:/pki:ro hoist-test/haproxy:latest \
    haproxy -W -db -f /pki/gw.cfg >/dev/null

# --- the mesh proxy on m1 (alias `far`), one listener per path --------------------------------
tls="ssl crt /pki/m1.pem ca-file /pki/ca.pem verify required ssl-min-ver TLSv1.3"
cat >"$work/mesh.cfg" <<EOF
global
    maxconn 4096
defaults
    mode tcp
    timeout connect 3s
    timeout client 1h
    timeout server 1h
listen plain_bb
    bind :8001
    server r $m2:$bb_pub
listen plain_ka
    bind :8002
    server r $m2:$ka_pub
listen tls_bb
    bind :8003
    server gw $m2:7443 $tls sni str(bb.m2.hoist)
listen tls_ka
    bind :8004
    server gw $m2:7443 $tls sni str(ka.m2.hoist)
listen tlsfull_bb
    bind :8005
    server gw $m2:7443 $tls sni str(bb.m2.hoist) no-ssl-reuse
listen tlscip_bb
    bind :8006
    server gw $m2:7443 $tls sni str(bbcip.m2.hoist)
listen tlscip_ka
    bind :8010
    server gw $m2:7443 $tls sni str(kacip.m2.hoist)
listen hop2_bb
    bind :8011
    server gw $m2:7080
listen hop2_ka
    bind :8012
    server gw $m2:7081
# HTTP mode on the caller's side: idle TLS connections to the gateway are pooled and reused by
# later client connections (http-reuse), so new client connections cost no TLS handshake.
listen httpreuse_bb
    bind :8013
    mode http
    http-reuse always
    server gw $m2:7443 $tls sni str(bbhttp.m2.hoist)
listen nocert_bb
    bind :8009
    server gw $m2:7443 ssl ca-file /pki/ca.pem verify required ssl-min-ver TLSv1.3 sni str(bb.m2.hoist)
listen wg_bb
    bind :8007
    server r $wg2:$bb_wg
listen wg_ka
    bind :8008
    server r $wg2:$ka_wg
EOF
docker cp "$work/mesh.cfg" m1:/tmp/enc-pki/mesh.cfg
in_m1 network create enc-net >/dev/null
in_m1 run -d --name enc-mesh --network enc-net --network-alias far -v /tmp/enc-pki:/pki:ro \
    hoist-test/haproxy:latest haproxy -W -db -f /pki/mesh.cfg >/dev/null

# --- the ingress on m1: Caddy to the replica on m2 in clear, over mTLS to the gateway, and
# through the local mesh proxy's TLS listener ---
cat >"$work/Caddyfile" <<EOF
{
    admin off
    auto_https off
}
:9001 {
    reverse_proxy $m2:$ka_pub
}
:9002 {
    reverse_proxy $m2:7443 {
        transport http {
            tls
            tls_client_auth /pki/m1.crt /pki/m1.key
            tls_trusted_ca_certs /pki/ca.pem
            tls_server_name ka.m2.hoist
        }
    }
}
:9003 {
    reverse_proxy far:8004
}
EOF
docker cp "$work/Caddyfile" m1:/tmp/enc-pki/Caddyfile
in_m1 run -d --name enc-ingress --network enc-net -v /tmp/enc-pki:/pki:ro hoist-test/caddy:latest \
    run --config /pki/Caddyfile --adapter caddyfile >/dev/null

# --- the client -----------------------------------------------------------------------------
in_m1 run -d --name enc-client --network enc-net --entrypoint sleep hoist-test/caddy:latest 86400 >/dev/null
docker cp /usr/bin/hey m1:/tmp/enc-hey
in_m1 cp /tmp/enc-hey enc-client:/bin/hey
sleep 1
# every path answers, and the gateway refuses a client without a fleet certificate
for u in far:8001 far:8002 far:8003 far:8004 far:8005 far:8006 far:8007 far:8008 far:8010 far:8011 far:8012 far:8013 enc-ingress:9001 enc-ingress:9002 enc-ingress:9003; do
    in_m1 exec enc-client wget -q -O- "http://$u/" | grep -q 'encryption bench' ||
        { echo "bench: http://$u/ does not answer" >&2; in_m2 logs enc-gw >&2; exit 1; }
done
# a client without a fleet certificate is refused by the gateway (listener :8009 has none); the
# same request through a listener that has one (:8003) is the control
probe() { in_m1 exec enc-client timeout 5 wget -q -O- "http://far:$1/" 2>/dev/null | grep -q 'encryption bench'; }
probe 8003 || { echo "bench: the control request through the gateway failed" >&2; exit 1; }
if probe 8009; then
    echo "bench: the gateway answered a client without a certificate" >&2; exit 1
fi
plain_listeners=$(docker exec m2 sh -c "ss -Hltn 2>/dev/null || netstat -ltn" | awk '{print $4}' | grep -c "^$m2:" || true)
}
setup

hey_run() { # HEY-ARGS... -> "req/s p50_ms p99_ms failed"
    in_m1 exec enc-client hey "$@" | awk '
        /Requests\/sec:/ { rps = $2 }
        /50% in/ { p50 = $3 * 1000 }
        /99% in/ { p99 = $3 * 1000 }
        /^  \[200\]/ { ok += $2 }
        /^  \[[0-9]+\]/ { all += $2 }
        /^Error distribution:/ { err = 1 }
        err && /^  \[[0-9]+\]/ { errs += $2 }
        END { printf "%.0f %.2f %.2f %d\n", rps, p50, p99, all - ok + errs }'
}
bulk_run() { # URL -> MB/s over $bulk_n sequential 50 MB downloads
    in_m1 exec enc-client hey -n "$bulk_n" -c 1 -disable-keepalive "$1" | awk -v n="$bulk_n" '
        /Total:/ { t = $2 } END { printf "%.0f\n", n * 50 * 1048576 / 1e6 / t }'
}

# path name | URL | mode
paths=(
    "plain|http://far:8001/|new"
    "hop2|http://far:8011/|new"
    "tls|http://far:8003/|new"
    "tls-full|http://far:8005/|new"
    "tls-cip|http://far:8006/|new"
    "http-reuse|http://far:8013/|new"
    "wg|http://far:8007/|new"
    "plain|http://far:8002/|ka"
    "hop2|http://far:8012/|ka"
    "tls|http://far:8004/|ka"
    "tls-cip|http://far:8010/|ka"
    "wg|http://far:8008/|ka"
    "ingress-plain|http://enc-ingress:9001/|new"
    "ingress-tls|http://enc-ingress:9002/|new"
    "ingress-via-mesh|http://enc-ingress:9003/|new"
)
bulk=("plain|http://far:8001/big" "hop2|http://far:8011/big" "tls|http://far:8003/big" "tls-cip|http://far:8006/big" "wg|http://far:8007/big")
res=$work/results
: >"$res"
udp_drops() { docker exec m1 awk '/^Udp:/ && $2 ~ /^[0-9]+$/ { print $6 }' /proc/net/snmp; } # RcvbufErrors
drops0=$(udp_drops)
hey_run -n 2000 -c "$c" -disable-keepalive http://far:8001/ >/dev/null # warm up
# ENC_HOLD=SECONDS: keep everything up that long before measuring (to look at it by hand)
sleep "${ENC_HOLD:-0}"
measure() { # RUN: every path once; fails when a path does not answer or a request fails
    local r=$1 p b name url mode args rps p50 p99 failed mbs
    for p in "${paths[@]}"; do
        IFS='|' read -r name url mode <<<"$p"
        [[ -z ${ENC_ONLY:-} || " $ENC_ONLY " == *" $name "* ]] || continue
        if [[ $mode == new ]]; then args=(-disable-keepalive); else args=(); fi
        read -r rps p50 p99 failed < <(hey_run -n "$n" -c "$c" "${args[@]}" "$url" || echo 0 0 0 0)
        echo "run $r: $name ($mode) $rps req/s p50 $p50 p99 $p99 failed $failed" >&2
        [[ $rps != 0 && $failed == 0 ]] || return 1
        echo "$r $name $mode $rps $p50 $p99 $failed" >>"$res"
    done
    for b in "${bulk[@]}"; do
        IFS='|' read -r name url <<<"$b"
        [[ -z ${ENC_ONLY:-} || " $ENC_ONLY " == *" $name "* ]] || continue
        mbs=$(bulk_run "$url" || echo 0)
        echo "run $r: $name bulk $mbs MB/s" >&2
        [[ $mbs != 0 ]] || return 1
        echo "$r $name bulk $mbs - - 0" >>"$res"
    done
}
for r in $(seq "$runs"); do
    for attempt in 1 2 3 4; do
        measure "$r" && break
        ((attempt < 4)) || { echo "bench: run $r failed 4 times" >&2; exit 1; }
        echo "bench: run $r failed (the lab changed under the bench?); setting up again" >&2
        sed -i "/^$r /d" "$res"
        setup
        drops0=$(udp_drops)
        hey_run -n 500 -c "$c" -disable-keepalive http://far:8001/ >/dev/null
    done
done

med() { awk -v n="$1" -v m="$2" -v f="$3" '$2 == n && $3 == m { print $f }' "$res" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
sum() { awk -v n="$1" -v m="$2" '$2 == n && $3 == m { s += $7 } END { print s + 0 }' "$res"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
label() {
    case $1 in
    plain) echo "plain: mesh proxy m1 → replica port on m2's address (today)" ;;
    hop2) echo "two proxies, no TLS: mesh proxy m1 → gateway m2 → replica's container address"
    ;;
    tls) echo "mTLS: mesh proxy m1 → gateway m2 (SNI) → replica on 127.0.0.1" ;;
    tls-full) echo "mTLS, no session resumption (no-ssl-reuse)" ;;
    http-reuse) echo "mTLS, HTTP mode both sides: pooled TLS connections (http-reuse always) → gateway → container address" ;;
    tls-cip) echo "mTLS: gateway m2 → replica's container address" ;;
    wg) echo "wireguard-go tunnel m1↔m2, plaintext mesh hop inside" ;;
    ingress-plain) echo "ingress Caddy m1 → replica port on m2's address (today)" ;;
    ingress-tls) echo "ingress Caddy m1 → gateway m2 directly (tls_client_auth)" ;;
    ingress-via-mesh) echo "ingress Caddy m1 → mesh proxy m1 (TLS listener) → gateway m2" ;;
    esac
}
echo "## Encrypting the hop between machines ($(date -u +%Y-%m-%d), $(nproc) cores, lab on one box, $lock_note)"
echo
echo "\`bash bench/encrypt.sh $n $c $runs\`: hey from a container on m1, $n requests, $c at a time, medians of $runs runs;"
echo "new = a new connection per request (\`-disable-keepalive\`, busybox httpd); keep-alive = hey and the"
echo "server (Caddy file-server) keep connections; bulk = $bulk_n × 50 MB, one at a time. Ratios against the"
echo "plaintext path of the same kind."
echo
echo "| path | conns | req/s | p50 ms | p99 ms | failed | req/s vs plain | p99 vs plain |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
row() { # NAME MODE BASE
    local rps p50 p99 brps bp99
    rps=$(med "$1" "$2" 4) p50=$(med "$1" "$2" 5) p99=$(med "$1" "$2" 6)
    [[ -n $rps ]] || return 0 # not measured (ENC_ONLY)
    brps=$(med "$3" "$2" 4) bp99=$(med "$3" "$2" 6)
    echo "| $(label "$1") | $([[ $2 == new ]] && echo new || echo keep-alive) | $rps | $p50 | $p99 | $(sum "$1" "$2") | $(ratio "$rps" "$brps") | $(ratio "$p99" "$bp99") |"
}
for p in plain hop2 tls tls-full tls-cip http-reuse wg; do row "$p" new plain; done
for p in plain hop2 tls tls-cip wg; do row "$p" ka plain; done
for p in ingress-plain ingress-tls ingress-via-mesh; do row "$p" new ingress-plain; done
echo
echo "| bulk, 50 MB over one connection | MB/s | vs plain |"
echo "| --- | --- | --- |"
for p in plain hop2 tls tls-cip wg; do
    [[ -n $(med "$p" bulk 4) ]] || continue
    echo "| $(label "$p") | $(med "$p" bulk 4) | $(ratio "$(med "$p" bulk 4)" "$(med plain bulk 4)") |"
done
echo
echo "Listeners on m2's lab address during the run: $plain_listeners (replica ports published for the plain"
echo "path, the gateway's 7443; wireguard's UDP 51820 is not a TCP listener)."
echo "UDP datagrams m1 dropped for a full socket receive buffer during the runs (wireguard-go's"
echo "socket; nothing else here uses UDP): $(($(udp_drops) - drops0))."
