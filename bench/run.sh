#!/usr/bin/env bash
# Side-by-side benchmark: legate, nginx and HAProxy (Debian's) as reverse proxies to the same
# origins on loopback, one worker each, measured interleaved in one run, printed as a Markdown
# table with each value's ratio to legate. Method: ../shared/research/perf-baseline.md (proxy
# pinned on CPU 1; load generator and origins on CPU 0; warm-up, then repetitions interleaved
# A B C A B C ...; medians).
#
# Scenarios (BENCH_SCENARIOS, default "h1 h2c h2c-up"):
#   h1      wrk -t1 -c50 --latency, HTTP/1.1 keep-alive in and out, 13-byte body
#   h1-4k   the same with a 4096-byte body
#   h1-json1k, h1-json64k  HTTP/1.1 with Accept-Encoding: gzip for a 1 KiB / 64 KiB JSON body: with
#           targets legate-gzip (the compressor filter) and nginx-gzip (gzip on) it is the cost of
#           compressing; plain legate and nginx pass the body through
#   h1-cached  HTTP/1.1 for a response the origin marks max-age=3600: legate-cache (the cache
#           filter) and nginx-cache (proxy_cache) answer from their caches after the first request
#   h2c     h2load -c10 -m10, h2c (prior knowledge) in, HTTP/1.1 out
#   h2c-up  h2load -c10 -m10, h2c in and out (nginx 1.22 has no HTTP/2 upstream: n/s)
# Targets (BENCH_TARGETS, default "direct legate nginx haproxy"); "direct" is the load sent to the
# origin itself, the ceiling of this layout. legate-<variant> is legate with one more HTTP filter
# before the router (bench/filter_variants.py: lrl, jwt-rs256, jwt-es256, ext-authz), so
#   BENCH_SCENARIOS=h1 BENCH_TARGETS="legate legate-lrl legate-jwt-rs256 legate-jwt-es256 legate-ext-authz"
# prints each filter's cost as a ratio to the router-only legate.
# Per cell: req/s (median of BENCH_REPS runs of BENCH_DURATION s, with min-max), p50/p99 (wrk's;
# for h2load a 2 s run with --log-file after each throughput run, never used for req/s), proxy
# CPU us/req (busy time of CPU 1 from /proc/stat / requests), proxy RSS (VmRSS summed over its
# process tree after the run), errors. Everything is bounded (timeout on every command) and
# every process started is stopped on exit. Raw output: build/bench/<timestamp>/.
#
# Env: BENCH_DURATION (5), BENCH_REPS (3), BENCH_SCENARIOS, BENCH_TARGETS, LEGATE_BIN
# (build/legate), BENCH_NO_BUILD=1 (skip install + build of legate).
set -uo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$LG_ROOT"

DUR=${BENCH_DURATION:-5}
REPS=${BENCH_REPS:-3}
LAT_DUR=2
SCENARIOS=${BENCH_SCENARIOS:-"h1 h2c h2c-up"}
TARGETS=${BENCH_TARGETS:-"direct legate nginx haproxy"}
LEGATE_BIN=${LEGATE_BIN:-$LG_ROOT/build/legate}

PORT_H1_ORIGIN=19001 PORT_H2_ORIGIN=19002
PORT_LEGATE=19010 PORT_NGINX=19011 PORT_NGINX_H2C=19111 PORT_HAPROXY=19012 PORT_AUTHZ=19030 PORT_NGINX_GZIP=19013 PORT_NGINX_CACHE=19014
declare -A VARIANT_PORT=([legate-lrl]=19020 [legate-jwt-rs256]=19021 [legate-jwt-es256]=19022 [legate-ext-authz]=19023
  [legate-gzip]=19024 [legate-cache]=19025)
declare -A VARIANT_HEADER

# --- install and build ----------------------------------------------------------------------
bench_pkgs="nginx-light haproxy h2o wrk nghttp2-client util-linux"
missing=()
for p in $bench_pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  lg_log "installing: ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq >/dev/null
  # RUNLEVEL=1 keeps invoke-rc.d from starting the packages' services: this script starts what it
  # measures itself.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || { echo "apt-get install failed" >&2; exit 1; }
fi
if [ -z "${BENCH_NO_BUILD:-}" ]; then
  lg_install_deps || exit 1
  lg_build build -DCMAKE_BUILD_TYPE=RelWithDebInfo || { echo "legate build failed" >&2; exit 1; }
fi

# --- layout ---------------------------------------------------------------------------------
if [ "$(nproc)" -ge 2 ]; then LOAD_CPU="taskset -c 0"; PROXY_CPU="taskset -c 1"; PCPU=cpu1
else LOAD_CPU=""; PROXY_CPU=""; PCPU=cpu; lg_log "one CPU: running unpinned"; fi

WORK=$LG_ROOT/build/bench/$(date +%Y%m%d-%H%M%S)
mkdir -p "$WORK/www/h2up" "$WORK/raw"
printf 'hello, world\n' >"$WORK/www/index.html"
printf 'hello, world\n' >"$WORK/www/h2up/index.html"
head -c 4095 /dev/zero | tr '\0' 'x' >"$WORK/www/4k"; echo >>"$WORK/www/4k"
cp "$WORK/www/4k" "$WORK/www/h2up/4k"
/usr/bin/python3 - "$WORK/www" <<'PY'
import json, sys
def doc(n):  # a list of orders: JSON as APIs return it, repetitive enough to compress as such does
    items, i = [], 0
    while len(json.dumps(items)) < n:
        items.append({"id": i, "user": "user-%d" % (i % 97), "status": ["new", "paid", "shipped"][i % 3],
                      "total": round(i * 3.7 % 500, 2), "items": [{"sku": "SKU-%05d" % (i * 7 % 10000), "qty": i % 4 + 1}]})
        i += 1
    return json.dumps(items)[:n - 1].rsplit("},", 1)[0] + "}]"
for name, n in (("j1k.json", 1024), ("j64k.json", 65536)):
    open("%s/%s" % (sys.argv[1], name), "w").write(doc(n))
PY

render() { # render SRC DST: fills @WORK@ and @PORT_*@
  sed -e "s|@WORK@|$WORK|g" -e "s|@PORT_H1_ORIGIN@|$PORT_H1_ORIGIN|g" \
      -e "s|@PORT_H2_ORIGIN@|$PORT_H2_ORIGIN|g" -e "s|@PORT_LEGATE@|$PORT_LEGATE|g" \
      -e "s|@PORT_NGINX@|$PORT_NGINX|g" -e "s|@PORT_NGINX_H2C@|$PORT_NGINX_H2C|g" \
      -e "s|@PORT_HAPROXY@|$PORT_HAPROXY|g" -e "s|@PORT_NGINX_GZIP@|$PORT_NGINX_GZIP|g" \
      -e "s|@PORT_NGINX_CACHE@|$PORT_NGINX_CACHE|g" "$1" >"$2"
}
for f in origin-nginx.conf origin-h2c-h2o.conf proxy-nginx.conf proxy-nginx-gzip.conf proxy-nginx-cache.conf proxy-haproxy.cfg proxy-legate.yaml; do
  render "bench/conf/$f" "$WORK/$f"
done

for p in $PORT_H1_ORIGIN $PORT_H2_ORIGIN $PORT_LEGATE $PORT_NGINX $PORT_NGINX_H2C $PORT_HAPROXY $PORT_NGINX_GZIP $PORT_NGINX_CACHE; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "port 127.0.0.1:$p is in use; bench/run.sh needs 19001-19012 and 19111" >&2; exit 1
  fi
done

# --- processes ------------------------------------------------------------------------------
declare -A PID
started=()
stop_all() {
  local p
  for p in "${started[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${started[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null
  done
  started=()
}
trap stop_all EXIT
trap 'echo; lg_log "interrupted"; exit 130' INT TERM

wait_port() { # wait_port PORT PID
  for _ in $(seq 100); do
    kill -0 "$2" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

start() { # start NAME PORT CPU-PREFIX COMMAND...
  local name=$1 port=$2 cpu=$3; shift 3
  $cpu "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  local pid=$!
  started+=("$pid")
  if wait_port "$port" "$pid"; then PID[$name]=$pid; return 0; fi
  lg_log "$name did not start (see $WORK/$name.err):"; tail -5 "$WORK/$name.err" >&2
  return 1
}

start origin-nginx $PORT_H1_ORIGIN "$LOAD_CPU" nginx -e stderr -p "$WORK" -c "$WORK/origin-nginx.conf" || exit 1
start origin-h2o $PORT_H2_ORIGIN "$LOAD_CPU" h2o -c "$WORK/origin-h2c-h2o.conf" || exit 1

drop_target() { # drop_target NAME: removes one target (a whole word) from TARGETS
  local t out=""
  for t in $TARGETS; do [ "$t" = "$1" ] || out="$out $t"; done
  TARGETS=$out
}

declare -A IDLE_RSS
tree_rss_kib() { # sum of VmRSS over PID and its descendants
  local pid=$1 total=0 c
  [ -r "/proc/$pid/status" ] || { echo 0; return; }
  total=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
  for c in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
    total=$((total + $(tree_rss_kib "$c")))
  done
  echo "${total:-0}"
}

for t in $TARGETS; do
  case $t in
    direct) ;;
    legate)
      start legate $PORT_LEGATE "$PROXY_CPU" "$LEGATE_BIN" -c "$WORK/proxy-legate.yaml" \
        --concurrency 1 -l warning --drain-time-s 1 || drop_target legate ;;
    legate-*)
      v=${t#legate-}
      [ -n "${VARIANT_PORT[$t]:-}" ] || { echo "unknown target $t" >&2; exit 1; }
      if [ "$v" = ext-authz ] && [ -z "${PID[authz]:-}" ]; then
        authz_bin=$LG_ROOT/build/peers/ext_authz_server
        [ -x "$authz_bin" ] || (cd integration/peers/ext_authz_server && GOFLAGS=-buildvcs=false CGO_ENABLED=0 \
          timeout 900 go build -o "$authz_bin" .) || { drop_target "$t"; continue; }
        start authz $PORT_AUTHZ "$LOAD_CPU" "$authz_bin" -addr 127.0.0.1:$PORT_AUTHZ || { drop_target "$t"; continue; }
      fi
      VARIANT_HEADER[$t]=$(/usr/bin/python3 bench/filter_variants.py "$v" "$WORK/proxy-legate.yaml" \
        "$WORK/proxy-$t.yaml" "${VARIANT_PORT[$t]}" $PORT_AUTHZ) || { drop_target "$t"; continue; }
      start "$t" "${VARIANT_PORT[$t]}" "$PROXY_CPU" "$LEGATE_BIN" -c "$WORK/proxy-$t.yaml" \
        --concurrency 1 -l warning --drain-time-s 1 || drop_target "$t" ;;
    nginx)
      start nginx $PORT_NGINX "$PROXY_CPU" nginx -e stderr -p "$WORK" -c "$WORK/proxy-nginx.conf" \
        || drop_target nginx ;;
    nginx-cache)
      start nginx-cache $PORT_NGINX_CACHE "$PROXY_CPU" nginx -e stderr -p "$WORK" -c "$WORK/proxy-nginx-cache.conf" \
        || drop_target nginx-cache ;;
    nginx-gzip)
      start nginx-gzip $PORT_NGINX_GZIP "$PROXY_CPU" nginx -e stderr -p "$WORK" -c "$WORK/proxy-nginx-gzip.conf" \
        || drop_target nginx-gzip ;;
    haproxy)
      start haproxy $PORT_HAPROXY "$PROXY_CPU" haproxy -db -f "$WORK/proxy-haproxy.cfg" \
        || drop_target haproxy ;;
    *) echo "unknown target $t" >&2; exit 1 ;;
  esac
  [ -n "${PID[$t]:-}" ] && IDLE_RSS[$t]=$(tree_rss_kib "${PID[$t]}")
done
for t in "${!IDLE_RSS[@]}"; do echo "$t ${IDLE_RSS[$t]}" >>"$WORK/raw/idle_rss"; done

url() { # url SCENARIO TARGET -> URL, or nothing when not supported
  local s=$1 t=$2 port path=/
  case $s in h1-4k) path=/4k ;; h2c-up) path=/h2up/ ;; h1-json1k) path=/j1k.json ;; h1-json64k) path=/j64k.json ;; h1-cached) path=/cached ;; esac
  case $t in
    direct) case $s in h1*|h2c) port=$PORT_H1_ORIGIN ;; h2c-up) port=$PORT_H2_ORIGIN ;; esac ;;
    legate) port=$PORT_LEGATE ;;
    legate-*) port=${VARIANT_PORT[$t]} ;;
    haproxy) port=$PORT_HAPROXY ;;
    nginx) case $s in h1*) port=$PORT_NGINX ;; h2c) port=$PORT_NGINX_H2C ;; h2c-up) return ;; esac ;;
    nginx-gzip) case $s in h1*) port=$PORT_NGINX_GZIP ;; *) return ;; esac ;;
    nginx-cache) case $s in h1*) port=$PORT_NGINX_CACHE ;; *) return ;; esac ;;
  esac
  echo "http://127.0.0.1:$port$path"
}
# The direct h2c scenario goes to the h2c origin: same bytes, HTTP/2 on both sides.
direct_h2_url() { echo "http://127.0.0.1:$PORT_H2_ORIGIN/"; }

cpu_line() { grep "^$PCPU " /proc/stat; }

run_cell() { # run_cell SCENARIO TARGET REP DURATION  (REP "warm" = warm-up, not recorded)
  local s=$1 t=$2 rep=$3 d=$4 u base
  u=$(url "$s" "$t"); [ -n "$u" ] || return 0
  [ "$t" = direct ] && [ "$s" = h2c ] && u=$(direct_h2_url)
  base=$WORK/raw/$s.$t.$rep
  local hdr=()
  [ -n "${VARIANT_HEADER[$t]:-}" ] && hdr=(-H "${VARIANT_HEADER[$t]}")
  case $s in h1-json*) hdr+=(-H "Accept-Encoding: gzip") ;; esac
  cpu_line >"$base.cpu0"
  case $s in
    h1*) timeout $((d + 15)) $LOAD_CPU wrk -t1 -c50 -d"${d}s" --latency "${hdr[@]}" "$u" >"$base.out" 2>&1 ;;
    h2c|h2c-up) timeout $((d + 15)) $LOAD_CPU h2load -t1 -c10 -m10 -D "$d" "${hdr[@]}" "$u" >"$base.out" 2>&1 ;;
  esac
  cpu_line >"$base.cpu1"
  [ "$rep" = warm ] && return 0
  if [ "$t" != direct ] && [ -n "${PID[$t]:-}" ]; then tree_rss_kib "${PID[$t]}" >"$base.rss"; fi
  if [ "$s" = h2c ] || [ "$s" = h2c-up ]; then
    timeout $((LAT_DUR + 15)) $LOAD_CPU h2load -t1 -c10 -m10 -D "$LAT_DUR" --log-file="$base.lat" "${hdr[@]}" "$u" \
      >"$base.latout" 2>&1
  fi
}

cells=0
for s in $SCENARIOS; do for t in $TARGETS; do cells=$((cells + 1)); done; done
lg_log "measuring: scenarios [$SCENARIOS] x targets [$TARGETS] x $REPS reps of ${DUR}s (~$((cells * (REPS * (DUR + 3) + 1)))s)"
for s in $SCENARIOS; do
  for t in $TARGETS; do run_cell "$s" "$t" warm 1; done
  for rep in $(seq "$REPS"); do
    for t in $TARGETS; do run_cell "$s" "$t" "$rep" "$DUR"; done
  done
done

for t in $TARGETS; do
  if [ -n "${PID[$t]:-}" ] && ! kill -0 "${PID[$t]}" 2>/dev/null; then
    lg_log "$t exited during the run (see $WORK/$t.err)"
  fi
done

# --- report ---------------------------------------------------------------------------------
/usr/bin/python3 - "$WORK" "$SCENARIOS" "$TARGETS" "$(getconf CLK_TCK)" <<'PY' | tee "$WORK/table.md"
import os, re, statistics, sys
work, scenarios, targets, hz = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), int(sys.argv[4])
raw = os.path.join(work, "raw")

def busy(path):
    f = [int(x) for x in open(path).read().split()[1:]]
    return sum(f) - f[3] - f[4]  # minus idle and iowait

def ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

def cell(s, t, rep):
    base = os.path.join(raw, "%s.%s.%s" % (s, t, rep))
    if not os.path.exists(base + ".out"):
        return None
    out = open(base + ".out").read()
    r = {"rps": None, "p50": None, "p99": None, "errors": 0, "reqs": None, "rss": None, "cpu_us": None}
    if s.startswith("h1"):
        m = re.search(r"Requests/sec:\s+([\d.]+)", out)
        n = re.search(r"(\d+) requests in", out)
        if m: r["rps"] = float(m.group(1))
        if n: r["reqs"] = int(n.group(1))
        for p in ("50", "99"):
            m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\b" % p, out, re.M)
            if m: r["p" + p] = ms(*m.groups())
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        r["errors"] = (int(m.group(1)) if m else 0) + (sum(int(x) for x in e.groups()) if e else 0)
    else:
        m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
        q = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
        c = re.search(r"status codes: (\d+) 2xx", out)
        if m: r["rps"] = float(m.group(1))
        if q:
            r["reqs"] = int(q.group(1))
            r["errors"] = int(q.group(3)) + int(q.group(4)) + (int(q.group(2)) - int(c.group(1)) if c else 0)
        if os.path.exists(base + ".lat"):
            lat = sorted(int(l.split("\t")[2]) for l in open(base + ".lat") if l.count("\t") >= 2)
            if lat:
                r["p50"] = lat[len(lat) // 2] / 1000.0
                r["p99"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1000.0
    if t != "direct" and r["reqs"]:
        r["cpu_us"] = (busy(base + ".cpu1") - busy(base + ".cpu0")) * 1e6 / hz / r["reqs"]
    if os.path.exists(base + ".rss"):
        r["rss"] = int(open(base + ".rss").read().strip() or 0) / 1024.0
    return r

def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None

def f(v, fmt):
    return "-" if v is None else fmt % v

results = {}
for s in scenarios:
    for t in targets:
        reps = []
        rep = 1
        while True:
            c = cell(s, t, rep)
            if c is None: break
            reps.append(c); rep += 1
        results[s, t] = reps

print("| scenario | target | req/s median [min-max] | vs legate | p50 ms | p99 ms | proxy us/req | vs legate | RSS MiB | errors |")
print("|---|---|---|---|---|---|---|---|---|---|")
for s in scenarios:
    lg = results.get((s, "legate")) or []
    lg_rps = med([c["rps"] for c in lg])
    lg_cpu = med([c["cpu_us"] for c in lg])
    for t in targets:
        reps = results.get((s, t))
        if not reps:
            print("| %s | %s | n/s | | | | | | | |" % (s, t)); continue
        rps = [c["rps"] for c in reps if c["rps"]]
        m = med(rps)
        cpu = med([c["cpu_us"] for c in reps])
        rng = "%.0f [%.0f-%.0f]" % (m, min(rps), max(rps)) if rps else "failed"
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (
            s, t, rng,
            f(m / lg_rps if m and lg_rps else None, "%.2f"),
            f(med([c["p50"] for c in reps]), "%.3f"), f(med([c["p99"] for c in reps]), "%.3f"),
            f(cpu, "%.1f"), f(cpu / lg_cpu if cpu and lg_cpu else None, "%.2f"),
            f(med([c["rss"] for c in reps]), "%.1f"), sum(c["errors"] for c in reps)))
idle = os.path.join(raw, "idle_rss")
if os.path.exists(idle):
    print()
    print("Idle RSS (MiB, process tree, before any request): " + ", ".join(
        "%s %.1f" % (l.split()[0], int(l.split()[1]) / 1024.0) for l in sorted(open(idle))))
print()
print("Ratios are target / legate: above 1.00 is more req/s (or more CPU per request) than legate.")
PY
lg_log "raw results in $WORK"
