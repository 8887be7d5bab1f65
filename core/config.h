/* core/config.h - table-driven settings (after Redis' standardConfig).
 *
 * A module describes its settings once, in a cfg_def table; the same table fills defaults, reads a JSON
 * config file, applies command-line overrides, prints --help, validates bounds and serialises the
 * effective values (e.g. into a snapshot's meta). Names may be dotted ("sessions.ttl_s"): a dot
 * descends into a nested JSON object of the file.
 *
 *     typedef struct { int hidden; double lr; char *loss; } gru_cfg;
 *     static const cfg_def gru_cfg_defs[] = {
 *         CFG_INT("hidden", gru_cfg, hidden, 100, 1, 65536, "GRU units per layer"),
 *         CFG_DOUBLE("lr", gru_cfg, lr, 0.05, 0, 100, "learning rate"),
 *         CFG_ENUM("loss", gru_cfg, loss, "bpr-max", "cross-entropy|bpr-max|top1-max", "loss"),
 *         CFG_END
 *     };
 *     gru_cfg c; cfg_defaults(gru_cfg_defs, &c);
 *     if (cfg_load_file(gru_cfg_defs, &c, "configs/gru4rec.json") != RC_OK) ... rc_errmsg()
 *        -> "configs/gru4rec.json:7: setting 'lr': expected a number, got \"fast\""
 *     cfg_set(gru_cfg_defs, &c, "lr", "0.1", "command line");
 *     cfg_release(gru_cfg_defs, &c);   // frees strings and JSON values
 *
 * Errors: RC_ENOTFOUND (file missing), RC_EFORMAT (bad JSON, with line and column), RC_EINVAL
 * (unknown setting, a renamed setting's old name, wrong type), RC_ERANGE (out of bounds, or not one of an enum's choices). Every
 * message names the file (or origin) and the setting; for file errors also the line where the setting
 * appears.
 */
#ifndef RECD_CONFIG_H
#define RECD_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

typedef enum { CFG_T_INT, CFG_T_DOUBLE, CFG_T_BOOL, CFG_T_STRING, CFG_T_ENUM, CFG_T_JSON, CFG_T_RENAMED } cfg_type;

typedef struct cfg_def {
    const char *name;    /* dotted path; NULL ends the table */
    cfg_type type;
    size_t offset;       /* of the field in the settings struct */
    double min, max;     /* bounds for INT / DOUBLE (inclusive) */
    long long def_int;   /* default for INT and BOOL */
    double def_double;   /* default for DOUBLE */
    const char *def_str; /* default for STRING / ENUM (may be NULL for STRING); JSON text for JSON;
                            RENAMED: the new name */
    const char *choices; /* ENUM: "a|b|c" */
    const char *help;
} cfg_def;

/* Field types: INT -> long long, DOUBLE -> double, BOOL -> int (0/1), STRING and ENUM -> char *
 * (owned by the struct, freed by cfg_release; NULL when a STRING has no value), JSON -> json_t *
 * (owned reference, any JSON value, NULL if unset). */
#define CFG_INT(n, T, f, d, lo, hi, h) {n, CFG_T_INT, offsetof(T, f), lo, hi, d, 0, NULL, NULL, h}
#define CFG_DOUBLE(n, T, f, d, lo, hi, h) {n, CFG_T_DOUBLE, offsetof(T, f), lo, hi, 0, d, NULL, NULL, h}
#define CFG_BOOL(n, T, f, d, h) {n, CFG_T_BOOL, offsetof(T, f), 0, 1, d, 0, NULL, NULL, h}
#define CFG_STRING(n, T, f, d, h) {n, CFG_T_STRING, offsetof(T, f), 0, 0, 0, 0, d, NULL, h}
#define CFG_ENUM(n, T, f, d, ch, h) {n, CFG_T_ENUM, offsetof(T, f), 0, 0, 0, 0, d, ch, h}
#define CFG_JSON(n, T, f, d, h) {n, CFG_T_JSON, offsetof(T, f), 0, 0, 0, 0, d, NULL, h}
/* A setting that was renamed: the old name `o` in a file, a flag or cfg_set is refused with RC_EINVAL
 * and "setting 'o' is now called 'n'" (plus ": note" when given, e.g. for a flag whose meaning was
 * inverted: CFG_RENAMED_NOTE("no_sort", "sort_by_time", "write --sort_by_time false")). No field;
 * never in defaults, help or cfg_to_json. */
#define CFG_RENAMED(o, n) {o, CFG_T_RENAMED, 0, 0, 0, 0, 0, n, NULL, NULL}
#define CFG_RENAMED_NOTE(o, n, note) {o, CFG_T_RENAMED, 0, 0, 0, 0, 0, n, NULL, note}
#define CFG_END {NULL, 0, 0, 0, 0, 0, 0, NULL, NULL, NULL}

/* Fill every field with its default (allocating default strings). RC_ENOMEM on failure; RC_EINVAL for
 * a bad table (an ENUM default not among its choices, a JSON default that does not parse, a name
 * holding '-': setting names are written with '_'). */
int cfg_defaults(const cfg_def *defs, void *obj);
/* Read a JSON object from path and set each setting it names. Unknown keys are errors. */
int cfg_load_file(const cfg_def *defs, void *obj, const char *path);
/* Same from an already-parsed JSON object; origin names it in messages. */
int cfg_load_json(const cfg_def *defs, void *obj, const json_t *root, const char *origin);
/* Set one setting from its text form ("0.1", "true", "bpr-max", JSON text for JSON settings). */
int cfg_set(const cfg_def *defs, void *obj, const char *name, const char *value, const char *origin);
/* Command-line overrides: consumes every `--name value` and `--name=value` whose name is a setting
 * (also `--set name=value`), removes them from argv, updates *argc. Other args are left in order.
 * A `--name` that is not a setting and not in `keep` (NULL-terminated list of flags the caller parses
 * itself, e.g. {"-c", "--data", NULL}) is an error "unknown option '--name'".
 * Flag spelling, the one rule of every recd command: a flag is `--` and the setting's name, and in a
 * flag name '-' and '_' are the same character, so `--split-time`, `--split_time` and
 * `--data.split-time` name the settings split_time and data.split_time. Names in tables, config
 * files, --help and messages are written with '_' (file keys must be exact). `keep` entries are
 * matched with the same rule. */
int cfg_parse_args(const cfg_def *defs, void *obj, int *argc, char **argv, const char *const *keep);
/* Effective values as a new JSON object (nested by dotted names). Caller owns it. NULL with a message
 * on ENOMEM, or (RC_EINVAL) for a table naming both "a" and "a.b" (no JSON nests both). */
json_t *cfg_to_json(const cfg_def *defs, const void *obj);
/* One line per setting: name, type, default, bounds or choices, help. */
void cfg_print_help(const cfg_def *defs, FILE *out);
/* Free strings and JSON values; the struct itself belongs to the caller. */
void cfg_release(const cfg_def *defs, void *obj);

#endif
