#!/usr/bin/env bash
# A throwaway single-node Ceph S3 endpoint for svault's S3 tests and benches: one mon, one bluestore OSD
# on a sparse file, and radosgw on 127.0.0.1, every file under one directory, no systemd, no mgr (S3
# needs none). The recipe follows ../shared/notes/ceph-rgw/ (what worked on this machine kind).
#
# Usage: scripts/ceph-rgw.sh start        create the cluster (first time) or start it again; prints the
#                                         endpoint and keys as shell assignments on its last lines
#        scripts/ceph-rgw.sh stop [--purge]   stop every daemon (and with --purge delete the directory)
#        scripts/ceph-rgw.sh rgw-stop | rgw-start   stop or start radosgw alone (a server restart in tests)
#        scripts/ceph-rgw.sh install      apt-get install the Ceph packages where missing
# Env:   CEPH_BASE (default ${TMPDIR:-/tmp}/svault-ceph), RGW_PORT (7480), MON_PORT (3300),
#        S3_ACCESS_KEY / S3_SECRET_KEY (svault-test / svault-test-secret)
set -euo pipefail
BASE=${CEPH_BASE:-${TMPDIR:-/tmp}/svault-ceph}
RGW_PORT=${RGW_PORT:-7480}
MON_PORT=${MON_PORT:-3300}
AK=${S3_ACCESS_KEY:-svault-test}
SK=${S3_SECRET_KEY:-svault-test-secret}
CONF=$BASE/ceph.conf
PACKAGES="ceph-mon ceph-osd radosgw ceph-common curl"
DAEMONS="client.rgw.a osd.0 mon.a" # in stopping order

say() { echo "ceph-rgw: $*" >&2; }

installed() { command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null && command -v radosgw >/dev/null && command -v ceph >/dev/null; }

install() {
  installed && return 0
  # No recommends: they pull in the dashboard, mgr modules and Python stacks the S3 tests never use.
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
}

write_conf() {
  local fsid=$1
  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$MON_PORT]
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
run dir = $BASE/run
admin socket = $BASE/run/\$name.asok
pid file = $BASE/run/\$name.pid
log file = $BASE/log/\$name.log
log to stderr = false
err to stderr = true
mon cluster log file = $BASE/log/cluster.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
# a test machine's disk may be fuller than a real cluster's would be allowed to get
mon data avail warn = 2
mon data avail crit = 1
[mon]
mon data = $BASE/mon.\$id
[osd]
osd data = $BASE/osd.\$id
osd objectstore = bluestore
osd fast shutdown = true
osd memory target = 1073741824
bluestore block path = $BASE/osd.\$id/block.img
bluestore block create = true
# sparse: only what is written takes disk space
bluestore block size = 21474836480
bluestore fsck on mkfs = false
bluestore fsck on mount = false
[client.rgw.a]
rgw data = $BASE/rgw.a
# without tcp_nodelay a small GET waits 45 ms for Nagle's algorithm
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw dns name = localhost
# radosgw asks for 'secure' mon connections by default, which auth=none cannot give
ms mon client mode = crc
debug rgw = 0/0
EOF
}

wait_for() { # what, tries (of 0.5 s), command...
  local what=$1 tries=$2
  shift 2
  for _ in $(seq 1 "$tries"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  say "$what did not come up (logs in $BASE/log)"
  return 1
}

rgw_start() {
  radosgw --conf "$CONF" -n client.rgw.a
  # The first start creates radosgw's pools, which takes most of the start-up time.
  wait_for radosgw 240 curl -s --max-time 2 -o /dev/null "http://127.0.0.1:$RGW_PORT/"
}

stop_daemon() {
  local f=$BASE/run/$1.pid pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && { say "$1 ($pid) did not stop, SIGKILL"; kill -KILL "$pid"; }
  fi
  rm -f "$f"
}

start() {
  installed || { say "Ceph is not installed ($PACKAGES): run '$0 install' as root"; exit 3; }
  local fresh=0
  if [ ! -f "$CONF" ]; then
    fresh=1
    mkdir -p "$BASE"/{mon.a,osd.0,rgw.a,run,log}
    local fsid
    fsid=$(cat /proc/sys/kernel/random/uuid)
    write_conf "$fsid"
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT]" "$BASE/monmap" >/dev/null
    ceph-mon --conf "$CONF" -i a --mkfs --monmap "$BASE/monmap"
  fi
  ceph-mon --conf "$CONF" -i a
  ceph --conf "$CONF" -s --connect-timeout 30 >/dev/null
  if [ "$fresh" = 1 ]; then
    local uuid id
    uuid=$(cat /proc/sys/kernel/random/uuid)
    id=$(ceph --conf "$CONF" osd new "$uuid")
    ceph-osd --conf "$CONF" -i "$id" --mkfs --osd-uuid "$uuid" 2>"$BASE/log/osd-mkfs.err"
  fi
  ceph-osd --conf "$CONF" -i 0
  osd_up() { ceph --conf "$CONF" osd stat -f json 2>/dev/null | grep -q '"num_up_osds":1'; }
  wait_for "the OSD" 120 osd_up
  rgw_start
  if [ "$fresh" = 1 ]; then
    radosgw-admin --conf "$CONF" user create --uid=svault-test --display-name=svault-test \
      --access-key="$AK" --secret-key="$SK" >/dev/null
  fi
  echo "AWS_ENDPOINT_URL=http://127.0.0.1:$RGW_PORT"
  echo "AWS_ACCESS_KEY_ID=$AK"
  echo "AWS_SECRET_ACCESS_KEY=$SK"
}

stop() {
  for n in $DAEMONS; do stop_daemon "$n"; done
  if [ "${1:-}" = --purge ]; then rm -rf "$BASE"; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  rgw-stop) stop_daemon client.rgw.a ;;
  rgw-start) rgw_start ;;
  install) install ;;
  *) echo "usage: $0 start | stop [--purge] | rgw-stop | rgw-start | install" >&2; exit 2 ;;
esac
