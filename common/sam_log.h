/*  sam_log.h — one structured line per event on stderr.

    Line shape:  2026-11-25T10:00:00.123Z INFO registry event.applied type=… seq=42 req=7
    or, with --log-format json:
      {"time":"2026-11-25T10:00:00.123Z","level":"info","service":"registry",
       "event":"event.applied","type":"…","seq":42,"req":7}
    The first word after the service is the event's name; the rest are key=value pairs
    (logfmt). A value from outside — an id, a type, a reason quoting one — goes through
    sam_logv(), which quotes it and escapes `"`, `\` and every control character, so no input
    can add a field or a line. Whatever slips past that, the line itself is made safe before
    it is written: a control character or a byte of invalid UTF-8 anywhere in it is written
    as \xNN (a newline as \n), so one call is always one line.
    Under systemd with stderr going to the journal (JOURNAL_STREAM), every line starts with
    its syslog priority (<3> error … <7> debug), so journald records each line's level.
    Formatting costs nothing when the level is below the threshold: the macros test it first.
*/
#ifndef SAM_LOG_H
#define SAM_LOG_H

typedef enum { SAM_LOG_DEBUG = 0, SAM_LOG_INFO, SAM_LOG_WARN, SAM_LOG_ERROR } sam_log_level_t;

/* The process-wide threshold: the one piece of global state, like stderr itself. */
extern sam_log_level_t sam_log_threshold;

/* Names the process in every line ("broker", "registry", …) and sets the threshold. */
void sam_log_init(const char *service, sam_log_level_t threshold);

/* The line format: "logfmt" (the default, above) or "json", one object per line with the
   members time, level, service, event, then the line's key=value pairs (a whole number as a
   number, anything else as a string) and any other words as msg; a pair whose key is one of
   those members (service=, as in follow.start) becomes "_service". Returns -1 for any other
   name. Set by sam_config_parse from --log-format. */
int sam_log_format_set(const char *name);

/* Parses "debug", "info", "warn" or "error"; returns -1 for anything else. */
int sam_log_level_parse(const char *name);

/* value as a logfmt value: in double quotes, `"` and `\` escaped, controls and invalid UTF-8
   as \t \n \r \xNN, at most 200 bytes of value. The result lives in a small per-thread ring
   of buffers: good for up to eight values in one log call. */
const char *sam_logv(const char *value);

/* Writes one line; use the macros below instead. */
void sam_log_write(sam_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define sam_log(level, ...)                                                                        \
    do {                                                                                           \
        if ((level) >= sam_log_threshold) sam_log_write((level), __VA_ARGS__);                     \
    } while (0)
#define sam_debug(...) sam_log(SAM_LOG_DEBUG, __VA_ARGS__)
#define sam_info(...) sam_log(SAM_LOG_INFO, __VA_ARGS__)
#define sam_warn(...) sam_log(SAM_LOG_WARN, __VA_ARGS__)
#define sam_error(...) sam_log(SAM_LOG_ERROR, __VA_ARGS__)

#endif
