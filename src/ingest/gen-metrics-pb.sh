#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Regenerates src/ingest/metrics.pb-c.{c,h} from metrics.proto
# with protoc-c (Debian's protobuf-c-compiler, 1.4.1 when last run) and
# puts the licence and purpose header atop them. Run from anywhere; commit
# the result.
set -eu
cd "$(dirname "$0")/../.."
protoc-c --proto_path=src --c_out=src src/ingest/metrics.proto
for f in src/ingest/metrics.pb-c.c src/ingest/metrics.pb-c.h; do
  {
    printf '/* SPDX-License-Identifier: Apache-2.0\n *\n'
    printf ' * Generated protobuf-c code for the Prometheus client data model in\n'
    printf ' * src/ingest/metrics.proto (MetricFamily). Do not edit:\n'
    printf ' * regenerate with src/ingest/gen-metrics-pb.sh (protoc-c).\n */\n'
    cat "$f"
  } > "$f.tmp"
  mv "$f.tmp" "$f"
done
