/*  cmd_describe.c — samctl describe: a service's table, as the service itself answers it.

      describe SERVICE
          calls SERVICE's built-in service.describe and prints one line per method and per
          event type: name, kind (query, event, built-in), request → reply message types,
          who may call it, whether it writes, and its size limit. The table shows message
          types without their package (samordna.v1.); --json gives the full names and every
          field as service.proto has it.

    This is what the runtime checks every request against before a handler runs
    (common/sam_service.h, "The table"); docs/api.md is the same list written for people.
*/
#include "samctl.h"

#include "samordna/v1/service.pb-c.h"

#include <stdio.h>
#include <string.h>

/* The words of MethodKind values, by value (SAMCTL_PICK). */
static const char *const s_kinds[] = {NULL, "query", "event", "built-in"};
#define s_kind(kind) SAMCTL_PICK(s_kinds, kind, "?")

/* A message type for the table: without the samordna.v1. package, "-" when there is none. */
static const char *s_short(const char *type)
{
    static const char pkg[] = "samordna.v1.";
    if (!type || !type[0]) return "-";
    return strncmp(type, pkg, sizeof pkg - 1) == 0 ? type + sizeof pkg - 1 : type;
}

static void s_roles(const Samordna__V1__MethodDescription *m, char *out, size_t cap)
{
    size_t at = 0;
    out[0] = '\0';
    for (size_t i = 0; i < m->n_roles && at < cap; i++)
        at += (size_t)snprintf(out + at, cap - at, "%s%s", i ? "," : "", m->roles[i]);
}

static json_t *s_json(const Samordna__V1__ServiceDescription *d)
{
    json_t *methods = json_array();
    for (size_t i = 0; i < d->n_methods; i++) {
        const Samordna__V1__MethodDescription *m = d->methods[i];
        json_t *roles = json_array();
        for (size_t k = 0; k < m->n_roles; k++)
            json_array_append_new(roles, json_string(m->roles[k]));
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(m->name));
        json_object_set_new(o, "kind", json_string(s_kind(m->kind)));
        json_object_set_new(o, "request", json_string(m->request));
        json_object_set_new(o, "reply", json_string(m->reply));
        json_object_set_new(o, "roles", roles);
        json_object_set_new(o, "writes", json_boolean(m->writes));
        json_object_set_new(o, "limit", json_integer((json_int_t)m->limit));
        json_array_append_new(methods, o);
    }
    json_t *j = json_object();
    json_object_set_new(j, "service", json_string(d->service));
    json_object_set_new(j, "methods", methods);
    return j;
}

static void s_table(const Samordna__V1__ServiceDescription *d)
{
    int wn = 4, wk = 4, wt = 15, wr = 5;
    char types[160], roles[96];
    for (size_t i = 0; i < d->n_methods; i++) {
        const Samordna__V1__MethodDescription *m = d->methods[i];
        int n = snprintf(types, sizeof types, "%s → %s", s_short(m->request), s_short(m->reply));
        s_roles(m, roles, sizeof roles);
        if ((int)strlen(m->name) > wn) wn = (int)strlen(m->name);
        if ((int)strlen(s_kind(m->kind)) > wk) wk = (int)strlen(s_kind(m->kind));
        if (n - 2 > wt) wt = n - 2; /* the arrow is three bytes, one column */
        if ((int)strlen(roles) > wr) wr = (int)strlen(roles);
    }
    printf("%s: %zu methods and event types\n", d->service, d->n_methods);
    printf("%-*s  %-*s  %s%*s  %-*s  %-6s  %s\n", wn, "name", wk, "kind", "request → reply",
           wt - 15, "", wr, "roles", "writes", "limit");
    for (size_t i = 0; i < d->n_methods; i++) {
        const Samordna__V1__MethodDescription *m = d->methods[i];
        int n = snprintf(types, sizeof types, "%s → %s", s_short(m->request), s_short(m->reply));
        s_roles(m, roles, sizeof roles);
        printf("%-*s  %-*s  %s%*s  %-*s  %-6s  %llu\n", wn, m->name, wk, s_kind(m->kind), types,
               wt - (n - 2), "", wr, roles, m->writes ? "yes" : "no", (unsigned long long)m->limit);
    }
}

static int s_describe(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__ServiceDescription *d = (Samordna__V1__ServiceDescription *)samctl_call(
        ctl, a->pos[0], "service.describe", NULL, &samordna__v1__service_description__descriptor);
    if (!d) return 1;
    if (ctl->json)
        samctl_print_json(s_json(d));
    else
        s_table(d);
    protobuf_c_message_free_unpacked(&d->base, NULL);
    return 0;
}

const samctl_cmd_t samctl_describe_cmd = {
    .name = "describe",
    .args = "SERVICE",
    .about = "The service's methods and event types, from its own table (service.describe):\n"
             "kind, request and reply message types, who may call it, whether it writes, its\n"
             "size limit. --json gives the full message names.",
    .run = s_describe,
};
