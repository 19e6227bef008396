/*  sam_config.h — options for every samordna binary: command-line flags first, then the
    environment (SAMORDNA_DATA_DIR for --data-dir: SAMORDNA_ and the name in capitals with
    `_` for `-`; a repeatable option's values separated by commas, a flag's value 1/true/yes
    or 0/false/no, an empty variable unset), then an optional configuration file in ZeroMQ's
    ZPL format (read with CZMQ's zconfig), then the built-in default. A program declares its options
   once, in a table; --help is generated from that table, so help text and parsing never drift
   apart.

    The configuration file holds the same names as the long options, one per line:
        broker = "tcp://127.0.0.1:5555"
        data-dir = "/var/lib/samordna"
    A repeatable option takes several lines of the same name in a block:
        broker
            1 = "tcp://10.0.0.1:5555"
            2 = "tcp://10.0.0.2:5555"
    Every program also understands --config FILE, --log-level LEVEL, --help and --version;
    a program that declares one of these in its own table (for another default) gets its own.
*/
#ifndef SAM_CONFIG_H
#define SAM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *name; /* long option without "--", e.g. "data-dir" */
    const char *arg;  /* placeholder for help ("DIR"); NULL for a flag without value */
    const char *def;  /* default value or NULL */
    const char *help; /* one line */
    bool multi;       /* may be given more than once */
} sam_option_t;

typedef struct sam_config_t sam_config_t;

/*  Creates a parser for `program` with the options in `opts` (terminated by an entry whose
    name is NULL). `usage` is the synopsis after the program name ("[options] COMMAND …").
    The tables are borrowed and must outlive the config. Returns NULL only on out of memory. */
sam_config_t *sam_config_new(const char *program, const char *usage, const char *summary,
                             const sam_option_t *opts);

/*  Frees the config and sets *self_p to NULL; accepts NULL. */
void sam_config_destroy(sam_config_t **self_p);

/*  Parses argv, then the SAMORDNA_* environment, then the --config file. Returns 0 to go on, 1 when
   --help or --version was answered (the caller exits 0), -1 on a bad option or file (a message was
   printed to stderr; the caller exits 2). Arguments that are not options are kept as positionals.
 */
int sam_config_parse(sam_config_t *self, int argc, char **argv);

/*  The value of an option (the last one given, for a repeatable one), or its default, or
    NULL. The string lives as long as the config. */
const char *sam_config_get(sam_config_t *self, const char *name);

/*  The option as an integer; `def` when unset; -1 with a message on stderr when the value
    is not an integer in [min, max] (*ok is set false). */
long sam_config_int(sam_config_t *self, const char *name, long min, long max, bool *ok);

/*  True when a flag option was given (or its default/file value is "true"/"1"/"yes"). */
bool sam_config_flag(sam_config_t *self, const char *name);

/*  How many values a repeatable option has (its default counts as one when none given),
    and the i-th of them. */
size_t sam_config_count(sam_config_t *self, const char *name);
const char *sam_config_nth(sam_config_t *self, const char *name, size_t i);

/*  The positional arguments (not options), in order. */
size_t sam_config_npos(sam_config_t *self);
const char *sam_config_pos(sam_config_t *self, size_t i);

/*  The option called `name` (its first `len` bytes), of the program's table or the built-in
    ones (--config, --log-level, …), or NULL when there is none. Borrowed from the tables. */
const sam_option_t *sam_config_find(sam_config_t *self, const char *name, size_t len);

/*  Prints the generated help to the given stream. */
void sam_config_help(sam_config_t *self, void *file);

#endif
