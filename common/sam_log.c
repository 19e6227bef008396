/*  sam_log.c — see sam_log.h. One write(2) per line so lines from several processes sharing
    a terminal or journal never interleave mid-line. */
#include "sam_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

sam_log_level_t sam_log_threshold = SAM_LOG_INFO;
static char s_service[32] = "samordna";

void sam_log_init(const char *service, sam_log_level_t threshold)
{
    snprintf(s_service, sizeof s_service, "%s", service ? service : "samordna");
    sam_log_threshold = threshold;
}

int sam_log_level_parse(const char *name)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; name && i < 4; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

void sam_log_write(sam_log_level_t level, const char *fmt, ...)
{
    static const char *labels[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    char line[2048];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03dZ %s %s ", (int)(tv.tv_usec / 1000),
                  labels[level], s_service);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) m = 0;
    n += m;
    if (n > (int)sizeof line - 2) n = (int)sizeof line - 2; /* truncated, still one line */
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
