/*  gw_messages.c — the protobuf-c descriptors this gateway was built with, by full name.

    service.describe tells the gateway, at run time, which message each row of a service takes
    and answers ("samordna.v1.Agency"); to read or write one as JSON (common/sam_pbjson.h) the
    gateway needs its compiled descriptor. protobuf-c keeps no registry of them, so this file
    makes one from the services' own tables (their .def files, every row kept for the messages
    it names). A message a service describes that this gateway was not built with (a newer
    service) is not found: its JSON is refused, its protobuf still passes.
*/
#include "gateway.h"

#include "samordna/v1/grants.pb-c.h"
#include "samordna/v1/notify.pb-c.h"
#include "samordna/v1/registry.pb-c.h"
#include "samordna/v1/status.pb-c.h"

#include <string.h>

#define Q(method, request, reply, ...) request, reply,
#define L(method, request, reply, ...)                                                             \
    request, reply, /* a long query (runs off the loop): read like Q */
#define W(method, request, reply, ...) request, reply,
#define E(type, payload, ...) payload,
static const ProtobufCMessageDescriptor *const s_messages[] = {
#include "../registry/registry.def"
#include "../status/status.def"
#include "../grants/grants.def"
#include "../notify/notify.def"
};
#undef Q
#undef L
#undef W
#undef E

const ProtobufCMessageDescriptor *gw_message(const char *full_name)
{
    if (!full_name || !*full_name) return NULL;
    for (size_t i = 0; i < sizeof s_messages / sizeof s_messages[0]; i++)
        if (s_messages[i] && strcmp(s_messages[i]->name, full_name) == 0) return s_messages[i];
    return NULL;
}
