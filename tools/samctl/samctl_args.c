/*  samctl_args.c — the one parser of samctl's command lines, and the usage and help texts
    made from the same tables (see samctl.h for the rules of the line).

    Why one parser: each command used to walk argv with its own strcmp chain, so the same
    mistake got a different answer in every area (an unknown option ignored here, "bad
    arguments" there, a value silently taken as 0 elsewhere). Now a command is a table — its
    arguments, its options with their types and help, its subcommands — and everything that
    can be known before a request is sent is checked here, once: unknown options, missing
    values, numbers, query dates, required options, the number of arguments. The handler
    then only builds its request. Help is printed from the table that parsing uses, so it
    cannot describe an option the parser does not know, or miss one it does.
*/
#include "samctl.h"
#include "sam_check.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_WIDTH 100 /* usage lines are wrapped here */

/* ---- usage and help ----------------------------------------------------------------------- */

/* Appends one word of a synopsis to f, wrapping at S_WIDTH with `indent` spaces. */
static void s_word(FILE *f, const char *word, size_t indent, size_t *col)
{
    size_t len = strlen(word);
    if (*col > indent && *col + 1 + len > S_WIDTH) {
        fprintf(f, "\n%*s", (int)indent, "");
        *col = indent;
    } else if (*col != indent) { /* not right after a wrap */
        fputc(' ', f);
        (*col)++;
    }
    fputs(word, f);
    *col += len;
}

/* "--name ARG", "[--name ARG]", "[-n COUNT]", "[--name ARG]..." */
static void s_opt_word(const samctl_opt_t *o, char *out, size_t cap)
{
    bool req = o->flags & SAMCTL_REQUIRED;
    char name[64];
    if (o->letter)
        snprintf(name, sizeof name, "-%c", o->letter);
    else
        snprintf(name, sizeof name, "--%s", o->name);
    snprintf(out, cap, "%s%s%s%s%s%s", req ? "" : "[", name, o->arg ? " " : "",
             o->arg ? o->arg : "", req ? "" : "]", o->flags & SAMCTL_REPEAT ? "..." : "");
}

/* One synopsis: "<lead>samctl PATH ARGS OPTIONS", wrapped under its first argument. */
static void s_synopsis(FILE *f, const char *lead, const char *path, const samctl_cmd_t *c)
{
    fprintf(f, "%ssamctl %s", lead, path);
    size_t col = strlen(lead) + strlen("samctl ") + strlen(path);
    size_t indent = col + 1;
    if (c->args) s_word(f, c->args, indent, &col); /* whole: "[SUBSCRIPTION/QSEQ]" is one unit */
    for (const samctl_opt_t *o = c->opts; o && o->name; o++) {
        char w[128];
        s_opt_word(o, w, sizeof w);
        s_word(f, w, indent, &col);
    }
    fputc('\n', f);
}

/* The usage lines of a command: its own synopsis when it runs by itself, then one short line
   per subcommand (its arguments; its options are in its own usage). */
static void s_usage_lines(FILE *f, const char *path, const samctl_cmd_t *c)
{
    const char *lead = "usage: ";
    if (c->run) {
        s_synopsis(f, lead, path, c);
        lead = "       ";
    }
    for (const samctl_cmd_t *s = c->subs; s && s->name; s++) {
        fprintf(f, "%ssamctl %s %s", lead, path, s->name);
        if (s->subs) {
            for (const samctl_cmd_t *t = s->subs; t->name; t++)
                fprintf(f, "%s%s", t == s->subs ? " " : "|", t->name);
            fputs(" …", f);
        }
        if (s->args) fprintf(f, " %s", s->args);
        if (s->opts && s->opts->name) fputs(" [options]", f);
        fputc('\n', f);
        lead = "       ";
    }
}

/* The first line of a text, for lists. */
static int s_first_line_len(const char *about)
{
    const char *nl = about ? strchr(about, '\n') : NULL;
    return about ? (int)(nl ? (size_t)(nl - about) : strlen(about)) : 0;
}

static void s_help(const char *path, const samctl_cmd_t *c)
{
    FILE *f = stdout;
    if (c->run)
        s_usage_lines(f, path, c);
    else /* the subcommands are listed below, each with its line */
        fprintf(f, "usage: samctl %s SUBCOMMAND [arguments and options]\n", path);
    if (c->about) fprintf(f, "\n%s\n", c->about);
    if (c->opts && c->opts->name) {
        fprintf(f, "\nOptions:\n");
        for (const samctl_opt_t *o = c->opts; o->name; o++) {
            char left[96], letter[8] = "";
            if (o->letter) snprintf(letter, sizeof letter, "-%c, ", o->letter);
            snprintf(left, sizeof left, "%s--%s%s%s", letter, o->name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
            fprintf(f, "  %-30s %s%s%s\n", left, o->help,
                    o->flags & SAMCTL_REQUIRED ? " (required)" : "",
                    o->flags & SAMCTL_REPEAT ? " (repeatable)" : "");
        }
    }
    if (c->subs) {
        fprintf(f, "\nSubcommands:\n");
        for (const samctl_cmd_t *s = c->subs; s->name; s++)
            fprintf(f, "  %-16s %.*s\n", s->name, s_first_line_len(s->about),
                    s->about ? s->about : "");
        fprintf(f, "\n`samctl %s SUBCOMMAND --help` tells each one's arguments and options.\n",
                path);
    }
    fprintf(f, "\nGlobal options, anywhere on the line:");
    size_t col = strlen("Global options, anywhere on the line:");
    for (const sam_option_t *o = samctl_global_options; o->name; o++) {
        char w[64];
        snprintf(w, sizeof w, " --%s%s", o->name, o[1].name ? "," : "");
        if (col + strlen(w) > S_WIDTH) {
            fprintf(f, "\n ");
            col = 1;
        }
        fputs(w, f);
        col += strlen(w);
    }
    fprintf(f, "\n(samctl --help says what each does; also --config and --log-level.)\n");
}

static int s_error_v(const char *path, const samctl_cmd_t *c, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    fprintf(stderr, "samctl %s: %s\n", path, sam_check_sanitize(msg));
    s_usage_lines(stderr, path, c);
    fprintf(stderr, "(samctl %s --help says more)\n", path);
    return 2;
}

static int s_error(const char *path, const samctl_cmd_t *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int s_error(const char *path, const samctl_cmd_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = s_error_v(path, c, fmt, ap);
    va_end(ap);
    return rc;
}

int samctl_usage_error(const samctl_args_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = s_error_v(a->path, a->cmd, fmt, ap);
    va_end(ap);
    return rc;
}

int samctl_value_error(const samctl_args_t *a, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "samctl %s: %s\n", a->path, sam_check_sanitize(msg));
    return 2;
}

/* ---- amounts ------------------------------------------------------------------------------ */

/* The length of a space at p as people paste them between digit groups: an ordinary space,
   U+00A0 no-break space, U+202F narrow no-break space (what word processors and banks'
   web pages put between thousands), U+2009 thin space; 0 when p is none of them. */
static size_t s_space(const char *p)
{
    if (*p == ' ') return 1;
    if ((unsigned char)p[0] == 0xC2 && (unsigned char)p[1] == 0xA0) return 2;
    if ((unsigned char)p[0] == 0xE2 && (unsigned char)p[1] == 0x80 &&
        ((unsigned char)p[2] == 0xAF || (unsigned char)p[2] == 0x89))
        return 3;
    return 0;
}

static const char *s_skip_spaces(const char *p)
{
    for (size_t n; (n = s_space(p)) > 0;)
        p += n;
    return p;
}

/* Whether p starts with the currency word w (any case) not followed by a letter. */
static size_t s_currency(const char *p)
{
    static const char *const words[] = {"NOK", "kr.", "kr"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t n = strlen(words[i]);
        if (strncasecmp(p, words[i], n) == 0 && !isalpha((unsigned char)p[n])) return n;
    }
    return 0;
}

int samctl_parse_nok(const char *s, int64_t *ore, char *why, size_t cap)
{
    const char *p = s_skip_spaces(s);
    size_t n = s_currency(p);
    bool prefix = n > 0;
    p = s_skip_spaces(p + n);
    if (*p == '-' || *p == '+') {
        snprintf(why, cap, "%s",
                 *p == '-' ? "it is negative: an amount here is 0 or more" : "it has a sign");
        return -1;
    }
    int64_t kr = 0;
    int digits = 0, group = 0, groups = 0;
    bool grouped = false;
    for (;; p++) {
        if (isdigit((unsigned char)*p)) {
            if (__builtin_mul_overflow(kr, 10, &kr) || __builtin_add_overflow(kr, *p - '0', &kr) ||
                kr > INT64_MAX / 100 - 1) {
                snprintf(why, cap, "it is too large");
                return -1;
            }
            digits++;
            group++;
            continue;
        }
        size_t sp = s_space(p);
        if (!sp || !isdigit((unsigned char)p[sp])) break;
        /* A space between digits groups thousands: the first group 1 to 3 digits, every
           later one exactly 3, so "1 5 0" is not taken for 150. */
        if ((groups == 0 && group > 3) || (groups > 0 && group != 3)) break;
        grouped = true;
        groups++;
        group = 0;
        p += sp - 1;
    }
    if (grouped && group != 3) {
        snprintf(why, cap, "it has spaces that do not group thousands");
        return -1;
    }
    if (!digits) {
        snprintf(why, cap, "it has no digits");
        return -1;
    }
    int64_t cents = 0;
    if ((*p == ',' || *p == '.') && p[1] == '-' && !isdigit((unsigned char)p[2])) {
        p += 2; /* "200 000,-": whole kroner, as price tags write it */
    } else if (*p == ',' || *p == '.') {
        int decimals = 0;
        for (p++; isdigit((unsigned char)*p); p++) {
            if (++decimals > 2) {
                snprintf(why, cap, "it has more than 2 decimals");
                return -1;
            }
            cents = cents * 10 + (*p - '0');
        }
        if (decimals == 0) {
            snprintf(why, cap, "it has no digits after its decimal mark");
            return -1;
        }
        if (decimals == 1) cents *= 10;
        if (*p == ',' || *p == '.') {
            snprintf(why, cap, "it has more than one decimal mark");
            return -1;
        }
    }
    p = s_skip_spaces(p);
    if (!prefix && (n = s_currency(p)) > 0) p = s_skip_spaces(p + n);
    if (*p) {
        snprintf(why, cap, "%s",
                 isdigit((unsigned char)*p) ? "it has spaces that do not group thousands"
                 : *p == ',' || *p == '.'   ? "it has more than one decimal mark"
                                            : "it holds more than digits, spaces and kr");
        return -1;
    }
    *ore = kr * 100 + cents;
    return 0;
}

/* ---- values ------------------------------------------------------------------------------- */

/* Checks a value against its option's type; 0, or -1 with the reason in err. */
static int s_check_value(const samctl_opt_t *o, const char *v, char *err, size_t cap)
{
    char shown[64];
    if (o->type == SAMCTL_COUNT || o->type == SAMCTL_YEAR) {
        char *end = NULL;
        errno = 0;
        unsigned long long n = isdigit((unsigned char)v[0]) ? strtoull(v, &end, 10) : 0;
        bool ok = end && !*end && !errno;
        if (o->type == SAMCTL_COUNT && (!ok || n > UINT32_MAX)) {
            snprintf(err, cap, "--%s: '%s' is not a whole number from 0 to 4294967295", o->name,
                     sam_check_escape(v, 40, shown, sizeof shown));
            return -1;
        }
        if (o->type == SAMCTL_YEAR && (!ok || n < 1 || n > 9999)) {
            snprintf(err, cap, "--%s: '%s' is not a year (four digits, e.g. 2019)", o->name,
                     sam_check_escape(v, 40, shown, sizeof shown));
            return -1;
        }
    } else if (o->type == SAMCTL_DATE) {
        char field[64];
        snprintf(field, sizeof field, "--%s", o->name);
        if (sam_check_date(field, v, true, err, cap) != 0) return -1;
    } else if (o->type == SAMCTL_AMOUNT) {
        char why[128];
        int64_t ore;
        if (samctl_parse_nok(v, &ore, why, sizeof why) != 0) {
            snprintf(err, cap, "--%s: '%s' is not an amount in NOK (%s); " SAMCTL_AMOUNT_EXAMPLES,
                     o->name, sam_check_escape(v, 40, shown, sizeof shown), why);
            return -1;
        }
    }
    return 0;
}

static const samctl_opt_t *s_find(const samctl_cmd_t *c, const char *name, size_t len, char letter)
{
    for (const samctl_opt_t *o = c->opts; o && o->name; o++)
        if (letter ? o->letter == letter
                   : strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

/* ---- parsing ------------------------------------------------------------------------------ */

static bool s_is_option(const char *w)
{
    /* "-" alone and "-5" are arguments; "-x" and "--x" options. */
    return w[0] == '-' && w[1] && !isdigit((unsigned char)w[1]);
}

/* Parses argv[1..] of a command without subcommand choice. Returns -1 to go on, or an exit
   code (0 after help, 2 after an error). */
/*  How many positional arguments a command takes, read from its usage words, so the usage
    and the check cannot disagree: a plain word is one that must be given ("PILOT KIND": two),
    a bracketed group one that may be ("[PILOT]"), and a word or group holding "…" or "..."
    any number more ("[COMMAND [SUBCOMMAND…]]"). */
static void s_arity(const char *args, int *min, int *max)
{
    *min = *max = 0;
    int depth = 0;
    bool in_word = false;
    for (const char *p = args ? args : ""; *p; p++) {
        if (strncmp(p, "…", strlen("…")) == 0 || strncmp(p, "...", 3) == 0) *max = SAMCTL_MAX_ARGS;
        if (*p == ' ' || *p == ']') {
            depth -= *p == ']';
            in_word = false;
            continue;
        }
        if (!in_word && depth == 0) {
            *min += *p != '[';
            (*max)++;
        }
        depth += *p == '[';
        in_word = true;
    }
    if (*max > SAMCTL_MAX_ARGS) *max = SAMCTL_MAX_ARGS;
}

static int s_parse(const samctl_cmd_t *c, const char *path, int argc, char **argv, samctl_args_t *a)
{
    /* --help wins over every mistake on the line: whoever asks for help gets it. */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            s_help(path, c);
            return 0;
        }
    bool only_args = false;
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        if (only_args || !s_is_option(w)) {
            if (a->npos == SAMCTL_MAX_ARGS)
                return s_error(path, c, "more than %d arguments", SAMCTL_MAX_ARGS);
            a->pos[a->npos++] = w;
            continue;
        }
        if (strcmp(w, "--") == 0) {
            only_args = true;
            continue;
        }
        const char *name = w[1] == '-' ? w + 2 : w + 1;
        const char *eq = w[1] == '-' ? strchr(name, '=') : NULL;
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const samctl_opt_t *o = NULL;
        if (w[1] == '-')
            o = s_find(c, name, len, 0);
        else if (len == 1)
            o = s_find(c, NULL, 0, name[0]);
        if (!o) {
            char shown[64];
            sam_check_escape(w, eq ? (size_t)(eq - w) : 60, shown, sizeof shown);
            if (c->subs && !c->opts)
                return s_error(path, c, "unknown option '%s' (name a subcommand first)", shown);
            return s_error(path, c, "unknown option '%s'", shown);
        }
        const char *value = NULL;
        if (o->arg) {
            if (eq)
                value = eq + 1;
            else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
                value = argv[++i];
            else
                return s_error(path, c,
                               "--%s needs a value %s (one that starts with \"--\" is written "
                               "--%s=VALUE)",
                               o->name, o->arg, o->name);
            char err[256];
            if (s_check_value(o, value, err, sizeof err) != 0) {
                /* The option is known and named: one line that says what would be right
                   serves better than the whole usage after it. */
                fprintf(stderr, "samctl %s: %s\n", path, sam_check_sanitize(err));
                return 2;
            }
        } else if (eq) {
            return s_error(path, c, "--%s takes no value", o->name);
        }
        if (a->ngiven == SAMCTL_MAX_GIVEN)
            return s_error(path, c, "more than %d options", SAMCTL_MAX_GIVEN);
        a->given[a->ngiven].opt = o;
        a->given[a->ngiven].value = value;
        a->ngiven++;
    }
    if (!c->run) {
        if (a->npos == 0) return s_error(path, c, "name a subcommand");
        char shown[64];
        return s_error(path, c, "unknown subcommand '%s'",
                       sam_check_escape(a->pos[0], 40, shown, sizeof shown));
    }
    for (const samctl_opt_t *o = c->opts; o && o->name; o++) {
        if (!(o->flags & SAMCTL_REQUIRED)) continue;
        bool given = false;
        for (size_t k = 0; k < a->ngiven && !given; k++)
            given = a->given[k].opt == o;
        if (!given) return s_error(path, c, "--%s %s is required", o->name, o->arg ? o->arg : "");
    }
    int min_args, max_args;
    s_arity(c->args, &min_args, &max_args);
    if ((int)a->npos < min_args)
        return s_error(path, c, "%s: name %s", a->npos ? "too few arguments" : "no argument",
                       c->args ? c->args : "the arguments");
    if ((int)a->npos > max_args) {
        char shown[64];
        sam_check_escape(a->pos[max_args], 40, shown, sizeof shown);
        if (c->subs && max_args == 0 && a->pos[max_args][0] != '-')
            return s_error(path, c, "'%s' is not one of its subcommands", shown);
        return s_error(path, c, "unexpected argument '%s'", shown);
    }
    return -1;
}

int samctl_run(samctl_t *ctl, const samctl_cmd_t *cmd, int argc, char **argv)
{
    samctl_args_t a;
    memset(&a, 0, sizeof a);
    snprintf(a.path, sizeof a.path, "%s", cmd->name);
    /* A subcommand is the word right after its command's. */
    while (cmd->subs && argc >= 2) {
        const samctl_cmd_t *sub = NULL;
        for (const samctl_cmd_t *s = cmd->subs; s->name && !sub; s++)
            if (strcmp(s->name, argv[1]) == 0) sub = s;
        if (!sub) break;
        size_t at = strlen(a.path);
        snprintf(a.path + at, sizeof a.path - at, " %s", sub->name);
        cmd = sub;
        argc--;
        argv++;
    }
    a.cmd = cmd;
    int rc = s_parse(cmd, a.path, argc, argv, &a);
    if (rc >= 0) return rc;
    return cmd->run(ctl, &a);
}

/* ---- reading the parsed line -------------------------------------------------------------- */

static const samctl_opt_t *s_known(const samctl_args_t *a, const char *name)
{
    const samctl_opt_t *o = s_find(a->cmd, name, strlen(name), 0);
    assert(o && "a handler asks for an option its table does not have");
    return o;
}

const char *samctl_opt(const samctl_args_t *a, const char *name)
{
    const samctl_opt_t *o = s_known(a, name);
    for (size_t i = a->ngiven; i-- > 0;)
        if (a->given[i].opt == o) return a->given[i].value ? a->given[i].value : "";
    return NULL;
}

const char *samctl_str(const samctl_args_t *a, const char *name)
{
    const char *v = samctl_opt(a, name);
    return v ? v : "";
}

bool samctl_flag(const samctl_args_t *a, const char *name)
{
    return samctl_opt(a, name) != NULL;
}

int64_t samctl_amount(const samctl_args_t *a, const char *name)
{
    const char *v = samctl_opt(a, name);
    assert(s_known(a, name)->type == SAMCTL_AMOUNT);
    int64_t ore = 0;
    char why[128];
    if (v && samctl_parse_nok(v, &ore, why, sizeof why) != 0) ore = 0; /* checked already */
    return ore;
}

uint32_t samctl_u32(const samctl_args_t *a, const char *name)
{
    const char *v = samctl_opt(a, name);
    assert(s_known(a, name)->type == SAMCTL_COUNT || s_known(a, name)->type == SAMCTL_YEAR);
    return v ? (uint32_t)strtoul(v, NULL, 10) : 0;
}

size_t samctl_opt_all(const samctl_args_t *a, const char *name, const char **out, size_t cap)
{
    const samctl_opt_t *o = s_known(a, name);
    size_t n = 0;
    for (size_t i = 0; i < a->ngiven; i++)
        if (a->given[i].opt == o) {
            if (n < cap) out[n] = a->given[i].value;
            n++;
        }
    return n;
}

/* The field of m's type named `name` with '_' for '-' and lower case, or NULL. */
static const ProtobufCFieldDescriptor *s_field(const ProtobufCMessage *m, const char *name,
                                               size_t len)
{
    char field[64];
    if (len >= sizeof field) return NULL;
    for (size_t i = 0; i < len; i++)
        field[i] = name[i] == '-' ? '_' : (char)tolower((unsigned char)name[i]);
    field[len] = '\0';
    return protobuf_c_message_descriptor_get_field_by_name(m->descriptor, field);
}

/* Sets one field from a word of the command line, when their types fit. */
static void s_set(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const samctl_opt_t *o,
                  const char *value)
{
    if (!f || f->label == PROTOBUF_C_LABEL_REPEATED || (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
        return;
    void *at = (char *)m + f->offset;
    bool number = o && (o->type == SAMCTL_COUNT || o->type == SAMCTL_YEAR);
    if (f->type == PROTOBUF_C_TYPE_STRING && !number && (!o || o->arg))
        *(const char **)at = value;
    else if (f->type == PROTOBUF_C_TYPE_UINT32 && number)
        *(uint32_t *)at = (uint32_t)strtoul(value, NULL, 10);
    else if (f->type == PROTOBUF_C_TYPE_UINT64 && number)
        *(uint64_t *)at = strtoull(value, NULL, 10);
    else if (f->type == PROTOBUF_C_TYPE_BOOL && o && !o->arg)
        *(protobuf_c_boolean *)at = 1;
}

void samctl_fill(const samctl_args_t *a, ProtobufCMessage *m)
{
    const char *w = a->cmd->args ? a->cmd->args : "";
    for (size_t i = 0; i < a->npos; i++) {
        w += strspn(w, " [");
        size_t len = strspn(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_");
        if (!len || (w[len] && !strchr(" ]", w[len]))) break;
        s_set(m, s_field(m, w, len), NULL, a->pos[i]);
        w += len + strspn(w + len, "]");
    }
    for (size_t k = 0; k < a->ngiven; k++) {
        const samctl_opt_t *o = a->given[k].opt;
        s_set(m, s_field(m, o->name, strlen(o->name)), o,
              a->given[k].value ? a->given[k].value : "");
    }
}
