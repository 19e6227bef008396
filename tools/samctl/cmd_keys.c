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

static const char *s_usage = "keys new --agency A --role admin|publisher|reader|service|broker "
                             "[--service NAME]... [--out DIR] [--name NAME] | keys show FILE";

static int s_keys_new(samctl_t *ctl, int argc, char **argv)
{
    const char *agency = NULL, *role = NULL, *out = ".", *name = NULL;
    char services[1024] = "";
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--service") == 0 && i + 1 < argc) {
            size_t n = strlen(services);
            snprintf(services + n, sizeof services - n, "%s%s", n ? "," : "", argv[++i]);
            continue;
        }
        const char **slot = strcmp(argv[i], "--agency") == 0 ? &agency
                            : strcmp(argv[i], "--role") == 0 ? &role
                            : strcmp(argv[i], "--out") == 0  ? &out
                            : strcmp(argv[i], "--name") == 0 ? &name
                                                             : NULL;
        if (!slot || i + 1 >= argc) return samctl_usage("keys", s_usage, "unexpected argument");
        *slot = argv[++i];
    }
    if (role && strcmp(role, "broker") == 0 && !agency) agency = "broker";
    if (!agency || !role) return samctl_usage("keys", s_usage, "--agency and --role are required");
    char fallback[160];
    if (!name) {
        snprintf(fallback, sizeof fallback, "%s-%s", agency, role);
        name = strcmp(role, "broker") == 0 ? "broker" : fallback;
    }
    char err[512], key[SAM_KEY_Z85_LEN + 1];
    if (sam_keys_new(out, name, agency, role, services, key, err, sizeof err) != 0) {
        fprintf(stderr, "samctl keys new: %s\n", err);
        return 1;
    }
    if (ctl->json)
        printf("{\"public_key\":\"%s\",\"agency\":\"%s\",\"role\":\"%s\",\"public\":\"%s/%s.cert\","
               "\"secret\":\"%s/%s.cert_secret\"}\n",
               key, agency, role, out, name, out, name);
    else
        printf("%s/%s.cert and %s/%s.cert_secret: agency %s, role %s, public key %s\n", out, name,
               out, name, agency, role, key);
    return 0;
}

static int s_keys_show(samctl_t *ctl, const char *file)
{
    zcert_t *cert = zsys_file_exists(file) ? zcert_load(file) : NULL;
    if (!cert) {
        fprintf(stderr, "samctl keys show: cannot read certificate %s\n", file);
        return 1;
    }
    const char *agency = zcert_meta(cert, "agency"), *role = zcert_meta(cert, "role");
    const char *services = zcert_meta(cert, "services");
    if (ctl->json)
        printf("{\"public_key\":\"%s\",\"agency\":\"%s\",\"role\":\"%s\",\"services\":\"%s\"}\n",
               zcert_public_txt(cert), agency ? agency : "", role ? role : "",
               services ? services : "");
    else
        printf("public key %s, agency %s, role %s%s%s\n", zcert_public_txt(cert),
               agency ? agency : "-", role ? role : "-", services ? ", services " : "",
               services ? services : "");
    zcert_destroy(&cert);
    return 0;
}

int samctl_cmd_keys(samctl_t *ctl, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "new") == 0) return s_keys_new(ctl, argc, argv);
    if (argc == 3 && strcmp(argv[1], "show") == 0) return s_keys_show(ctl, argv[2]);
    return samctl_usage("keys", s_usage, "expected new or show");
}
