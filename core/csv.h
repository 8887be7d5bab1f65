/* core/csv.h - streaming reader of delimited text (CSV, TSV), plain or gzip, with line numbers.
 *
 * Files are read through zlib's gzread, which reads plain files unchanged, so `clicks.csv.gz` and
 * `clicks.csv` are opened the same way. Rows are split on one separator byte; fields may be quoted
 * with '"' (a doubled "" inside is one quote; a quoted field may not span lines). Trailing '\r' is
 * dropped. Empty lines are skipped. Memory: one growing line buffer; no allocation per row.
 *
 *     csv_reader *r = csv_open("data.csv", ',');      // NULL + message if it cannot be opened
 *     char **f; int n, rc;
 *     while ((rc = csv_next(r, &f, &n)) > 0) { ... f[0..n) are NUL-terminated, valid until next call }
 *     if (rc < 0) ... rc_errmsg() names the file and line
 *     csv_close(r);
 */
#ifndef RECD_CSV_H
#define RECD_CSV_H

#include <stdint.h>

typedef struct csv_reader csv_reader;

/* sep: the field separator; 0 = guess from the first line (tab if it has one, else ','). */
csv_reader *csv_open(const char *path, char sep);
/* Next row: 1 (fields set), 0 at end of file, or a negative RC code (I/O error, unterminated quote,
 * line over 1 MiB) with a message "path:line: ...". Fields are borrowed until the next call. */
int csv_next(csv_reader *r, char ***fields, int *nfields);
/* 1-based line number of the row last returned. */
int64_t csv_line(const csv_reader *r);
const char *csv_path(const csv_reader *r);
char csv_sep(const csv_reader *r);
void csv_close(csv_reader *r); /* NULL is a no-op */

/* Parsing helpers for fields, strict: the whole string must be a number (leading/trailing spaces
 * allowed). Return RC_OK or RC_EFORMAT (no message set: the caller names file, line and field). */
int csv_parse_i64(const char *s, int64_t *out);
int csv_parse_double(const char *s, double *out);

#endif
