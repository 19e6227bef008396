/*  cmd_keys.c — samctl's key commands: CURVE certificates for the broker and its callers.

      keys new --agency A --role R [--service S]... [--out DIR] [--name NAME]
          writes DIR/NAME.cert (public, with agency and role in its metadata, and for a
          service certificate the services it may offer: --service, at least one) and
          DIR/NAME.cert_secret (both keys, mode 0600); NAME defaults to A-R. The public file
          goes into the broker's --curve-dir; the secret one stays with its holder (--cert).
      keys new --role broker [--agency A] [--out DIR]
          the broker's own pair (its --cert); callers pin its public key with --server-key.
      keys show FILE
          the public key, agency and role of a certificate.

    Nothing here talks to the network: keys are made where they are used and only public
    halves are copied.
*/
#include "samctl.h"
#include "sam_keys.h"

#include <czmq.h>
#include <stdio.h>
#include <string.h>

static int s_keys_new(samctl_t *ctl, const samctl_args_t *a)
{
    const char *agency = samctl_opt(a, "agency"), *role = samctl_opt(a, "role");
    const char *out = samctl_opt(a, "out") ? samctl_opt(a, "out") : ".";
    const char *name = samctl_opt(a, "name");
    if (role && strcmp(role, "broker") == 0 && !agency) agency = "broker";
    if (!agency || !role) return samctl_usage_error(a, "--agency and --role are required");
    char fallback[160];
    if (!name) {
        snprintf(fallback, sizeof fallback, "%s-%s", agency, role);
        name = strcmp(role, "broker") == 0 ? "broker" : fallback;
    }
    char services[1024] = "";
    const char *named[32];
    size_t nnamed = samctl_opt_all(a, "service", named, 32);
    for (size_t i = 0; i < nnamed && i < 32; i++) {
        size_t n = strlen(services);
        snprintf(services + n, sizeof services - n, "%s%s", n ? "," : "", named[i]);
    }
    char err[512], key[SAM_KEY_Z85_LEN + 1];
    if (sam_keys_new(out, name, agency, role, services, key, err, sizeof err) != 0) {
        fprintf(stderr, "samctl keys new: %s\n", err);
        return 1;
    }
    if (ctl->json) {
        char pub[1024], sec[1024];
        snprintf(pub, sizeof pub, "%s/%s.cert", out, name);
        snprintf(sec, sizeof sec, "%s/%s.cert_secret", out, name);
        samctl_print_json(json_pack("{s:s, s:s, s:s, s:s, s:s}", "public_key", key, "agency",
                                    agency, "role", role, "public", pub, "secret", sec));
    } else
        printf("%s/%s.cert and %s/%s.cert_secret: agency %s, role %s, public key %s\n", out, name,
               out, name, agency, role, key);
    return 0;
}

static int s_keys_show(samctl_t *ctl, const samctl_args_t *a)
{
    const char *file = a->pos[0];
    zcert_t *cert = zsys_file_exists(file) ? zcert_load(file) : NULL;
    if (!cert) {
        fprintf(stderr, "samctl keys show: cannot read certificate %s\n", file);
        return 1;
    }
    const char *agency = zcert_meta(cert, "agency"), *role = zcert_meta(cert, "role");
    const char *services = zcert_meta(cert, "services");
    if (ctl->json)
        samctl_print_json(json_pack("{s:s, s:s, s:s, s:s}", "public_key", zcert_public_txt(cert),
                                    "agency", agency ? agency : "", "role", role ? role : "",
                                    "services", services ? services : ""));
    else
        printf("public key %s, agency %s, role %s%s%s\n", zcert_public_txt(cert),
               agency ? agency : "-", role ? role : "-", services ? ", services " : "",
               services ? services : "");
    zcert_destroy(&cert);
    return 0;
}

static const samctl_opt_t s_new_opts[] = {
    {"agency", 0, "AGENCY", SAMCTL_TEXT, 0,
     "the agency the key speaks for (its id; default for --role broker: broker)"},
    {"role", 0, "ROLE", SAMCTL_TEXT, SAMCTL_REQUIRED,
     "admin, publisher, reader, service, gateway (an HTTP gateway that may present the "
     "callers it verified) or broker"},
    {"service", 0, "NAME", SAMCTL_TEXT, SAMCTL_REPEAT,
     "a service the certificate may offer (role service only, at least one; repeat for more)"},
    {"out", 0, "DIR", SAMCTL_TEXT, 0, "where the two files go (default: here)"},
    {"name", 0, "NAME", SAMCTL_TEXT, 0, "the files' name (default AGENCY-ROLE, or broker)"},
    {NULL},
};

static const samctl_cmd_t s_keys_subs[] = {
    {.name = "new",
     .about =
         "Makes a certificate pair for an agency and a role (a service certificate also names\n"
         "the services it may offer: the broker refuses it for any other).\n"
         "Writes DIR/NAME.cert (public, with agency and role in its metadata) and\n"
         "DIR/NAME.cert_secret (both keys, mode 0600). The public file goes into the broker's\n"
         "--curve-dir; the secret one stays with its holder (--cert). --role broker makes the\n"
         "broker's own pair, whose public key callers pin with --server-key.",
     .opts = s_new_opts,
     .run = s_keys_new},
    {.name = "show",
     .args = "FILE",
     .about = "The public key, agency and role of a certificate.",
     .run = s_keys_show},
    {NULL},
};

const samctl_cmd_t samctl_keys_cmd = {
    .name = "keys",
    .about =
        "CURVE certificates for the broker and its callers. Nothing here talks to the network:\n"
        "keys are made where they are used and only public halves are copied.",
    .subs = s_keys_subs,
};
