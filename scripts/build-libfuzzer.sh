#!/usr/bin/env bash
# Build every fuzz/fuzz_<module>_<what>.c as a libFuzzer binary with clang,
# ASan and UBSan, into build/fuzz/. Run one with its corpus, e.g.
#   build/fuzz/fuzz_expfmt_text -max_total_time=60 fuzz/corpus/text
# (new inputs land in the corpus directory; commit the interesting ones).
set -eu
cd "$(dirname "$0")/.."
command -v clang >/dev/null || { echo "fuzz: installing clang" >&2; apt-get install -y -qq clang libclang-rt-14-dev >/dev/null; }
make --no-print-directory -j"$(nproc)" MODE=asan CC=clang BUILD=build/fuzz-objs CFLAGS=-fsanitize=fuzzer-no-link \
  $(for m in util labels expfmt tsdb promql config ingest ipmi; do echo build/fuzz-objs/lib/lib$m.a; done)
mkdir -p build/fuzz
PKG_LIBS="$(pkg-config --libs libcurl libmicrohttpd yaml-0.1 libpcre2-8 libxxhash libzstd zlib snappy libprotobuf-c) -lresolv"
for src in fuzz/fuzz_*.c; do
  name=$(basename "$src" .c); mod=$(echo "$name" | cut -d_ -f2)
  libs="" extra=""
  case $mod in
    util) libs="util";; labels) libs="labels util";; expfmt) libs="expfmt labels util";;
    tsdb) libs="tsdb labels util";; ingest) libs="ingest expfmt tsdb labels util";; promql) libs="promql tsdb labels util";; config) libs="config labels util";;
    ipmi) libs="ipmi tsdb labels util"; extra="$(pkg-config --libs libfreeipmi libipmimonitoring)";;
  esac
  clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined -o "build/fuzz/$name" "$src" \
    $(for l in $libs; do echo build/fuzz-objs/lib/lib$l.a; done) $extra $PKG_LIBS -lm -pthread
  echo "built build/fuzz/$name"
done
