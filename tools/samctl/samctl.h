/*  samctl.h — what every samctl command shares: the connection, the one argument parser and
    its tables, the output.

    ## A command
    One line in commands.def — X(table, summary) — and the table in the file of its area
    (cmd_registry.c, cmd_status.c, …): a samctl_cmd_t with the positional arguments it
    takes, its options (name, value, type, help text) and its subcommands, each a
    samctl_cmd_t of its own with a handler. samctl.c takes the global options (--broker,
    --json, --timeout-ms, --config, … — `samctl --help` lists them) out of the line wherever
    they stand, before or after the command word, and hands the rest (argv[0] the command
    word) to samctl_run() with the command's table. samctl_run() picks the subcommand, parses and
   checks every option against the table, answers --help from the same table, and only then calls
   the handler, which does its own work only.

    The rules of the line, for every command alike:
      --name VALUE, --name=VALUE, and -x VALUE for the few options with a letter;
      a value that itself starts with "--" is written --name=VALUE (a word starting with
      "--" is always an option), and "--" ends the options: every word after it is an
      argument; a global option's name is never a command's;
      options and arguments in any order; a subcommand right after its command's word;
      -h or --help anywhere: the usage, the options and their help text, exit 0.
    Exit codes: 0 done, 1 the service refused or failed (its message on stderr as it came),
    2 a usage error: "samctl <command>: <what was wrong>" and that command's usage line; a
      value of the wrong shape (a count, a year, a date, an amount) gets its one line only,
      naming the option, the value and what would be right.
    samctl checks what it must turn into numbers (counts, years, amounts) and the dates of
    queries; what goes into an event is the storing service's to judge, and its refusal,
    which names the field and the rule, is printed as it is.

    ## Output, the same for every command
    Text: a list has a header line, one line a record and its count "(N)"; an empty list
    prints only "no <things>"; a page that is not the last ends "(more: --page-token T)".
    --json: exactly one document on one line of stdout —
      a list:        {"items": [record, …], "next": TOKEN or null}  (samctl_list_t)
                     next is the --page-token that reads on; null when the list is whole
                     (commands that read every page always give null);
      one record:    an object (show ID, grants award ID, board, report, overview, …);
      a write:       {"service", "type", "id", "subject", "seq", "duplicate"} of the event
                     it published (samctl_publish).
    --csv: the same records for a spreadsheet (samctl_print): UTF-8 with BOM, ';', CRLF, a
      header row, amounts "x_ore" as "x_nok" in NOK with a decimal comma; a list's items,
      the board's rows, the overview's groups. An empty list is the BOM alone.
    Records carry the proto field names. Errors never go to stdout.

    ## Waiting
    Every call is bounded by --timeout-ms, its one resend included (samctl_request); the
    import bounds the silence of its pipeline the same way. A broker that does not answer
    is reported after --timeout-ms, not after a multiple of it.
*/
#ifndef SAMCTL_H
#define SAMCTL_H

#include "sam_client.h"
#include "sam_config.h"
#include "sam_status.h"
#include "sam_words.h"

#include "cloudevents/v1/cloudevents.pb-c.h"
#include "samordna/v1/events.pb-c.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    sam_config_t *config; /* global options */
    sam_client_t *client; /* connected to --broker (created on first samctl_client call) */
    bool json;            /* --json: machine output */
    bool csv;             /* --csv: lists and records as CSV (json is set too: CSV is made
                             from the JSON records) */
    int timeout_ms;       /* --timeout-ms for each call */
    int heartbeat_ms;     /* --broker-heartbeat-ms: with several brokers */
    const char *source;   /* --source: agency id used as CloudEvent source (default fmov) */
    sam_lang_t lang;      /* --lang: the language of the text people read (nb by default) */
} samctl_t;

/* --lang, for the printers of records (which see only the record): one language an output. */
extern sam_lang_t samctl_lang;

typedef struct samctl_args_t samctl_args_t; /* a parsed command line (below) */

/* The client, connecting on first use; NULL (message printed) when it cannot connect. */
sam_client_t *samctl_client(samctl_t *ctl);

/* A client of these brokers only (samctl status asks each broker alone), with the global
   options' keys; the caller destroys it. NULL (message printed) when it cannot connect. */
sam_client_t *samctl_client_of(samctl_t *ctl, const char *const *eps, size_t n);

/* Sets client's routing back to what the global --primary and --instance say. */
void samctl_route_default(samctl_t *ctl, sam_client_t *client);

/*  Calls service.method with req within --timeout-ms, all attempts included: with `resend`
    (reads and publishes, which are idempotent) the request is sent again, with the same id,
    when half of it has passed without an answer. Returns the status; on 200 with reply_desc,
    *reply_out is the unpacked reply (the caller frees it). res->message says why otherwise
    (res is cleared first; sam_result_clear() it). Prints nothing. */
uint32_t samctl_request(samctl_t *ctl, const char *service, const char *method,
                        const ProtobufCMessage *req, const ProtobufCMessageDescriptor *reply_desc,
                        ProtobufCMessage **reply_out, bool resend, sam_result_t *res);

/*  samctl_request() with resend, for the common case: the unpacked reply (the caller frees
    it), or NULL after printing "samctl: <service> <method>: <code> <name>: <message>" to
    stderr. */
ProtobufCMessage *samctl_call(samctl_t *ctl, const char *service, const char *method,
                              const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *reply_desc);

/* Prints one JSON document (compact, keys in insertion order) on its own line to stdout and
   releases j; the --json output of every command: a list (samctl_list_end) or one object. */
void samctl_print_json(json_t *j);

/*  The --json output of a list or a record, or under --csv the same as CSV for spreadsheets
    (samctl.c says how: BOM, ';', CRLF, NOK with a decimal comma): a list's items, a
    record's "rows" or "groups", or else the record as one row. Releases j. */
void samctl_print(samctl_t *ctl, json_t *j);

/*  Any protobuf message as a JSON object: every field under its proto name, repeated ones as
    arrays, messages as objects (null when absent), enum values as their lower-case word
    without the enum's prefix (samctl_enum_word). The caller owns the result. */
json_t *samctl_json_message(const ProtobufCMessage *m);

/*  A record as a JSON object of the fields `spec` names, in its order: "id? name roles"; a
    name with '?' is left out when empty ("", 0, false, no items, an absent message).
    Messages inside are objects of their non-empty fields; values as samctl_json_message
    gives them. spec NULL: every field, each with '?'. The caller owns the result. */
json_t *samctl_json_fields(const ProtobufCMessage *m, const char *spec);

/*  The word of an enum value, as files and JSON write it: AGENCY_KIND_COUNTY_GOVERNOR →
    "county_governor"; "" for 0 (unset), "?" for a value the descriptor does not know. Into
    out (len bytes), which is returned. */
const char *samctl_enum_word(const ProtobufCEnumDescriptor *d, int value, char *out, size_t len);

/*  A list, the same for every list command.
    Text: a header line before the first row, one row a record (the caller prints it), then
    "(N)"; a list with nothing in it prints only "no <noun>" ("no pilots").
    --json: one document, {"items": [record, …], "next": TOKEN}: next is the --page-token that
    reads on, or null when the list is whole (commands that read every page give null).
    Usage: samctl_list_begin(); for each record `if (samctl_list_row(&l, ctl->json ? json :
    NULL)) print the row;` then samctl_list_end(), or samctl_list_drop() after a failure. */
typedef struct {
    samctl_t *ctl;
    const char *noun;   /* plural, for "no …" */
    const char *header; /* the text header line, without newline */
    json_t *items;      /* --json: the records so far */
    size_t count;       /* records so far */
} samctl_list_t;

void samctl_list_begin(samctl_list_t *l, samctl_t *ctl, const char *noun, const char *header);

/*  One record. With --json takes `item` (NULL is skipped) and returns false; otherwise frees
    `item` if given, prints the header before the first row, and returns true: the caller
    prints the row. */
bool samctl_list_row(samctl_list_t *l, json_t *item);

/*  Prints the end of the list (the count, "no …", or the JSON document). `next` may be NULL
    or "": the list is whole. */
void samctl_list_end(samctl_list_t *l, const char *next);

/*  Frees a list that is not printed (a page failed; the refusal was printed). */
void samctl_list_drop(samctl_list_t *l);

/*  A read, as a row beside the command's samctl_cmd_t (.query): call service.method and
    print what it answers, the same way for every command. A list (items names the
    records): each record a row of a samctl_list_t, under a header made from the column
    table. One record (items NULL): the reply itself, as its JSON object or its text. */
typedef struct {
    const char *service, *method;
    const ProtobufCMessageDescriptor *request; /* filled from the line (samctl_query_run); NULL:
                                                  the method takes none */
    const ProtobufCMessageDescriptor *reply;   /* the reply's type */
    const char *items;   /* the reply's repeated message field that holds the records; NULL:
                            the reply is the one record */
    const char *noun;    /* for "no …" */
    const char *columns; /* the header's format: a %s conversion per column ("%-10s  %s") */
    const char *titles;  /* the columns' titles, '|' between them ("DATE|TITLE") */
    /* A record in --json; NULL: samctl_json_message. The caller owns the result. */
    json_t *(*json)(const ProtobufCMessage *rec);
    /* Prints a record as text: its row, or all of the one record; newline included. */
    void (*row)(const ProtobufCMessage *rec);
    /* Every page: the request's page_token is set from each reply's next_page_token until
       it is empty, and the list ends with "next" null. Otherwise one page, and its
       next_page_token is the list's "next". */
    bool every_page;
    uint32_t page_size; /* asked for with every_page; 0: the service's default */
    /* A message field of the record without which it is passed over; NULL: none. */
    const char *needs;
    const char *fields; /* the record in --json as samctl_json_fields(rec, fields); NULL: json */
} samctl_query_t;

/*  Runs q with req (may be NULL; its page_token is overwritten with every_page). Returns 0,
    or 1 after printing the refusal (nothing of the list is printed then). */
int samctl_list_query(samctl_t *ctl, const samctl_query_t *q, ProtobufCMessage *req);

/*  The handler of a read whose request is its command line and nothing more: the .query
    row's request filled by samctl_fill(), run with samctl_list_query(). */
int samctl_query_run(samctl_t *ctl, const samctl_args_t *a);

/*  The handler of `… history ID`: every event of the .query row's service whose subject is
    ID or starts with "ID/", oldest first, each with its seq, the day it was stored, who
    published it, its type and what it said (a correction's reason first), from the
    service's outbox (history.c). An ID no event concerns is an error (exit 1). */
int samctl_history_run(samctl_t *ctl, const samctl_args_t *a);

/*  words[value] for an enum value (a table indexed by value, NULL for a value without a
    word), or `other` when the value has none there. */
const char *samctl_pick(const char *const *words, size_t n, int value, const char *other);
#define SAMCTL_PICK(words, value, other)                                                           \
    samctl_pick(words, sizeof(words) / sizeof((words)[0]), (int)(value), other)

/* ---- publishing: the one path of every event samctl sends -------------------------------- */

/* The method every service takes events on. */
#define SAMCTL_PUBLISH_METHOD "events.publish"

/*  An event as samctl publishes it: the samordna.v1.PublishRequest `request` around a
    CloudEvent around a packed payload, with the storage they point into. It points into
    itself, so it stays where samctl_event_init() filled it; samctl_event_clear() frees. */
typedef struct {
    Samordna__V1__PublishRequest request; /* .event = &ce */
    Io__Cloudevents__V1__CloudEvent ce;
    Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue value[2];
    Io__Cloudevents__V1__CloudEvent__AttributesEntry entry[2];
    Io__Cloudevents__V1__CloudEvent__AttributesEntry *entries[2];
    uint8_t *data; /* the packed payload, owned */
    char uuid[40]; /* the id when samctl_event_init() was given none */
} samctl_event_t;

/*  Fills e: the request around e->ce, and e->ce with id (NULL: a fresh random UUID), source,
    spec 1.0, type and the packed payload as binary data; with a subject also the attributes
    datacontenttype (application/protobuf) and subject. The strings are borrowed. Returns 0,
    or -1 when out of memory (e needs no clearing then). */
int samctl_event_init(samctl_event_t *e, const char *id, const char *source, const char *type,
                      const char *subject, const ProtobufCMessage *payload);
void samctl_event_clear(samctl_event_t *e);

/*  Publishes payload to `service` as one event of `type`, from --source, with `id` (NULL: a
    fresh UUID; give one derived from what the event creates to make the command idempotent)
    and `subject` (may be NULL), and prints the outcome: text "<type after no.samordna.>
    <subject>: seq N", with " (duplicate: already stored)" when the service had it already;
    --json {"service", "type", "id", "subject" (or null), "seq", "duplicate"}. Returns 0, or 1
    after printing the refusal. */
int samctl_publish(samctl_t *ctl, const char *service, const char *type, const char *id,
                   const char *subject, const ProtobufCMessage *payload);

/* ---- commands, their options, the one parser ---------------------------------------------- */

/*  What a write command publishes: a row beside its samctl_cmd_t (.writes), so that every
    write names its service and event type in the table, and derives its subject and event
    id the same way. */
typedef struct {
    const char *service;                       /* the owner of the type */
    const char *type;                          /* the CloudEvent type */
    const ProtobufCMessageDescriptor *payload; /* its data, for samctl_write_run() */
    int subject_args; /* the subject: the first N arguments joined by '/'; 0: no subject */
    const char *id;   /* the event id "<id>/<subject>" (running it twice stores it once);
                         NULL: a fresh UUID */
} samctl_write_t;

/*  Publishes payload (samctl_publish) as the command's .writes row says. Returns 0, or 1
    after printing the refusal. */
int samctl_write(samctl_t *ctl, const samctl_args_t *a, const ProtobufCMessage *payload);

/*  The handler of a write whose payload is its command line and nothing more: a .writes
    payload filled by samctl_fill(), published with samctl_write(). */
int samctl_write_run(samctl_t *ctl, const samctl_args_t *a);

/* What an option's value must be; samctl_run() checks it before the handler runs. */
typedef enum {
    SAMCTL_TEXT,   /* anything: the service judges it */
    SAMCTL_COUNT,  /* a whole number from 0 to 4294967295 */
    SAMCTL_YEAR,   /* a year from 1 to 9999 */
    SAMCTL_DATE,   /* a calendar date YYYY-MM-DD (sam_check_date) */
    SAMCTL_AMOUNT, /* NOK as people paste it (samctl_parse_nok); samctl_amount() gives øre */
} samctl_type_t;

/*  An amount of NOK as people write and paste it, into øre: "200000", "200 000" (the spaces
    an ordinary space, U+00A0 no-break or U+202F narrow no-break, grouping thousands),
    "200 000,50" or "200000.50" (one decimal mark, at most 2 decimals), "200 000,-", with
    "kr", "kr." or "NOK" before or after. Refuses anything else — "1 5 0" (spaces that do not
    group thousands), "2,5,0", "abc", a sign, a third decimal, more than fits — with the
    reason in why ("it has more than 2 decimals", cap bytes). Returns 0 or -1. */
int samctl_parse_nok(const char *s, int64_t *ore, char *why, size_t cap);

/* What the refusal of an amount adds: what would be right. */
#define SAMCTL_AMOUNT_EXAMPLES                                                                     \
    "write NOK as e.g. 200000, \"200 000\", \"200 000,50\", 200000.50 or \"kr 200 000\""

enum {
    SAMCTL_REQUIRED = 1 << 0, /* the command does not run without it */
    SAMCTL_REPEAT = 1 << 1,   /* may be given more than once; every value is kept in order */
};

/* One option of a command: a row of its table. */
typedef struct {
    const char *name;   /* --name; NULL ends a table */
    char letter;        /* -x as well, or 0 */
    const char *arg;    /* the value's placeholder in help ("DATE"); NULL: a flag */
    samctl_type_t type; /* checked before the handler runs */
    unsigned flags;     /* SAMCTL_REQUIRED, SAMCTL_REPEAT */
    const char *help;   /* one line: what it does */
} samctl_opt_t;

typedef struct samctl_cmd_t samctl_cmd_t;

/* A command or subcommand: its words, options, handler and subcommands. */
struct samctl_cmd_t {
    const char *name; /* the word; NULL ends a table of subcommands */
    /* The positional arguments in usage, or NULL: also how many it takes ("PILOT KIND" two,
       "[PILOT]" one or none, "[WORD…]" any number; samctl_args.c). */
    const char *args;
    const char *about;        /* what it does: first line in lists, all of it in --help */
    const samctl_opt_t *opts; /* its options, or NULL */
    int (*run)(samctl_t *ctl, const samctl_args_t *a); /* NULL: a subcommand must be named */
    const samctl_cmd_t *subs;                          /* its subcommands, or NULL */
    const samctl_write_t *writes; /* what it publishes, for samctl_write(); NULL: a read */
    const samctl_query_t *query;  /* what it reads, for samctl_query_run(); or NULL */
};

#define SAMCTL_MAX_ARGS 16  /* positional arguments of one command */
#define SAMCTL_MAX_GIVEN 64 /* options given to one command */

/* A parsed command line, as the handler gets it. Strings are borrowed from argv. */
struct samctl_args_t {
    const samctl_cmd_t *cmd; /* the (sub)command that runs */
    char path[96];           /* its words: "grants add-award" */
    const char *pos[SAMCTL_MAX_ARGS];
    size_t npos;
    struct {
        const samctl_opt_t *opt;
        const char *value; /* NULL for a flag */
    } given[SAMCTL_MAX_GIVEN];
    size_t ngiven;
};

/*  Runs cmd on argv (argv[0] its word, the global options already taken out): picks the
    subcommand argv[1] names, parses the rest by the rules above, checks the options' types,
    the required ones and the number of arguments, answers --help, and calls the handler.
    Returns the handler's exit code, 0 after --help, or 2 after printing a usage error. */
int samctl_run(samctl_t *ctl, const samctl_cmd_t *cmd, int argc, char **argv);

/*  The value of option `name` (the last one given), or NULL when not given. The name must be
    in the command's table (asserted). */
const char *samctl_opt(const samctl_args_t *a, const char *name);

/*  The same, "" when not given: proto3 strings, where "" is absent. */
const char *samctl_str(const samctl_args_t *a, const char *name);

/*  True when the flag `name` was given. */
bool samctl_flag(const samctl_args_t *a, const char *name);

/*  A SAMCTL_AMOUNT option in øre (checked already); 0 when not given. */
int64_t samctl_amount(const samctl_args_t *a, const char *name);

/*  A SAMCTL_COUNT or SAMCTL_YEAR option as its number (checked already); 0 when not given. */
uint32_t samctl_u32(const samctl_args_t *a, const char *name);

/*  Fills the fields of m that the command line names: each positional argument into the
    field its usage word names ("PILOT KIND": pilot, kind; a word that is not one plain name
    ends this), and each option given into the field of its name with '_' for '-'
    ("raised-by": raised_by): a string field takes the text, a uint32 or uint64 field a
    SAMCTL_COUNT or SAMCTL_YEAR option's number, a bool field a flag's presence. Fields no
    argument names, and arguments whose field is of another type, are left alone: the handler
    sets those. The strings are borrowed from argv. */
void samctl_fill(const samctl_args_t *a, ProtobufCMessage *m);

/*  Every value of a SAMCTL_REPEAT option, in order, into out (at most cap); returns how many
    were given (may be more than cap). */
size_t samctl_opt_all(const samctl_args_t *a, const char *name, const char **out, size_t cap);

/*  Prints "samctl <path>: <message>" and the usage of a's command to stderr, as
    samctl_run() does for its own errors; returns 2. */
int samctl_usage_error(const samctl_args_t *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*  Prints "samctl <path>: <message>" alone to stderr — for a value that is wrong, where the
    message names the option, the value and what would be right; returns 2. */
int samctl_value_error(const samctl_args_t *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*  The global options (sam_config table of samctl.c), for help texts. */
extern const sam_option_t samctl_global_options[];

/* Every command's table (commands.def). */
#define X(table, summary) extern const samctl_cmd_t table;
#include "commands.def"
#undef X

#endif
