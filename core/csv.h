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

/* sep: the field separator; 0 = guess from the first line (tab if it has one, else ','). NULL on
 * failure, with a message naming path (and the system's reason). */
csv_reader *csv_open(const char *path, char sep);
/* The same with the error code: RC_OK (*out set), RC_ENOTFOUND (no such file), RC_EIO (cannot open or
 * read the first line), RC_EFORMAT (first line over 1 MiB), RC_ENOMEM; *out is NULL on failure. */
int csv_open_rc(csv_reader **out, const char *path, char sep);
/* Next row: 1 (fields set), 0 at end of file, or a negative RC code (RC_EIO: read error or truncated
 * gzip; RC_EFORMAT: unterminated quote, text after a closing quote, a NUL byte, line over 1 MiB;
 * RC_ENOMEM) with a
 * message "path:line: ...". *fields and *nfields are set only when 1 is returned; the fields (n >= 1)
 * are borrowed until the next call or csv_close. */
int csv_next(csv_reader *r, char ***fields, int *nfields);
/* 1-based line number of the row last returned (0 before the first). */
int64_t csv_line(const csv_reader *r);
/* The path as given to csv_open (borrowed, valid until csv_close); the separator in use. */
const char *csv_path(const csv_reader *r);
char csv_sep(const csv_reader *r);
void csv_close(csv_reader *r); /* NULL is a no-op */

/* Parsing helpers for fields, strict: the whole string must be a number (leading/trailing spaces
 * allowed). Return RC_OK or RC_EFORMAT (no message set: the caller names file, line and field). */
int csv_parse_i64(const char *s, int64_t *out);
int csv_parse_double(const char *s, double *out);

#endif
