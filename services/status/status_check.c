/*  status_check.c — the small checks every event and query of the status service uses. */
#include "status.h"

#include "sam_check.h"

#include <string.h>

/* Ids and dates follow everyone's rules (sam_check.h); these names stay for the callers. */
bool status_date_ok(const char *s)
{
    return sam_check_is_date(s);
}

bool status_id_ok(const char *s)
{
    return sam_check_is_id(s);
}

/* A token names a kind of thing (a milestone kind, a barrier state): an id that may also
   hold '_', as the protobuf enum words it mirrors do. */
bool status_token_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > SAM_CHECK_ID_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
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
