#!/usr/bin/env bash
# Peer benchmark: cost per HTTP check of existing uptime-monitoring stacks, on loopback only.
#
# Stacks:  floor (wrk -> nginx),  blackbox_exporter driven directly by wrk,
#          Prometheus + blackbox_exporter scraping N targets (the realistic stack),
#          Vigil, keeper (a new connection per check) and keeper with `keepalive = true`.
# Needs (Debian bookworm): nginx libnginx-mod-http-echo prometheus prometheus-blackbox-exporter wrk curl jq time
#
# Usage (from the repository's root or anywhere; keeper is built from the repository this script is in):
#   run-peers.sh table [INTERVAL_S N WARMUP_S MEASURE_S]   # one run of every stack, then the table with ratios
#                                                          # (defaults 5 1000 35 120; SKIP_BUILD=1 to skip the build)
#   run-peers.sh all                      # floor + blackbox direct + prom stack (15s and 5s, N=1000)
#   run-peers.sh floor | floor-close | bb-direct | build
#   run-peers.sh prom-stack INTERVAL N [WARMUP_S] [MEASURE_S]
#   run-peers.sh keeper-stack INTERVAL N [WARMUP_S] [MEASURE_S]   # KEEPER_BIN=target/release/keeper
#   run-peers.sh keeper-keepalive-stack INTERVAL N [WARMUP_S] [MEASURE_S]   # the same, keepalive = true
#   run-peers.sh keeper-soak INTERVAL N [MINUTES] [KEEPALIVE]   # keeper alone; CPU per check every 30 s
#                                         # (INTERVAL with its unit in these keeper modes: 5s, 1s)
#   run-peers.sh vigil-stack INTERVAL_S N [WARMUP_S] [MEASURE_S]  # VIGIL_BIN or `vigil` on PATH
#                                                                  # (cargo install --locked vigil-server)
#   run-peers.sh start-nginx | start-blackbox | stop
#
# Every load loop is bounded: wrk -d10s under `timeout`, the stacks run fixed sleeps.
# Everything listens on 127.0.0.1 only.  Processes are stopped by the PIDs this script recorded.
# QUIET_MAX_S (default 600): how long to wait for a quiet machine before each measurement.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
RUN=${RUN:-/tmp/peerbench}
RES=${RES:-$RUN/results.txt}
# One line per measured stack, tab-separated: stack, checks/s, CPU ms per check, RSS MB, note (for `table`).
ROWS=${ROWS:-$RUN/rows.tsv}
NGINX_PORT=18080
NGINX_STATUS=http://127.0.0.1:18081/nginx_status
BB_ADDR=127.0.0.1:19115
PROM_ADDR=127.0.0.1:19090
KEEPER_ADDR=127.0.0.1:19400
VIGIL_ADDR=127.0.0.1:18090
HZ=$(getconf CLK_TCK)
EXTRA_PIDS=${EXTRA_PIDS:-}
WRK_D=${WRK_D:-10s}

mkdir -p "$RUN"

log() { echo "$*" | tee -a "$RES"; }
row() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "$ROWS"; }

# --- /proc helpers ---------------------------------------------------------
# utime+stime (all threads) of the given PIDs, in clock ticks
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$t"; }
# VmRSS / VmHWM (kB) summed over PIDs
rss_kb() { local t=0 p; for p in "$@"; do t=$((t + $(awk '/^VmRSS:/{print $2}' "/proc/$p/status"))); done; echo "$t"; }
hwm_kb() { local t=0 p; for p in "$@"; do t=$((t + $(awk '/^VmHWM:/{print $2}' "/proc/$p/status"))); done; echo "$t"; }
# How one process's RSS splits (MB): private memory (heap, stacks) and pages mapped from its
# files (the binary's code, shared libraries: page cache the kernel can take back).
rss_split() { awk '/^RssAnon:/{a=$2} /^RssFile:/{f=$2} END{printf "anon %d + files %d", a/1024, f/1024}' "/proc/$1/status"; }
# whole-machine busy ticks (user+nice+system+irq+softirq+steal) from /proc/stat
sys_busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
sys_softirq() { awk '/^cpu /{print $8}' /proc/stat; }
# Wait (max QUIET_MAX_S, default 600 s) until the whole machine is <10% busy over 3 s, so that
# foreign jobs (e.g. someone's cargo build) do not share the CPUs during a measurement.
quiet_wait() {
  local max=${QUIET_MAX_S:-600} waited=0 b0 b1
  while :; do
    b0=$(sys_busy); sleep 3; b1=$(sys_busy); waited=$((waited + 3))
    [ $((b1 - b0)) -lt $((3 * HZ * $(nproc) / 10)) ] && return 0
    if [ "$waited" -ge "$max" ]; then log "  WARNING: machine not quiet after ${max}s (busy $((b1 - b0)) ticks/3s); measuring anyway"; return 0; fi
  done
}
nginx_reqs() { curl -fsS "$NGINX_STATUS" | awk 'NR==3{print $3}'; }
nginx_pids() { local m; m=$(cat "$RUN/nginx/nginx.pid"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')"; }
ms() { awk -v t="$1" -v hz="$HZ" 'BEGIN{printf "%.0f", t*1000/hz}'; }            # ticks -> ms
per() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b>0) printf "%.4f", a/b; else print "nan"}'; }

wait_http() { local i; for i in $(seq 1 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "timeout waiting for $1" >&2; return 1; }

# --- services --------------------------------------------------------------
start_nginx() {
  [ -s "$RUN/nginx/nginx.pid" ] && kill -0 "$(cat "$RUN/nginx/nginx.pid")" 2>/dev/null && return 0
  mkdir -p "$RUN/nginx/logs" "$RUN/nginx/tmp"
  : > "$RUN/nginx/logs/access.log"
  nginx -p "$RUN/nginx" -c "$HERE/nginx.conf" -e "$RUN/nginx/logs/error.log"
  wait_http "http://127.0.0.1:$NGINX_PORT/ok"
}
start_blackbox() {
  [ -s "$RUN/blackbox.pid" ] && kill -0 "$(cat "$RUN/blackbox.pid")" 2>/dev/null && return 0
  prometheus-blackbox-exporter --config.file="$HERE/blackbox.yml" --web.listen-address="$BB_ADDR" \
    --log.level=warn > "$RUN/blackbox.log" 2>&1 &
  echo $! > "$RUN/blackbox.pid"
  wait_http "http://$BB_ADDR/metrics"
}
gen_prom_config() {  # INTERVAL N -> $RUN/prometheus.yml + $RUN/targets.json
  local interval=$1 n=$2 timeout=5s
  # Prometheus refuses a scrape timeout longer than the interval (1s: 1,000 checks/s).
  [ "${interval%s}" -lt 5 ] 2>/dev/null && timeout=$interval
  seq 1 "$n" | awk 'BEGIN{printf "[{\"targets\":["} {printf "%s\"http://127.0.0.1:18080/ok?i=%d\"", (NR>1?",":""), $1} END{print "]}]"}' > "$RUN/targets.json"
  sed -e "s/@INTERVAL@/$interval/g" -e "s/@TIMEOUT@/$timeout/" -e "s#@TARGETS@#$RUN/targets.json#" -e "s/@BB_ADDR@/$BB_ADDR/" \
    "$HERE/prometheus.yml.tmpl" > "$RUN/prometheus.yml"
}
start_prom() {  # INTERVAL N
  gen_prom_config "$1" "$2"
  rm -rf "$RUN/prom-data"; mkdir -p "$RUN/prom-data"
  prometheus --config.file="$RUN/prometheus.yml" --storage.tsdb.path="$RUN/prom-data" \
    --web.listen-address="$PROM_ADDR" --log.level=warn > "$RUN/prometheus.log" 2>&1 &
  echo $! > "$RUN/prometheus.pid"
  wait_http "http://$PROM_ADDR/-/ready"
}
stop_pidfile() {  # stop the process recorded in a pid file (SIGTERM, then wait up to 10 s)
  local f=$1 p i
  [ -s "$f" ] || return 0
  p=$(cat "$f")
  if kill -0 "$p" 2>/dev/null; then
    kill "$p"
    for i in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$f"
}
stop_all() {
  stop_pidfile "$RUN/keeper.pid"
  stop_pidfile "$RUN/vigil.pid"
  stop_pidfile "$RUN/prometheus.pid"
  stop_pidfile "$RUN/blackbox.pid"
  stop_pidfile "$RUN/nginx/nginx.pid"    # nginx master; its worker exits with it
}

# --- wrk run with client-side CPU ------------------------------------------
# run_wrk LABEL "SERVER_PIDS" URL [wrk args...]  -> one result line
run_wrk() {
  local label=$1 pids=$2 url=$3; shift 3
  local t0 n0 b0 t1 n1 b1 s0 s1 out
  quiet_wait
  t0=$(ticks $pids $EXTRA_PIDS); n0=$(nginx_reqs); b0=$(sys_busy); s0=$(sys_softirq)
  out=$(timeout 60 /usr/bin/time -f 'WRKCPU %U %S %M' wrk "$@" -d"$WRK_D" --latency "$url" 2>&1)
  t1=$(ticks $pids $EXTRA_PIDS); n1=$(nginx_reqs); b1=$(sys_busy); s1=$(sys_softirq)
  echo "$out" > "$RUN/wrk-$label.txt"
  local reqs rps wu ws p50 p99 errs
  reqs=$(echo "$out" | awk '/requests in/{print $1}')
  rps=$(echo "$out" | awk '/^Requests\/sec/{print $2}')
  p50=$(echo "$out" | awk '$1=="50%"{print $2}')
  p99=$(echo "$out" | awk '$1=="99%"{print $2}')
  errs=$(echo "$out" | awk '/Socket errors|Non-2xx/{printf "%s; ", $0}')
  read -r wu ws < <(echo "$out" | awk '/^WRKCPU/{print $2, $3}')
  local srv_ms wrk_ms sys_ms
  srv_ms=$(ms $((t1 - t0)))            # server pids (+ EXTRA_PIDS, e.g. nginx when driving blackbox)
  wrk_ms=$(awk -v u="$wu" -v s="$ws" 'BEGIN{printf "%.0f", (u+s)*1000}')
  sys_ms=$(ms $((b1 - b0)))
  local sirq_ms other_ms
  sirq_ms=$(ms $((s1 - s0)))
  other_ms=$((sys_ms - srv_ms - wrk_ms - sirq_ms))   # foreign processes + unattributed kernel time
  log "$label: reqs=$reqs rps=$rps p50=$p50 p99=$p99 server_cpu_ms=$srv_ms (per req $(per "$srv_ms" "$reqs") ms)" \
      "wrk_cpu_ms=$wrk_ms (per req $(per "$wrk_ms" "$reqs") ms) machine_busy_ms=$sys_ms (per req $(per "$sys_ms" "$reqs") ms)" \
      "softirq_ms=$sirq_ms (per req $(per "$sirq_ms" "$reqs") ms) other_ms=$other_ms" \
      "nginx_reqs_delta=$((n1 - n0 - 1)) ${errs}"
  row "$label" "${rps%.*}" "$(per "$wrk_ms" "$reqs")" "-" "wrk client CPU per request"
}

floor() {
  start_nginx
  local np; np=$(nginx_pids)
  log "# floor: wrk -> nginx /ok  (nginx pids: $np)"
  run_wrk floor-keepalive-c10 "$np" "http://127.0.0.1:$NGINX_PORT/ok" -t1 -c10
  run_wrk floor-keepalive-c1  "$np" "http://127.0.0.1:$NGINX_PORT/ok" -t1 -c1
  run_wrk floor-close-c10     "$np" "http://127.0.0.1:$NGINX_PORT/ok" -t1 -c10 -H 'Connection: close'
  run_wrk floor-close-c1      "$np" "http://127.0.0.1:$NGINX_PORT/ok" -t1 -c1  -H 'Connection: close'
  log "nginx RSS_kB=$(rss_kb $np) HWM_kB=$(hwm_kb $np)"
}

floor_close() {  # [WHEN]: the client floor of the table: wrk, Connection: close, 1 connection
  local label=floor-close-c1${1:+-$1}
  start_nginx
  local np; np=$(nginx_pids)
  log "# floor${1:+ ($1)}: wrk -> nginx /ok, a new connection per request, 1 connection (nginx pids: $np)"
  run_wrk "$label" "$np" "http://127.0.0.1:$NGINX_PORT/ok" -t1 -c1 -H 'Connection: close'
}

bb_direct() {
  start_nginx; start_blackbox
  local np bp url
  np=$(nginx_pids); bp=$(cat "$RUN/blackbox.pid")
  url="http://$BB_ADDR/probe?target=http://127.0.0.1:$NGINX_PORT/ok&module=http_2xx"
  curl -fsS "$url" | grep -E '^probe_success|^probe_http_status_code' | tee -a "$RES"
  log "# blackbox direct: wrk -> blackbox /probe -> nginx /ok (blackbox pid $bp, nginx $np)"
  for c in 1 10; do
    EXTRA_PIDS="" run_wrk "bb-direct-c$c" "$bp" "$url" -t1 -c"$c"          # blackbox alone
  done
  EXTRA_PIDS="$np" run_wrk "bb-direct-c10-plus-nginx" "$bp" "$url" -t1 -c10  # blackbox + nginx
  log "blackbox RSS_kB=$(rss_kb "$bp") HWM_kB=$(hwm_kb "$bp")  nginx RSS_kB=$(rss_kb $np)"
}

prom_stack() {  # INTERVAL N WARMUP MEASURE
  local interval=$1 n=$2 warm=${3:-35} meas=${4:-120}
  start_nginx; start_blackbox; quiet_wait; start_prom "$interval" "$n"
  local np bp pp; np=$(nginx_pids); bp=$(cat "$RUN/blackbox.pid"); pp=$(cat "$RUN/prometheus.pid")
  log "# prom-stack: prometheus($pp) scrapes blackbox($bp) for N=$n targets every $interval; warmup ${warm}s, measure ${meas}s"
  sleep "$warm"
  local tp0 tb0 tn0 r0 b0 tp1 tb1 tn1 r1 b1
  local s0 s1
  tp0=$(ticks "$pp"); tb0=$(ticks "$bp"); tn0=$(ticks $np); r0=$(nginx_reqs); b0=$(sys_busy); s0=$(sys_softirq)
  sleep "$meas"
  tp1=$(ticks "$pp"); tb1=$(ticks "$bp"); tn1=$(ticks $np); r1=$(nginx_reqs); b1=$(sys_busy); s1=$(sys_softirq)
  local checks=$((r1 - r0 - 1))
  local pms bms nms sms
  pms=$(ms $((tp1 - tp0))); bms=$(ms $((tb1 - tb0))); nms=$(ms $((tn1 - tn0))); sms=$(ms $((b1 - b0)))
  local succ up
  succ=$(curl -fsS "http://$PROM_ADDR/api/v1/query" --data-urlencode 'query=sum(probe_success)' | jq -r '.data.result[0].value[1]')
  up=$(curl -fsS "http://$PROM_ADDR/api/v1/query" --data-urlencode 'query=count(up==1)' | jq -r '.data.result[0].value[1]')
  log "prom-stack-$interval-N$n: checks=$checks checks_per_s=$(per "$checks" "$meas")" \
      "prom_cpu_ms=$pms bb_cpu_ms=$bms nginx_cpu_ms=$nms machine_busy_ms=$sms softirq_ms=$(ms $((s1 - s0))) other_ms=$((sms - pms - bms - nms - $(ms $((s1 - s0)))))" \
      "per_check_ms: prom=$(per "$pms" "$checks") bb=$(per "$bms" "$checks") nginx=$(per "$nms" "$checks") monitor(prom+bb)=$(per $((pms + bms)) "$checks") machine=$(per "$sms" "$checks")" \
      "RSS_MB: prom=$(( $(rss_kb "$pp") / 1024 )) (HWM $(( $(hwm_kb "$pp") / 1024 ))) bb=$(( $(rss_kb "$bp") / 1024 )) (HWM $(( $(hwm_kb "$bp") / 1024 ))) nginx=$(( $(rss_kb $np) / 1024 ))" \
      "sum(probe_success)=$succ count(up==1)=$up prom_data_kB=$(du -sk "$RUN/prom-data" | cut -f1)"
  row "prom-stack" "$(per "$checks" "$meas")" "$(per $((pms + bms)) "$checks")" \
    "$(( $(rss_kb "$pp") / 1024 )) + $(( $(rss_kb "$bp") / 1024 ))" "prom $(per "$pms" "$checks") + blackbox $(per "$bms" "$checks"); probe_success sum $succ"
  stop_pidfile "$RUN/prometheus.pid"
}

keeper_start() {  # INTERVAL N KEEPALIVE: starts keeper with N http checks on the nginx target; its pid in $RUN/keeper.pid
  local interval=$1 n=$2 keepalive=$3
  local bin=${KEEPER_BIN:-$ROOT/target/release/keeper}
  [ -x "$bin" ] || { echo "no keeper binary at $bin (run-peers.sh build, i.e. cargo build --release --features bench --bins; or set KEEPER_BIN)" >&2; return 1; }
  start_nginx; quiet_wait
  mkdir -p "$RUN/keeper"; rm -f "$RUN/keeper/keeper.db"*
  { printf '[server]\nlisten = "%s"\n[storage]\nurl = "sqlite://%s/keeper/keeper.db"\n' "$KEEPER_ADDR" "$RUN"
    seq 1 "$n" | awk -v iv="$interval" -v port="$NGINX_PORT" \
      -v ka="$keepalive" \
      '{printf "[checks.c%d]\nkind = \"http\"\nurl = \"http://127.0.0.1:%s/ok?i=%d\"\ninterval = \"%s\"\nkeepalive = %s\n", $1, port, $1, iv, ka}'
  } > "$RUN/keeper/keeper.toml"
  "$bin" run -c "$RUN/keeper/keeper.toml" > "$RUN/keeper/keeper.log" 2>&1 &
  echo $! > "$RUN/keeper.pid"
  wait_http "http://$KEEPER_ADDR/healthz"
}

keeper_stack() {  # INTERVAL N WARMUP MEASURE [KEEPALIVE]: keeper itself, N http checks on the same nginx target
  local interval=$1 n=$2 warm=${3:-35} meas=${4:-120} keepalive=${5:-false}
  local label=keeper-stack
  [ "$keepalive" = true ] && label=keeper-keepalive-stack
  keeper_start "$interval" "$n" "$keepalive"
  local kp np; kp=$(cat "$RUN/keeper.pid"); np=$(nginx_pids)
  log "# $label: keeper($kp) runs N=$n http checks every $interval (keepalive = $keepalive); warmup ${warm}s, measure ${meas}s"
  sleep "$warm"
  local tk0 tn0 r0 b0 tk1 tn1 r1 b1
  tk0=$(ticks "$kp"); tn0=$(ticks $np); r0=$(nginx_reqs); b0=$(sys_busy)
  sleep "$meas"
  tk1=$(ticks "$kp"); tn1=$(ticks $np); r1=$(nginx_reqs); b1=$(sys_busy)
  local checks=$((r1 - r0 - 1)) kms nms sms green
  kms=$(ms $((tk1 - tk0))); nms=$(ms $((tn1 - tn0))); sms=$(ms $((b1 - b0)))
  green=$(curl -fsS "http://$KEEPER_ADDR/metrics" | awk '/^probe_success\{/ && $NF==1 {c++} END{print c+0}')
  log "$label-$interval-N$n: checks=$checks checks_per_s=$(per "$checks" "$meas") keeper_cpu_ms=$kms nginx_cpu_ms=$nms machine_busy_ms=$sms" \
      "per_check_ms: keeper=$(per "$kms" "$checks") nginx=$(per "$nms" "$checks") machine=$(per "$sms" "$checks")" \
      "RSS_MB: keeper=$(( $(rss_kb "$kp") / 1024 )) (HWM $(( $(hwm_kb "$kp") / 1024 )); $(rss_split "$kp")) probe_success=1: $green/$n"
  row "$label" "$(per "$checks" "$meas")" "$(per "$kms" "$checks")" "$(( $(rss_kb "$kp") / 1024 ))" "probe_success=1: $green/$n"
  stop_pidfile "$RUN/keeper.pid"
}

vigil_stack() {  # INTERVAL_S N WARMUP MEASURE: Vigil (cargo install vigil-server), N poll nodes on the same nginx target
  local interval=$1 n=$2 warm=${3:-30} meas=${4:-60}
  local bin=${VIGIL_BIN:-$(command -v vigil || true)}
  [ -x "$bin" ] || { echo "no vigil binary (cargo install vigil-server; or set VIGIL_BIN)" >&2; return 1; }
  local assets=${VIGIL_ASSETS:-$(ls -d "$HOME"/.cargo/registry/src/*/vigil-server-*/res/assets 2>/dev/null | tail -1)}
  start_nginx; quiet_wait
  mkdir -p "$RUN/vigil"
  { printf '[server]\nlog_level = "warn"\ninet = "%s"\nworkers = 1\nmcp_server = false\nmanager_token = "bench-manager-token"\nreporter_token = "bench-reporter-token"\n' "$VIGIL_ADDR"
    printf '[assets]\npath = "%s/"\n' "$assets"
    printf '[branding]\npage_title = "bench"\npage_url = "http://%s/"\ncompany_name = "bench"\nicon_color = "#000000"\nicon_url = "http://%s/x.png"\nlogo_color = "#000000"\nlogo_url = "http://%s/x.svg"\nwebsite_url = "http://%s/"\nsupport_url = "mailto:bench@localhost"\ncustom_html = ""\n' "$VIGIL_ADDR" "$VIGIL_ADDR" "$VIGIL_ADDR" "$VIGIL_ADDR"
    printf '[metrics]\npoll_interval = %s\npoll_retry = 2\npoll_retry_wait = 0\npoll_http_status_healthy_above = 200\npoll_http_status_healthy_below = 400\npoll_delay_dead = 10\npoll_delay_sick = 5\npoll_parallelism = 4\npush_delay_dead = 20\npush_system_cpu_sick_above = 0.90\npush_system_ram_sick_above = 0.90\nscript_interval = 300\nscript_parallelism = 2\nlocal_delay_dead = 40\n' "$interval"
    printf '[notify]\nstartup_notification = false\nreminder_interval = 300\n[probe]\n[[probe.service]]\nid = "web"\nlabel = "web"\n'
    seq 1 "$n" | awk -v port="$NGINX_PORT" '{printf "[[probe.service.node]]\nid = \"n%d\"\nlabel = \"n%d\"\nmode = \"poll\"\nreplicas = [\"http://127.0.0.1:%s/ok?i=%d\"]\n", $1, $1, port, $1}'
  } > "$RUN/vigil/vigil.cfg"
  "$bin" -c "$RUN/vigil/vigil.cfg" > "$RUN/vigil/vigil.log" 2>&1 &
  echo $! > "$RUN/vigil.pid"
  wait_http "http://$VIGIL_ADDR/"
  local vp np; vp=$(cat "$RUN/vigil.pid"); np=$(nginx_pids)
  log "# vigil-stack: vigil($vp) polls N=$n nodes every ${interval}s (HEAD, reused connections, retry_wait 0); warmup ${warm}s, measure ${meas}s"
  sleep "$warm"
  local tv0 r0 tv1 r1
  tv0=$(ticks "$vp"); r0=$(nginx_reqs)
  sleep "$meas"
  tv1=$(ticks "$vp"); r1=$(nginx_reqs)
  local checks=$((r1 - r0 - 1)) vms; vms=$(ms $((tv1 - tv0)))
  log "vigil-stack-${interval}s-N$n: checks=$checks checks_per_s=$(per "$checks" "$meas") vigil_cpu_ms=$vms per_check_ms: vigil=$(per "$vms" "$checks") RSS_MB: vigil=$(( $(rss_kb "$vp") / 1024 )) (HWM $(( $(hwm_kb "$vp") / 1024 )); $(rss_split "$vp"))"
  row "vigil-stack" "$(per "$checks" "$meas")" "$(per "$vms" "$checks")" "$(( $(rss_kb "$vp") / 1024 ))" "HEAD on reused connections, no history"
  stop_pidfile "$RUN/vigil.pid"
}

build() {  # the keeper binary (and the bench binary, behind its feature) from this repository
  (cd "$ROOT" && cargo build --release --features bench --bins)
}

# The table of one run's rows, with the ratios the issue asks for. The floor
# is measured at the start, just before the keeper stacks and at the end (a
# shared machine's floor moved by half between runs an hour apart); the
# ratios use the mean of the three, and the table shows their spread.
print_table() {
  awk -F'\t' '
    { stack[NR] = $1; rate[NR] = $2; cpu[NR] = $3; rss[NR] = $4; note[NR] = $5; at[$1] = $3
      if ($1 ~ /^floor-close-c1/) { floors++; sum += $3; lo = (floors == 1 || $3 < lo) ? $3 : lo; hi = ($3 > hi) ? $3 : hi } }
    END {
      printf "| stack | rate (checks/s) | CPU ms per check | RSS MB | note |\n| --- | --- | --- | --- | --- |\n"
      for (i = 1; i <= NR; i++) printf "| %s | %s | %s | %s | %s |\n", stack[i], rate[i], cpu[i], rss[i], note[i]
      print ""
      floor = floors ? sum / floors : ""
      if (floors) printf "wrk floor: mean of %d runs %.4f (%s to %s)\n", floors, floor, lo, hi
      ratio("keeper / wrk floor (goal <= 1.5)", at["keeper-stack"], floor)
      ratio("keeper-keepalive / Vigil (goal < 1)", at["keeper-keepalive-stack"], at["vigil-stack"])
      ratio("keeper-keepalive / wrk floor", at["keeper-keepalive-stack"], floor)
      ratio("Prometheus + blackbox / keeper (goal >= 30)", at["prom-stack"], at["keeper-stack"])
    }
    function ratio(what, a, b) {
      if (a == "" || b == "" || b + 0 == 0) printf "%s: n/a\n", what
      else printf "%s: %.2f\n", what, a / b
    }' "$ROWS"
}

# keeper-soak INTERVAL N MINUTES [KEEPALIVE]: keeper alone for MINUTES, its CPU per check,
# RSS and database size every 30 s: whether the cost grows as keeper runs (issue 14's steady state).
keeper_soak() {
  local interval=$1 n=$2 minutes=$3 keepalive=${4:-false}
  trap stop_all EXIT
  keeper_start "$interval" "$n" "$keepalive"
  local kp t0 r0 t1 r1 s=0; kp=$(cat "$RUN/keeper.pid")
  log "# keeper-soak: keeper($kp) runs N=$n http checks every $interval (keepalive = $keepalive) for ${minutes} min"
  t0=$(ticks "$kp"); r0=$(nginx_reqs)
  while [ "$s" -lt $((minutes * 60)) ]; do
    sleep 30; s=$((s + 30))
    t1=$(ticks "$kp"); r1=$(nginx_reqs)
    log "t=${s}s checks=$((r1 - r0)) cpu_ms_per_check=$(per "$(ms $((t1 - t0)))" $((r1 - r0))) RSS_MB=$(( $(rss_kb "$kp") / 1024 )) db_MB=$(( $(du -sk "$RUN/keeper" | cut -f1) / 1024 ))"
    t0=$t1; r0=$r1
  done
  stop_pidfile "$RUN/keeper.pid"
}

# table [INTERVAL_S N WARMUP_S MEASURE_S]: every stack in one run, then the table.
table() {
  local interval=${1:-5} n=${2:-1000} warm=${3:-35} meas=${4:-120}
  [ "${SKIP_BUILD:-0}" = 1 ] || build
  trap stop_all EXIT
  : > "$ROWS"
  log "## table $(date -Is) on $(nproc) CPUs, $(uptime | sed 's/.*load/load/'); N=$n every ${interval}s, warmup ${warm}s, measure ${meas}s"
  floor_close
  prom_stack "${interval}s" "$n" "$warm" "$meas"
  if [ -x "${VIGIL_BIN:-$(command -v vigil || true)}" ]; then
    vigil_stack "$interval" "$n" "$warm" "$meas"
  else
    log "# vigil-stack skipped: no VIGIL_BIN and no vigil on PATH (cargo install --locked vigil-server)"
  fi
  floor_close before-keeper
  keeper_stack "${interval}s" "$n" "$warm" "$meas" false
  keeper_stack "${interval}s" "$n" "$warm" "$meas" true
  floor_close end
  log "## after the run: $(uptime | sed 's/.*load/load/')"
  print_table | tee -a "$RES"
}

case "${1:-all}" in
  start-nginx) start_nginx ;;
  start-blackbox) start_blackbox ;;
  stop) stop_all ;;
  floor) floor ;;
  floor-close) floor_close ;;
  build) build ;;
  table) shift; table "$@" ;;
  bb-direct) bb_direct ;;
  prom-stack) shift; prom_stack "$@" ;;
  keeper-stack) shift; keeper_stack "$1" "$2" "${3:-35}" "${4:-120}" false ;;
  keeper-keepalive-stack) shift; keeper_stack "$1" "$2" "${3:-35}" "${4:-120}" true ;;
  keeper-soak) shift; keeper_soak "$1" "$2" "${3:-10}" "${4:-false}" ;;
  vigil-stack) shift; vigil_stack "$@" ;;
  all)
    trap stop_all EXIT
    log "## run $(date -Is) on $(nproc) CPUs: $(nginx -v 2>&1); $(prometheus --version 2>&1 | head -1); $(prometheus-blackbox-exporter --version 2>&1 | head -1); $(wrk -v 2>&1 | head -1)"
    floor
    bb_direct
    prom_stack 15s 1000
    prom_stack 5s 1000
    ;;
  *) echo "unknown command $1" >&2; exit 2 ;;
esac
