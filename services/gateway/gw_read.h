/*  gw_read.h — the gateway's read side: every query of every service as GET, and the
    OpenAPI 3.1 document that describes them (gw_read.c, gw_openapi.c; docs/gateway.md,
    "Reading").

    The queries are the services' own tables, compiled in: the Q rows of each
    services/<service>/<service>.def and the reading built-ins of common/sam_builtin.def, so
    a query added to a .def is readable, and in the document, the moment the gateway is
    rebuilt. Two kinds of route reach them:

      GET /v1/<service>/<method>        every query, "/v1/status/status.board"
      GET /v1/board, /v1/pilots/{id}…   the short routes of gw_read_routes[]

    Query parameters fill the request message's fields by name (the proto3 JSON name or the
    .proto name), a short route's path segment the field its row names.
*/
#ifndef GW_READ_H
#define GW_READ_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

/* One query of one service, as its table row says. */
typedef struct {
    const char *service;                       /* "registry" */
    const char *method;                        /* "registry.pilots.get" */
    const ProtobufCMessageDescriptor *request; /* NULL: the method takes no message */
    const ProtobufCMessageDescriptor *reply;
} gw_read_query_t;

/* One short route. */
typedef struct {
    const char *pattern;     /* "/v1/pilots/{id}": literal segments and at most one {name} */
    const char *method;      /* the query it reads, "registry.pilots.get" */
    const char *path_field;  /* the request field the {name} segment fills, or NULL */
    const char *alias;       /* a parameter name of this route alone ("open"), or NULL */
    const char *alias_field; /* the field that alias fills ("open_only") */
    const char *summary;     /* one line for the OpenAPI document */
} gw_read_route_t;

extern const gw_read_query_t gw_read_queries[];
extern const size_t gw_read_n_queries;
extern const gw_read_route_t gw_read_routes[];
extern const size_t gw_read_n_routes;

/* The query `method` of `service` (NULL: of any service, the first), or NULL. */
const gw_read_query_t *gw_read_query_find(const char *service, const char *method);

/* True when field f of a request is the page token a reply's next_page_token continues. */
bool gw_read_is_page_token(const ProtobufCFieldDescriptor *f);

/*  The repeated message field f as a proto3 map (map<K, V> compiles to a repeated
    "…Entry" message of fields key = 1 and value = 2): its value field, else NULL. */
const ProtobufCFieldDescriptor *gw_map_value(const ProtobufCFieldDescriptor *f);

/*  The OpenAPI 3.1 document of the gateway: every route of gw_read_routes[] and every
    generic /v1/<service>/<method> path, POST /v1/events, a schema per message and enum
    reached from them by the proto3 JSON mapping, and the problem details schema. A new
    reference the caller releases, or NULL when out of memory. */
json_t *gw_openapi_document(void);

#endif
