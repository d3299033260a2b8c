#!/bin/sh
# Runs each fuzz target (or those named) for a million inputs, one after
# another, seeded from fuzz/seeds/TARGET. Needs nightly and cargo-fuzz.
#   fuzz/run.sh [TARGET...]
# RUNS=N changes the count; FUZZ_FLAGS="-a" adds overflow checks and debug
# assertions (a separate, full rebuild).
set -e
cd "$(dirname "$0")"
RUNS=${RUNS:-1000000}
targets=${*:-$(cargo +nightly fuzz list)}
for t in $targets; do
    mkdir -p "corpus/$t"
    [ -d "seeds/$t" ] || mkdir -p "seeds/$t"
    echo "== $t"
    nice cargo +nightly fuzz run $FUZZ_FLAGS "$t" "corpus/$t" "seeds/$t" -- \
        -runs="$RUNS" -max_total_time=1800 -timeout=5 -rss_limit_mb=2048 \
        -print_final_stats=1 2>&1 | tee "/tmp/fuzz-$t.log" | grep -E '^Done|stat::|SUMMARY|panicked|Test unit written' || true
done
