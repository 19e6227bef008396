/*  gw_read_selftest — the read side's tables and its OpenAPI document, without a broker.

    The short routes are written by hand beside the compiled service tables, so a method
    renamed in a .def, a field renamed in a .proto or a mistyped pattern would make a route
    quietly answer 404 (and leave the document). Checked here: every short route names a
    query of the tables, its {segment} and its alias fill fields of that query's request,
    its pattern has at most one {segment}, no two routes have one pattern; every query is
    in the document at /v1/<service>/<method> and every short route at its pattern, each
    with a 200 whose schema is the reply's; the schemas follow the proto3 JSON mapping
    (int64 a string, an enum its names).
*/
#include "gw_read.h"
#include "sam_testkit.h"

#include <stdio.h>
#include <string.h>

#define CHECK SAM_CHECK /* sam_testkit.h */

/* The field `name` (.proto name) of d, or NULL. */
static const ProtobufCFieldDescriptor *s_field(const ProtobufCMessageDescriptor *d,
                                               const char *name)
{
    return d ? protobuf_c_message_descriptor_get_field_by_name(d, name) : NULL;
}

static void s_check_routes(void)
{
    CHECK(gw_read_n_queries >= 40 && gw_read_n_routes >= 30);
    for (size_t i = 0; i < gw_read_n_routes; i++) {
        const gw_read_route_t *r = &gw_read_routes[i];
        const gw_read_query_t *q = gw_read_query_find(NULL, r->method);
        if (!SAM_CHECK(q != NULL)) {
            fprintf(stderr, "  route %s names no query %s\n", r->pattern, r->method);
            continue;
        }
        const char *open = strchr(r->pattern, '{');
        CHECK(strncmp(r->pattern, "/v1/", 4) == 0);
        CHECK((open != NULL) == (r->path_field != NULL));
        if (open) {
            CHECK(strchr(open + 1, '{') == NULL && strchr(open, '}') != NULL);
            if (!SAM_CHECK(s_field(q->request, r->path_field) != NULL))
                fprintf(stderr, "  route %s: no field %s\n", r->pattern, r->path_field);
        }
        CHECK((r->alias != NULL) == (r->alias_field != NULL));
        if (r->alias) CHECK(s_field(q->request, r->alias_field) != NULL);
        CHECK(r->summary && r->summary[0]);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(gw_read_routes[j].pattern, r->pattern) != 0);
    }
    /* the queries: one service and method each, the reading built-ins of every service */
    CHECK(gw_read_query_find("grants", "ping") != NULL);
    CHECK(gw_read_query_find("registry", "service.describe") != NULL);
    CHECK(gw_read_query_find("registry", "store.backup") == NULL);
    CHECK(gw_read_query_find("status", "events.publish") == NULL);
    CHECK(gw_read_query_find("notify", "notify.inbox.ack") == NULL);
    CHECK(gw_read_query_find("registry", "status.board") == NULL);
    for (size_t i = 0; i < gw_read_n_queries; i++)
        CHECK(gw_read_queries[i].reply != NULL);
}

/* paths[path].get.responses.200's schema reference. */
static const char *s_ok_ref(json_t *doc, const char *path)
{
    json_t *get = json_object_get(json_object_get(json_object_get(doc, "paths"), path), "get");
    json_t *ok = json_object_get(json_object_get(get, "responses"), "200");
    json_t *schema = json_object_get(
        json_object_get(json_object_get(ok, "content"), "application/json"), "schema");
    return json_string_value(json_object_get(schema, "$ref"));
}

static void s_check_document(void)
{
    json_t *doc = gw_openapi_document();
    if (!SAM_CHECK(doc != NULL)) return;
    CHECK(strcmp(json_string_value(json_object_get(doc, "openapi")), "3.1.0") == 0);
    char path[200], want[200];
    for (size_t i = 0; i < gw_read_n_queries; i++) {
        const gw_read_query_t *q = &gw_read_queries[i];
        snprintf(path, sizeof path, "/v1/%s/%s", q->service, q->method);
        snprintf(want, sizeof want, "#/components/schemas/%s", q->reply->name);
        const char *ref = s_ok_ref(doc, path);
        if (!SAM_CHECK(ref && strcmp(ref, want) == 0)) fprintf(stderr, "  %s: %s\n", path, ref);
    }
    for (size_t i = 0; i < gw_read_n_routes; i++)
        CHECK(s_ok_ref(doc, gw_read_routes[i].pattern) != NULL);
    json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    json_t *group =
        json_object_get(json_object_get(schemas, "samordna.v1.OverviewGroup"), "properties");
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(group, "committedOre"), "type")),
                 "string") == 0);
    json_t *kinds = json_object_get(json_object_get(schemas, "samordna.v1.AgencyKind"), "enum");
    CHECK(json_array_size(kinds) >= 2);
    CHECK(json_object_get(schemas, "Problem") != NULL);
    json_t *post =
        json_object_get(json_object_get(json_object_get(doc, "paths"), "/v1/events"), "post");
    json_t *content = json_object_get(json_object_get(post, "requestBody"), "content");
    CHECK(json_object_get(content, "application/cloudevents+json") != NULL);
    CHECK(json_object_get(content, "application/cloudevents-batch+json") != NULL);
    CHECK(json_object_get(content, "application/json") != NULL);
    /* made once: the same document again */
    json_t *again = gw_openapi_document();
    CHECK(again == doc);
    json_decref(again);
    json_decref(doc);
}

int main(void)
{
    s_check_routes();
    s_check_document();
    return sam_testkit_done("gw_read_selftest");
}
