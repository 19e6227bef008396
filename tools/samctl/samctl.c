/*  samctl — the command-line client of samordna.

    samctl [global options] COMMAND [command options and arguments]

    Global options come before the command word; everything after it belongs to the command.
    Commands are listed in commands.def; `samctl --help` prints them.
*/
#include "samctl.h"
#include "sam_log.h"

#include "samordna/v1/envelope.pb-c.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    samctl_cmd_fn fn;
    const char *summary;
} s_command_t;

static const s_command_t s_commands[] = {
#define X(name, fn, summary) {name, fn, summary},
#include "commands.def"
#undef X
};

static const sam_option_t s_options[] = {
    {"broker", "ENDPOINT", "tcp://127.0.0.1:5555", "broker to connect to", true},
    {"json", NULL, NULL, "print JSON instead of tables", false},
    {"timeout-ms", "MS", "5000", "how long to wait for each reply", false},
    {"source", "AGENCY", "fmov", "agency id to publish events as", false},
    {"insecure", NULL, NULL, "connect without CURVE (loopback brokers run with --insecure)", false},
    {"cert", "FILE", NULL, "connect with CURVE as this secret certificate (samctl keys new)",
     false},
    {"server-key", "KEY|FILE", NULL, "the broker's public key (Z85 text or its certificate file)",
     false},
    {NULL, NULL, NULL, NULL, false},
};

sam_client_t *samctl_client(samctl_t *ctl)
{
    if (ctl->client) return ctl->client;
    size_t n = sam_config_count(ctl->config, "broker");
    const char *eps[16];
    if (n > 16) n = 16;
    for (size_t i = 0; i < n; i++)
        eps[i] = sam_config_nth(ctl->config, "broker", i);
    char err[256] = "";
    sam_client_opts_t opts = {0};
    if (!sam_config_flag(ctl->config, "insecure")) {
        opts.client_cert = sam_config_get(ctl->config, "cert");
        opts.server_key = sam_config_get(ctl->config, "server-key");
    }
    ctl->client = sam_client_new(eps, n, &opts, err, sizeof err);
    if (!ctl->client) fprintf(stderr, "samctl: cannot connect: %s\n", err);
    return ctl->client;
}

int samctl_event_init(samctl_event_t *e, const char *id, const char *source, const char *type,
                      const char *subject, const ProtobufCMessage *payload)
{
    memset(e, 0, sizeof *e);
    size_t len = protobuf_c_message_get_packed_size(payload);
    if (!(e->data = malloc(len ? len : 1))) return -1;
    protobuf_c_message_pack(payload, e->data);
    io__cloudevents__v1__cloud_event__init(&e->ce);
    e->ce.id = (char *)id;
    e->ce.source = (char *)source;
    e->ce.spec_version = "1.0";
    e->ce.type = (char *)type;
    e->ce.data_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_BINARY_DATA;
    e->ce.binary_data.data = e->data;
    e->ce.binary_data.len = len;
    if (!subject) return 0;
    static const char *const keys[2] = {"datacontenttype", "subject"};
    const char *values[2] = {"application/protobuf", subject};
    for (int i = 0; i < 2; i++) {
        io__cloudevents__v1__cloud_event__cloud_event_attribute_value__init(&e->value[i]);
        e->value[i].attr_case =
            IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_STRING;
        e->value[i].ce_string = (char *)values[i];
        io__cloudevents__v1__cloud_event__attributes_entry__init(&e->entry[i]);
        e->entry[i].key = (char *)keys[i];
        e->entry[i].value = &e->value[i];
        e->entries[i] = &e->entry[i];
    }
    e->ce.n_attributes = 2;
    e->ce.attributes = e->entries;
    return 0;
}

void samctl_event_clear(samctl_event_t *e)
{
    free(e->data);
    e->data = NULL;
}

uint32_t samctl_request(samctl_t *ctl, const char *service, const char *method,
                        const ProtobufCMessage *req, const ProtobufCMessageDescriptor *reply_desc,
                        ProtobufCMessage **reply_out, bool resend, sam_result_t *res)
{
    if (reply_out) *reply_out = NULL;
    memset(res, 0, sizeof *res);
    sam_client_t *client = samctl_client(ctl);
    if (!client) {
        res->code = SAM_UNAVAILABLE;
        snprintf(res->message, sizeof res->message, "cannot connect to the broker");
        return res->code;
    }
    /* sam_client_call waits its timeout once per attempt: two halves make one --timeout-ms.
       The second attempt reuses the request id, so a late answer to the first still counts. */
    int total = ctl->timeout_ms > 0 ? ctl->timeout_ms : 1;
    int each = resend && total >= 2 ? total / 2 : total;
    uint32_t code =
        sam_client_call(client, service, method, req, reply_desc, reply_out, each, resend, res);
    if (code == SAM_TIMEOUT) {
        const char *broker = ctl->config ? sam_config_get(ctl->config, "broker") : NULL;
        snprintf(res->message, sizeof res->message,
                 "no reply from '%s' within %d ms (is the broker running at %s, with a '%s' "
                 "service attached?)",
                 service, total, broker ? broker : "the --broker endpoint", service);
    } else if (code == SAM_UNAVAILABLE && strncmp(res->message, "cannot send", 11) == 0)
        snprintf(res->message, sizeof res->message,
                 "cannot send to the broker within %d ms (is it running, and does it accept this "
                 "certificate?)",
                 total);
    return code;
}

ProtobufCMessage *samctl_call(samctl_t *ctl, const char *service, const char *method,
                              const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *reply_desc)
{
    sam_result_t res = {0};
    ProtobufCMessage *out = NULL;
    uint32_t code = samctl_request(ctl, service, method, req, reply_desc, &out, true, &res);
    if (code != SAM_OK) {
        fprintf(stderr, "samctl: %s %s: %u %s: %s\n", service, method, code, sam_status_name(code),
                res.message);
        out = NULL;
    }
    sam_result_clear(&res);
    return out;
}

void samctl_print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    printf("%s\n", s ? s : "null");
    free(s);
    json_decref(j);
}

int samctl_usage(const char *cmd, const char *usage, const char *message)
{
    if (message) fprintf(stderr, "samctl %s: %s\n", cmd, message);
    fprintf(stderr, "usage: samctl %s\n", usage);
    return 2;
}

/* ping SERVICE [-n COUNT] → one line per reply with the round trip. */
int samctl_cmd_ping(samctl_t *ctl, int argc, char **argv)
{
    const char *usage = "ping SERVICE [-n COUNT]";
    int count = 1;
    const char *service = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            count = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !service)
            service = argv[i];
        else
            return samctl_usage("ping", usage, "unexpected argument");
    }
    if (!service || count < 1) return samctl_usage("ping", usage, "name a service");
    int failed = 0;
    for (int i = 0; i < count; i++) {
        int64_t t0 = zclock_usecs();
        Samordna__V1__PingReply *rep = (Samordna__V1__PingReply *)samctl_call(
            ctl, service, "ping", NULL, &samordna__v1__ping_reply__descriptor);
        if (!rep) {
            failed++;
            continue;
        }
        double ms = (double)(zclock_usecs() - t0) / 1000.0;
        if (ctl->json)
            printf(
                "{\"service\":\"%s\",\"instance\":\"%s\",\"version\":\"%s\",\"last_seq\":%" PRIu64
                ",\"ms\":%.3f}\n",
                rep->service, rep->instance, rep->version, rep->last_seq, ms);
        else
            printf("%s (%s, version %s): %.3f ms\n", rep->service, rep->instance, rep->version, ms);
        protobuf_c_message_free_unpacked(&rep->base, NULL);
    }
    return failed ? 1 : 0;
}

static void s_help(sam_config_t *config)
{
    sam_config_help(config, stdout);
    printf("\nCommands:\n");
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        printf("  %-14s %s\n", s_commands[i].name, s_commands[i].summary);
}

int main(int argc, char **argv)
{
    /* Global options end at the first word that is not an option or an option's value. */
    int cmd_at = argc;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] != '-') {
            cmd_at = i;
            break;
        }
        const char *o = argv[i] + 2;
        if (!strchr(o, '=') &&
            (strcmp(o, "broker") == 0 || strcmp(o, "timeout-ms") == 0 || strcmp(o, "source") == 0 ||
             strcmp(o, "config") == 0 || strcmp(o, "log-level") == 0 || strcmp(o, "cert") == 0 ||
             strcmp(o, "server-key") == 0))
            i++;
    }
    samctl_t ctl = {0};
    ctl.config = sam_config_new("samctl", "[options] COMMAND [arguments]",
                                "The command-line client of samordna.", s_options);
    if (!ctl.config) return 1;
    int rc = sam_config_parse(ctl.config, cmd_at, argv);
    if (rc != 0 || cmd_at == argc) {
        if (rc == 1 && sam_config_flag(ctl.config, "help")) {
            printf("\nCommands:\n");
            for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
                printf("  %-14s %s\n", s_commands[i].name, s_commands[i].summary);
        } else if (rc == 0) {
            s_help(ctl.config);
            rc = 2;
        }
        sam_config_destroy(&ctl.config);
        return rc == 1 ? 0 : 2;
    }
    bool ok = true;
    ctl.json = sam_config_flag(ctl.config, "json");
    ctl.timeout_ms = (int)sam_config_int(ctl.config, "timeout-ms", 1, 3600000, &ok);
    ctl.source = sam_config_get(ctl.config, "source");
    sam_log_init("samctl", SAM_LOG_WARN);
    rc = 2;
    const s_command_t *cmd = NULL;
    for (size_t i = 0; ok && i < sizeof s_commands / sizeof s_commands[0]; i++)
        if (strcmp(s_commands[i].name, argv[cmd_at]) == 0) cmd = &s_commands[i];
    if (!ok)
        rc = 2;
    else if (!cmd)
        fprintf(stderr, "samctl: unknown command '%s' (try samctl --help)\n", argv[cmd_at]);
    else
        rc = cmd->fn(&ctl, argc - cmd_at, argv + cmd_at);
    sam_client_destroy(&ctl.client);
    sam_config_destroy(&ctl.config);
    return rc;
}
