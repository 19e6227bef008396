/*  sam_catalog.c — see sam_catalog.h. Each .def is read with only its E rows kept; their
    other columns (roles, limits, the handlers' names) are dropped unread, so nothing of a
    service is linked here but its messages' descriptors. Every other kind of row
    (sam_service_rows.h: Q, W, and L for the queries run off the loop) expands to nothing:
    a new kind of row must be named here too. */
#include "sam_catalog.h"

#include "samordna/v1/grants.pb-c.h"
#include "samordna/v1/notify.pb-c.h"
#include "samordna/v1/registry.pb-c.h"
#include "samordna/v1/status.pb-c.h"

#include <string.h>

#define Q(...)
#define W(...)
#define L(...)
static const sam_catalog_event_t s_events[] = {
#define E(t, p, ...) {t, "registry", p},
#include "../services/registry/registry.def"
#undef E
#define E(t, p, ...) {t, "status", p},
#include "../services/status/status.def"
#undef E
#define E(t, p, ...) {t, "grants", p},
#include "../services/grants/grants.def"
#undef E
#define E(t, p, ...) {t, "notify", p},
#include "../services/notify/notify.def"
#undef E
    /* issued by notify itself (notify_briefing.c), never published by a client */
    {"no.samordna.notify.briefing.issued", "notify", &samordna__v1__briefing__descriptor},
    {"no.samordna.notify.reminder.due", "notify", &samordna__v1__reminder__descriptor},
};
#undef Q
#undef W
#undef L
#define S_N (sizeof s_events / sizeof s_events[0])

const sam_catalog_event_t *sam_catalog_event(const char *type)
{
    for (size_t i = 0; type && i < S_N; i++)
        if (strcmp(s_events[i].type, type) == 0) return &s_events[i];
    return NULL;
}

const sam_catalog_event_t *sam_catalog_events(size_t *n)
{
    *n = S_N;
    return s_events;
}
