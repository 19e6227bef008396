/*  sam_log.c — see sam_log.h. One write(2) per line so lines from several processes sharing
    a terminal or journal never interleave mid-line. */
#include "sam_log.h"
#include "sam_check.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

sam_log_level_t sam_log_threshold = SAM_LOG_INFO;
static char s_service[32] = "samordna";
static bool s_json; /* --log-format json */

int sam_log_format_set(const char *name)
{
    if (name && strcmp(name, "logfmt") == 0)
        s_json = false;
    else if (name && strcmp(name, "json") == 0)
        s_json = true;
    else
        return -1;
    return 0;
}

/* stderr is the journal (systemd sets JOURNAL_STREAM to its device:inode): each line then
   starts with its syslog priority, <3> error to <7> debug, which journald takes as the
   line's level and strips. */
static bool s_journal;

static bool s_stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    return js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
           (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void sam_log_init(const char *service, sam_log_level_t threshold)
{
    snprintf(s_service, sizeof s_service, "%s", service ? service : "samordna");
    sam_log_threshold = threshold;
    s_journal = s_stderr_is_journal();
}

int sam_log_level_parse(const char *name)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; name && i < 4; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

/* Copies msg into out (cap bytes) with every control character and invalid UTF-8 byte
   escaped; quotes and backslashes stay as the format wrote them. Returns the length. */
static int s_safe(const char *msg, char *out, size_t cap)
{
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)msg;
    for (size_t i = 0; s[i] && o + 5 < cap;) {
        unsigned c = s[i];
        char one[2] = {(char)c, 0};
        char esc[16];
        if (c < 0x80 && c >= 0x20 && c != 0x7f) {
            out[o++] = (char)c;
            i++;
            continue;
        }
        /* a run that sam_check_escape leaves as it is (valid UTF-8 outside controls) */
        size_t l = 1;
        while (l < 4 && (s[i + l] & 0xc0) == 0x80)
            l++;
        char buf[8];
        memcpy(buf, s + i, l);
        buf[l] = 0;
        if (c >= 0x80 && sam_check_text_why(buf, l) == NULL) {
            memcpy(out + o, buf, l);
            o += l;
            i += l;
            continue;
        }
        sam_check_escape(one, 1, esc, sizeof esc); /* \n, \t, \xNN */
        size_t el = strlen(esc);
        if (o + el >= cap) break;
        memcpy(out + o, esc, el);
        o += el;
        i++;
    }
    out[o] = 0;
    return (int)o;
}

/* Appends text to out as the inside of a JSON string ("" and \\ escaped; s_safe already
   made every other byte printable). */
static size_t s_json_str(char *out, size_t o, size_t cap, const char *text, size_t len)
{
    for (size_t i = 0; i < len && o + 3 < cap; i++) {
        if (text[i] == '"' || text[i] == '\\') out[o++] = '\\';
        out[o++] = text[i];
    }
    return o;
}

/* Whether the key k (klen bytes) names one of the members every JSON line starts with (or
   msg): such a pair, e.g. follow.start's service=registry, is written as "_service", so that
   no object has a member twice. */
static bool s_fixed_member(const char *k, size_t klen)
{
    static const char *fixed[] = {"time", "level", "service", "event", "msg"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (strlen(fixed[i]) == klen && memcmp(fixed[i], k, klen) == 0) return true;
    return false;
}

/*  The logfmt message `event k=v k="quoted \"v\""` as JSON members after the fixed ones:
    "event":"event","k":"v",… A quoted value is unquoted (its \" and \\ undone; other escapes
    such as \n stay as the text shows them); a whole number stays a number; words without
    `=` are gathered into "msg". */
static size_t s_json_fields(char *out, size_t o, size_t cap, const char *msg)
{
    char words[1024];
    size_t nw = 0;
    const char *p = msg;
    bool first = true;
    while (*p && o + 8 < cap) {
        while (*p == ' ')
            p++;
        if (!*p) break;
        const char *k = p;
        while (*p && *p != ' ' && *p != '=')
            p++;
        if (*p != '=' || p == k) { /* a plain word: the event name first, else text */
            while (*p && *p != ' ')
                p++;
            if (first) {
                o += (size_t)snprintf(out + o, cap - o, ",\"event\":\"");
                o = s_json_str(out, o, cap, k, (size_t)(p - k));
                out[o++] = '"';
            } else if (nw + (size_t)(p - k) + 2 < sizeof words) {
                if (nw) words[nw++] = ' ';
                memcpy(words + nw, k, (size_t)(p - k));
                nw += (size_t)(p - k);
            }
            first = false;
            continue;
        }
        first = false;
        size_t klen = (size_t)(p - k);
        p++; /* '=' */
        o += (size_t)snprintf(out + o, cap - o, ",\"%s", s_fixed_member(k, klen) ? "_" : "");
        o = s_json_str(out, o, cap, k, klen);
        o += (size_t)snprintf(out + o, cap - o, "\":");
        if (*p == '"') {
            out[o++] = '"';
            for (p++; *p && *p != '"' && o + 4 < cap; p++) {
                if (*p == '\\' && (p[1] == '"' || p[1] == '\\')) p++;
                o = s_json_str(out, o, cap, p, 1);
            }
            if (*p == '"') p++;
            out[o++] = '"';
            continue;
        }
        const char *v = p;
        while (*p && *p != ' ')
            p++;
        size_t vlen = (size_t)(p - v);
        bool number = vlen > 0 && vlen < 19;
        for (size_t i = 0; number && i < vlen; i++)
            number = (v[i] >= '0' && v[i] <= '9') || (i == 0 && v[i] == '-' && vlen > 1);
        if (number && !(vlen > 1 && v[0] == '0')) {
            memcpy(out + o, v, vlen);
            o += vlen;
        } else {
            out[o++] = '"';
            o = s_json_str(out, o, cap, v, vlen);
            out[o++] = '"';
        }
    }
    if (nw && o + 12 < cap) {
        o += (size_t)snprintf(out + o, cap - o, ",\"msg\":\"");
        o = s_json_str(out, o, cap, words, nw);
        out[o++] = '"';
    }
    return o;
}

void sam_log_write(sam_log_level_t level, const char *fmt, ...)
{
    static const char *labels[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    static const char *priorities[] = {"<7>", "<6>", "<4>", "<3>"};
    char line[2048];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    static const char *lower[] = {"debug", "info", "warn", "error"};
    int n = s_journal ? snprintf(line, sizeof line, "%s", priorities[level]) : 0;
    char when[40];
    size_t wl = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + wl, sizeof when - wl, ".%03dZ", (int)(tv.tv_usec / 1000));
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (m < 0) msg[0] = 0;
    if (s_json) {
        char safe[1536];
        s_safe(msg, safe, sizeof safe);
        n += snprintf(line + n, sizeof line - (size_t)n,
                      "{\"time\":\"%s\",\"level\":\"%s\",\"service\":\"%s\"", when, lower[level],
                      s_service);
        n = (int)s_json_fields(line, (size_t)n, sizeof line - 2, safe);
        line[n++] = '}';
    } else {
        n += snprintf(line + n, sizeof line - (size_t)n, "%s %s %s ", when, labels[level],
                      s_service);
        n += s_safe(msg, line + n, sizeof line - (size_t)n - 1);
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

const char *sam_logv(const char *value)
{
    static __thread char ring[8][420];
    static __thread unsigned next;
    char *out = ring[next++ % 8];
    out[0] = '"';
    sam_check_escape(value ? value : "", 200, out + 1, sizeof ring[0] - 2);
    size_t len = strlen(out);
    out[len] = '"';
    out[len + 1] = 0;
    return out;
}
