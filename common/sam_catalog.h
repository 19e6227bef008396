/*  sam_catalog.h — every event type samordna knows, with its payload's message type.

    The rows come from the services' own tables (services/<service>/<service>.def, their E
    lines), read here at build time, and from the types a service issues itself rather than
    taking them from clients (notify's briefing and reminder): so a new event type in a .def
    is in the catalog without a line anywhere else. Consumers of events that are not the
    owning service — notify writing a webhook's JSON, a gateway, the fuzz targets — use it to
    know what a payload is.
*/
#ifndef SAM_CATALOG_H
#define SAM_CATALOG_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

typedef struct {
    const char *type;                          /* "no.samordna.grants.award.granted" */
    const char *service;                       /* the owning service: "grants" */
    const ProtobufCMessageDescriptor *payload; /* the message of binary_data */
} sam_catalog_event_t;

/* The row of event type `type`, or NULL when samordna has no such type. Static memory. */
const sam_catalog_event_t *sam_catalog_event(const char *type);

/* Every row, *n of them, in the order of the tables (registry, status, grants, notify).
   Static memory. */
const sam_catalog_event_t *sam_catalog_events(size_t *n);

#endif
