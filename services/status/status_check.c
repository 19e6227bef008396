/*  status_check.c — the small checks every event and query of the status service uses. */
#include "status.h"

#include <string.h>
#include <time.h>

bool status_date_ok(const char *s)
{
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-') return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return false;
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int m = (s[5] - '0') * 10 + (s[6] - '0');
    int d = (s[8] - '0') * 10 + (s[9] - '0');
    if (y < 1900 || y > 2999 || m < 1 || m > 12 || d < 1) return false;
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int max = days[m - 1];
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) max = 29;
    return d <= max;
}

static bool s_chars_ok(const char *s, bool underscore)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
              (underscore && c == '_')))
            return false;
    }
    return true;
}

bool status_id_ok(const char *s)
{
    return s_chars_ok(s, false);
}

bool status_token_ok(const char *s)
{
    return s_chars_ok(s, true);
}

void status_today(char out[11])
{
    sam_clock_today(out);
}

bool status_caller_admin(const Samordna__V1__Caller *caller)
{
    if (caller->insecure) return true;
    unsigned bit = sam_role_bit(caller->role);
    return (bit & STATUS_ROLES_ADMIN) != 0;
}

/* identified → raised_regionally → raised_nationally → changed | rejected | withdrawn.
   A barrier moves forward only; it may skip steps; the last three are final. */
int status_barrier_rank(const char *s)
{
    if (strcmp(s, "identified") == 0) return 0;
    if (strcmp(s, "raised_regionally") == 0) return 1;
    if (strcmp(s, "raised_nationally") == 0) return 2;
    if (strcmp(s, "changed") == 0 || strcmp(s, "rejected") == 0 || strcmp(s, "withdrawn") == 0)
        return 3;
    return -1;
}

bool status_barrier_open(const char *state)
{
    int r = status_barrier_rank(state);
    return r >= 0 && r < 3;
}
