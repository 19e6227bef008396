/*  sam_config.c — see sam_config.h.

    Values are kept as (option index, string) pairs in the order they were given; a lookup
    takes the last one for single options and all of them for repeatable ones. Flags first,
    the environment second, the file third: a value from the environment is only used when
    the flag was not given, one from the file only when neither was.
*/
#include "sam_config.h"
#include "sam_array.h"
#include "sam_clock.h"
#include "sam_log.h"

#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int opt;     /* index into opts */
    char *value; /* owned */
    bool from_file;
} s_value_t;

struct sam_config_t {
    const char *program;
    const char *usage;
    const char *summary;
    const sam_option_t *opts; /* borrowed, NULL-name terminated */
    size_t nopts;
    s_value_t *values; /* owned array */
    size_t nvalues, capvalues;
    char **pos; /* owned positional copies */
    size_t npos, cappos;
};

/* Options every program has, appended to its own table in help and parsing. */
static const sam_option_t s_builtin[] = {
    {"config", "FILE", NULL, "read options from a ZPL configuration file", false},
    {"log-level", "LEVEL", "info", "debug, info, warn or error", false},
    {"log-format", "FORMAT", "logfmt",
     "logfmt (key=value, quoted and escaped) or json (one object per line)", false},
    {"time-zone", "ZONE", SAM_CLOCK_DEFAULT_ZONE,
     "the programme's time zone: the one \"today\" is reckoned in (an IANA name)", false},
    {"now", "TIME", NULL,
     "run as if it were TIME now (YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] in --time-zone, or epoch "
     "ms); the clock runs on from there. For tests and replays; default: the real clock",
     false},
    {"help", NULL, NULL, "print this help and exit", false},
    {"help-format", "FORMAT", "text",
     "how --help prints: text, or markdown (the reference in docs/configuration.md)", false},
    {"version", NULL, NULL, "print the version and exit", false},
    {NULL, NULL, NULL, NULL, false},
};
#define S_NBUILTIN (sizeof s_builtin / sizeof s_builtin[0] - 1)

sam_config_t *sam_config_new(const char *program, const char *usage, const char *summary,
                             const sam_option_t *opts)
{
    sam_config_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->program = program;
    self->usage = usage ? usage : "[options]";
    self->summary = summary ? summary : "";
    self->opts = opts ? opts : s_builtin + S_NBUILTIN;
    while (self->opts[self->nopts].name)
        self->nopts++;
    return self;
}

void sam_config_destroy(sam_config_t **self_p)
{
    if (!self_p || !*self_p) return;
    sam_config_t *self = *self_p;
    for (size_t i = 0; i < self->nvalues; i++)
        free(self->values[i].value);
    free(self->values);
    for (size_t i = 0; i < self->npos; i++)
        free(self->pos[i]);
    free(self->pos);
    free(self);
    *self_p = NULL;
}

/* Index of an option by name: own options 0..nopts-1, builtins nopts.., -1 if unknown. */
static int s_find(const sam_config_t *self, const char *name, size_t len)
{
    for (size_t i = 0; i < self->nopts; i++)
        if (strlen(self->opts[i].name) == len && strncmp(self->opts[i].name, name, len) == 0)
            return (int)i;
    for (int i = 0; s_builtin[i].name; i++)
        if (strlen(s_builtin[i].name) == len && strncmp(s_builtin[i].name, name, len) == 0)
            return (int)self->nopts + i;
    return -1;
}

static const sam_option_t *s_opt(const sam_config_t *self, int idx)
{
    return (size_t)idx < self->nopts ? &self->opts[idx] : &s_builtin[(size_t)idx - self->nopts];
}

const sam_option_t *sam_config_find(sam_config_t *self, const char *name, size_t len)
{
    int opt = s_find(self, name, len);
    return opt < 0 ? NULL : s_opt(self, opt);
}

static int s_add(sam_config_t *self, int opt, const char *value, bool from_file)
{
    if (self->nvalues == self->capvalues) {
        size_t cap = self->capvalues ? self->capvalues * 2 : 16;
        s_value_t *v = realloc(self->values, cap * sizeof *v);
        if (!v) return -1;
        self->values = v;
        self->capvalues = cap;
    }
    char *copy = strdup(value ? value : "true");
    if (!copy) return -1;
    self->values[self->nvalues++] = (s_value_t){opt, copy, from_file};
    return 0;
}

static bool s_given(const sam_config_t *self, int opt, bool from_file)
{
    for (size_t i = 0; i < self->nvalues; i++)
        if (self->values[i].opt == opt && self->values[i].from_file == from_file) return true;
    return false;
}

/*  Reads a configuration file of at most 1 MiB. CZMQ's zconfig_load() is not used: it leaks
    its file object on text that is not valid ZPL (found by fuzz_config), and a huge file
    should be refused, not read. */
static zconfig_t *s_load(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    enum { S_CONFIG_MAX = 1 << 20 };
    char *text = malloc(S_CONFIG_MAX + 1);
    size_t n = text ? fread(text, 1, S_CONFIG_MAX + 1, f) : 0;
    fclose(f);
    zconfig_t *root = NULL;
    if (text && n <= S_CONFIG_MAX) {
        text[n] = '\0';
        root = zconfig_str_load(text);
    }
    free(text);
    return root;
}

static int s_read_file(sam_config_t *self, const char *path)
{
    zconfig_t *root = s_load(path);
    if (!root) {
        fprintf(stderr,
                "%s: cannot read configuration file %s (missing, over 1 MiB or not valid ZPL)\n",
                self->program, path);
        return -1;
    }
    int rc = 0;
    for (zconfig_t *item = zconfig_child(root); item && rc == 0; item = zconfig_next(item)) {
        const char *name = zconfig_name(item);
        int opt = s_find(self, name, strlen(name));
        if (opt < 0 || strcmp(name, "config") == 0) {
            fprintf(stderr, "%s: %s: unknown option '%s'\n", self->program, path, name);
            rc = -1;
            break;
        }
        if (s_given(self, opt, false)) continue; /* the command line wins */
        zconfig_t *child = zconfig_child(item);
        if (child) {
            if (!s_opt(self, opt)->multi) {
                fprintf(stderr, "%s: %s: option '%s' takes one value\n", self->program, path, name);
                rc = -1;
            }
            for (; child && rc == 0; child = zconfig_next(child))
                rc = s_add(self, opt, zconfig_value(child), true);
        } else {
            rc = s_add(self, opt, zconfig_value(item), true);
        }
    }
    zconfig_destroy(&root);
    return rc;
}

/* Whether an option is read from the environment: all but those that print and exit. */
static bool s_from_env(const sam_option_t *o)
{
    return strcmp(o->name, "help") != 0 && strcmp(o->name, "version") != 0 &&
           strcmp(o->name, "help-format") != 0;
}

/* SAMORDNA_DATA_DIR for data-dir: the environment variable of an option. */
static void s_env_name(const char *option, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "SAMORDNA_");
    for (const char *p = option; *p && n + 1 < cap; p++)
        out[n++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    out[n] = 0;
}

/*  Options not given on the command line, from SAMORDNA_<NAME> (a repeatable one's values
    separated by commas; a flag's value 1, true or yes, or 0, false or no). Empty counts as
    unset. --help, --help-format and --version are not read from the environment. */
static int s_read_env(sam_config_t *self)
{
    size_t n = self->nopts + S_NBUILTIN;
    for (size_t opt = 0; opt < n; opt++) {
        const sam_option_t *o = s_opt(self, (int)opt);
        if (!s_from_env(o)) continue;
        if (opt >= self->nopts && s_find(self, o->name, strlen(o->name)) != (int)opt)
            continue; /* a built-in the program's own table replaces */
        if (s_given(self, (int)opt, false)) continue;
        char var[96];
        s_env_name(o->name, var, sizeof var);
        const char *value = getenv(var);
        if (!value || !*value) continue;
        if (!o->arg) {
            bool yes =
                strcmp(value, "1") == 0 || strcmp(value, "true") == 0 || strcmp(value, "yes") == 0;
            bool no =
                strcmp(value, "0") == 0 || strcmp(value, "false") == 0 || strcmp(value, "no") == 0;
            if (!yes && !no) {
                fprintf(stderr, "%s: %s must be 1, true or yes, or 0, false or no\n", self->program,
                        var);
                return -1;
            }
            if (yes && s_add(self, (int)opt, NULL, false) != 0) return -1;
            continue;
        }
        for (const char *p = value; o->multi && *p;) {
            size_t len = strcspn(p, ",");
            char *one = strndup(p, len);
            int rc = one && *one ? s_add(self, (int)opt, one, false) : 0;
            free(one);
            if (rc != 0) return -1;
            p += len + (p[len] == ',');
        }
        if (!o->multi && s_add(self, (int)opt, value, false) != 0) return -1;
    }
    return 0;
}

int sam_config_parse(sam_config_t *self, int argc, char **argv)
{
    bool only_pos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            if (sam_array_grow(&self->pos, &self->cappos, self->npos, sizeof *self->pos, 8))
                return -1;
            if (!(self->pos[self->npos] = strdup(a))) return -1;
            self->npos++;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (strcmp(a, "-h") == 0) a = "--help";
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "%s: unknown option '%s' (try --help)\n", self->program, a);
            return -1;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int opt = s_find(self, name, len);
        if (opt < 0) {
            fprintf(stderr, "%s: unknown option '%s' (try --help)\n", self->program, a);
            return -1;
        }
        const sam_option_t *o = s_opt(self, opt);
        const char *value = NULL;
        if (o->arg) {
            if (eq)
                value = eq + 1;
            else if (i + 1 < argc)
                value = argv[++i];
            else {
                fprintf(stderr, "%s: option '--%s' needs a value %s\n", self->program, o->name,
                        o->arg);
                return -1;
            }
        } else if (eq) {
            fprintf(stderr, "%s: option '--%s' takes no value\n", self->program, o->name);
            return -1;
        }
        if (!o->multi) /* a repeated single option: the last one wins */
            for (size_t k = 0; k < self->nvalues; k++)
                if (self->values[k].opt == opt) self->values[k].opt = -1;
        if (s_add(self, opt, value, false) != 0) return -1;
    }
    const char *format = sam_config_get(self, "help-format");
    if (strcmp(format, "text") != 0 && strcmp(format, "markdown") != 0) {
        fprintf(stderr, "%s: --help-format must be text or markdown, not '%s'\n", self->program,
                format);
        return -1;
    }
    if (sam_config_flag(self, "help")) {
        sam_config_help(self, stdout);
        return 1;
    }
    if (sam_config_flag(self, "version")) {
        printf("%s %s\n", self->program, SAMORDNA_VERSION);
        return 1;
    }
    if (s_read_env(self) != 0) return -1;
    const char *file = sam_config_get(self, "config");
    if (file && s_read_file(self, file) != 0) return -1;
    if (sam_log_level_parse(sam_config_get(self, "log-level")) < 0) {
        fprintf(stderr, "%s: --log-level must be debug, info, warn or error\n", self->program);
        return -1;
    }
    if (sam_log_format_set(sam_config_get(self, "log-format")) != 0) {
        fprintf(stderr, "%s: --log-format must be logfmt or json\n", self->program);
        return -1;
    }
    const char *zone = sam_config_get(self, "time-zone");
    if (sam_clock_zone_set(zone) != 0) {
        fprintf(stderr, "%s: --time-zone: '%s' is not a known time zone (e.g. Europe/Oslo)\n",
                self->program, zone);
        return -1;
    }
    const char *now = sam_config_get(self, "now");
    if (now && sam_clock_set(now) != 0) {
        fprintf(stderr,
                "%s: --now: '%s' is not a time (YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] or epoch ms)\n",
                self->program, now);
        return -1;
    }
    return 0;
}

const char *sam_config_get(sam_config_t *self, const char *name)
{
    int opt = s_find(self, name, strlen(name));
    if (opt < 0) return NULL;
    for (size_t i = self->nvalues; i-- > 0;)
        if (self->values[i].opt == opt && !self->values[i].from_file) return self->values[i].value;
    for (size_t i = self->nvalues; i-- > 0;)
        if (self->values[i].opt == opt) return self->values[i].value;
    return s_opt(self, opt)->def;
}

long sam_config_int(sam_config_t *self, const char *name, long min, long max, bool *ok)
{
    const char *v = sam_config_get(self, name);
    if (!v) return min;
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max) {
        fprintf(stderr, "%s: --%s must be a whole number from %ld to %ld, not '%s'\n",
                self->program, name, min, max, v);
        if (ok) *ok = false;
        return -1;
    }
    return n;
}

bool sam_config_flag(sam_config_t *self, const char *name)
{
    const char *v = sam_config_get(self, name);
    return v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "yes") == 0);
}

size_t sam_config_count(sam_config_t *self, const char *name)
{
    int opt = s_find(self, name, strlen(name));
    if (opt < 0) return 0;
    size_t n = 0;
    bool cli = s_given(self, opt, false);
    for (size_t i = 0; i < self->nvalues; i++)
        if (self->values[i].opt == opt && self->values[i].from_file != cli) n++;
    return n ? n : (s_opt(self, opt)->def ? 1 : 0);
}

const char *sam_config_nth(sam_config_t *self, const char *name, size_t idx)
{
    int opt = s_find(self, name, strlen(name));
    if (opt < 0) return NULL;
    bool cli = s_given(self, opt, false);
    size_t n = 0;
    for (size_t i = 0; i < self->nvalues; i++)
        if (self->values[i].opt == opt && self->values[i].from_file != cli && n++ == idx)
            return self->values[i].value;
    return (n == 0 && idx == 0) ? s_opt(self, opt)->def : NULL;
}

size_t sam_config_npos(sam_config_t *self)
{
    return self->npos;
}

const char *sam_config_pos(sam_config_t *self, size_t i)
{
    return i < self->npos ? self->pos[i] : NULL;
}

/* The help of the options in `o`, less those `own` declares itself (a program may give a
   builtin option its own default). */
/* A Markdown table cell: `|` escaped, so option help cannot break the table. */
static void s_cell(FILE *f, const char *text)
{
    for (const char *p = text; p && *p; p++) {
        if (*p == '|') fputc('\\', f);
        fputc(*p, f);
    }
}

static void s_help_lines(FILE *f, const sam_option_t *o, const sam_option_t *own, bool markdown)
{
    for (; o->name; o++) {
        bool shadowed = false;
        for (const sam_option_t *p = own; p && p->name; p++)
            shadowed |= strcmp(p->name, o->name) == 0;
        if (shadowed) continue;
        if (markdown) {
            char var[96];
            s_env_name(o->name, var, sizeof var);
            fprintf(f, "| `--%s%s%s` | %s%s%s | ", o->name, o->arg ? " " : "", o->arg ? o->arg : "",
                    s_from_env(o) ? "`" : "", s_from_env(o) ? var : "", s_from_env(o) ? "`" : "");
            if (o->def && o->arg) {
                fputc('`', f);
                s_cell(f, o->def);
                fputc('`', f);
            }
            fprintf(f, " | ");
            s_cell(f, o->help);
            fprintf(f, "%s |\n", o->multi ? " (repeatable)" : "");
            continue;
        }
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(f, "  %-26s %s", left, o->help);
        if (o->def && o->arg) fprintf(f, " (default: %s)", o->def);
        if (o->multi) fprintf(f, " (repeatable)");
        fputc('\n', f);
    }
}

void sam_config_help(sam_config_t *self, void *file)
{
    FILE *f = file;
    const char *format = sam_config_get(self, "help-format");
    if (format && strcmp(format, "markdown") == 0) {
        fprintf(f, "### %s\n\n`%s %s`\n\n", self->program, self->program, self->usage);
        if (*self->summary) fprintf(f, "%s\n\n", self->summary);
        fprintf(f,
                "| option | environment | default | what it does |\n| --- | --- | --- | --- |\n");
        s_help_lines(f, self->opts, NULL, true);
        s_help_lines(f, s_builtin, self->opts, true);
        return;
    }
    fprintf(f, "Usage: %s %s\n", self->program, self->usage);
    if (*self->summary) fprintf(f, "\n%s\n", self->summary);
    fprintf(f, "\nOptions:\n");
    s_help_lines(f, self->opts, NULL, false);
    s_help_lines(f, s_builtin, self->opts, false);
    fprintf(f, "\nEvery option can also come from the environment as SAMORDNA_<NAME> (--data-dir:\n"
               "SAMORDNA_DATA_DIR; lists comma-separated). A flag on the command line wins over\n"
               "the environment, the environment over the --config file.\n");
}
