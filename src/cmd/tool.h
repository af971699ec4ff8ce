/* SPDX-License-Identifier: Apache-2.0
 *
 * cmd: the commands of bongsutool, the promtool-like companion of bongsu
 * (docs/bongsutool.md). bongsutool_main.c parses the command line and calls
 * one of these; each prints what promtool prints for the same command and
 * returns the process exit status (0 success, 1 failure).
 *
 * The tsdb commands read and write blocks through the storage engine's
 * internal interface (tsdb/tsdb_int.h): the block reader and the streaming
 * block writer. This is the one place outside src/tsdb/ allowed to include
 * that header, because these are storage tools; nothing in them changes
 * the engine's state, and a running bongsu may keep using the directory.
 */
#ifndef BONGSU_CMD_TOOL_H
#define BONGSU_CMD_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* `tsdb list [-r] DIR`: one line per block of DIR, oldest first, in
 * promtool's columns (ULID, min and max time, duration, samples, chunks,
 * series, bytes on disk). human_readable prints times as UTC dates and
 * sizes with binary units. Blocks that cannot be read are reported on
 * stderr and make the status 1; the others are still listed. */
int tool_tsdb_list(const char *dir, bool human_readable);

/* `tsdb analyze DIR [BLOCK_ID]`: label cardinality of one block (the
 * newest when block_id is NULL), each list cut to `limit` entries:
 * churn per label pair and name, most common pairs, cumulative value
 * length per name, highest cardinality labels, series per metric name. */
int tool_tsdb_analyze(const char *dir, const char *block_id, size_t limit);

/* `tsdb create-blocks-from openmetrics FILE DIR`: backfill. Reads the
 * OpenMetrics text FILE (every sample must carry a timestamp; "# EOF"
 * required) and writes its samples into blocks under DIR (created when
 * missing), one block per window of max_block_ms (2 h, or 2 h * 3^k up to
 * the requested maximum), windows aligned to multiples of their length.
 * Prints the blocks written unless quiet. Errors name FILE and the line. */
int tool_backfill_openmetrics(const char *file, const char *dir, int64_t max_block_ms,
                              bool human_readable, bool quiet);

/* Shared by list and create-blocks-from: print the table of the blocks
 * whose directories are dirs[0..n) under parent (header first when
 * header is true). Returns 0, or 1 when some block could not be read. */
int tool_print_blocks(const char *parent, char **names, size_t n, bool header, bool human_readable);

#endif
