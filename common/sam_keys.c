/*  sam_keys.c — see sam_keys.h.

    Certificates are CZMQ's zcert files (ZPL text): a "metadata" section and a "curve"
    section with the Z85 keys. CZMQ reads and writes them; this file adds what samordna
    puts in the metadata and the broker's reloadable table of trusted keys.

    The keyring rebuilds its whole table when the directory looks different (count, total
    size, newest modification time, as CZMQ's own zcertstore does for the ZAP handler). A
    rebuild is a few file reads per trusted key; the broker asks once a second.
*/
#include "sam_keys.h"
#include "sam_testkit.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_EMPTY_SECRET "0000000000000000000000000000000000000000"

bool sam_keys_agency_ok(const char *id)
{
    if (!id) return false;
    size_t n = strlen(id);
    if (n < 1 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    }
    return true;
}

bool sam_keys_role_ok(const char *role)
{
    static const char *const roles[] = {"admin",   "publisher", "reader",
                                        "service", "gateway",   "broker"};
    for (size_t i = 0; role && i < sizeof roles / sizeof roles[0]; i++)
        if (strcmp(role, roles[i]) == 0) return true;
    return false;
}

static bool s_z85_ok(const char *s)
{
    if (!s || strlen(s) != SAM_KEY_Z85_LEN) return false;
    uint8_t bin[32];
    return zmq_z85_decode(bin, s) != NULL;
}

static bool s_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int sam_keys_new(const char *dir, const char *name, const char *agency, const char *role,
                 const char *services, char *public_key, char *err, size_t errlen)
{
    if (!sam_keys_agency_ok(agency)) {
        snprintf(err, errlen, "agency: '%s' is not an agency id (lowercase [a-z0-9-], 1-64)",
                 agency ? agency : "");
        return -1;
    }
    if (!sam_keys_role_ok(role)) {
        snprintf(err, errlen,
                 "role: '%s' is not one of admin, publisher, reader, service, gateway, "
                 "broker",
                 role ? role : "");
        return -1;
    }
    bool service = strcmp(role, "service") == 0;
    if (service && !sam_keys_services_ok(services)) {
        snprintf(err, errlen,
                 "services: a service certificate names the services it may offer "
                 "(--service registry, repeatable), each [a-z0-9.-]{1,64}");
        return -1;
    }
    if (!service && services && *services) {
        snprintf(err, errlen, "services: only a certificate of role service offers services");
        return -1;
    }
    if (!name || !*name || strchr(name, '/') || name[0] == '.') {
        snprintf(err, errlen, "name: '%s' is not a file name", name ? name : "");
        return -1;
    }
    char pub[4096], sec[4096 + 8];
    if (snprintf(pub, sizeof pub, "%s/%s.cert", dir, name) >= (int)sizeof pub) {
        snprintf(err, errlen, "path too long");
        return -1;
    }
    snprintf(sec, sizeof sec, "%s_secret", pub);
    if (s_exists(pub) || s_exists(sec)) {
        snprintf(err, errlen, "%s exists already; remove it or choose another --name", pub);
        return -1;
    }
    if (zsys_dir_create("%s", dir) != 0) {
        snprintf(err, errlen, "cannot create folder %s: %s", dir, strerror(errno));
        return -1;
    }
    zcert_t *cert = zcert_new();
    if (!cert) {
        snprintf(err, errlen, "cannot create a key pair");
        return -1;
    }
    zcert_set_meta(cert, "agency", "%s", agency);
    zcert_set_meta(cert, "role", "%s", role);
    if (service) zcert_set_meta(cert, "services", "%s", services);
    zcert_set_meta(cert, "created", "%" PRId64, (int64_t)(zclock_time() / 1000));
    mode_t old = umask(077);
    int rc = zcert_save(cert, pub);
    umask(old);
    if (rc == 0) chmod(pub, 0644); /* the public half is meant to be copied */
    if (rc != 0)
        snprintf(err, errlen, "cannot write %s: %s", pub, strerror(errno));
    else if (public_key)
        snprintf(public_key, SAM_KEY_Z85_LEN + 1, "%s", zcert_public_txt(cert));
    zcert_destroy(&cert);
    return rc == 0 ? 0 : -1;
}

int sam_keys_server_key(const char *arg, char *out, char *err, size_t errlen)
{
    if (!arg || !*arg) {
        snprintf(err, errlen, "no server key given");
        return -1;
    }
    if (s_z85_ok(arg)) {
        snprintf(out, SAM_KEY_Z85_LEN + 1, "%s", arg);
        return 0;
    }
    if (!s_exists(arg)) {
        snprintf(err, errlen, "server key: '%s' is neither a Z85 key nor a certificate file", arg);
        return -1;
    }
    zcert_t *cert = zcert_load(arg);
    if (!cert || !s_z85_ok(zcert_public_txt(cert))) {
        snprintf(err, errlen, "server key: cannot read a public key from %s", arg);
        zcert_destroy(&cert);
        return -1;
    }
    snprintf(out, SAM_KEY_Z85_LEN + 1, "%s", zcert_public_txt(cert));
    zcert_destroy(&cert);
    return 0;
}

int sam_keys_check_secret(const char *path, char *err, size_t errlen)
{
    zcert_t *cert = path && s_exists(path) ? zcert_load(path) : NULL;
    if (!cert) {
        snprintf(err, errlen, "cannot read certificate %s", path ? path : "(none)");
        return -1;
    }
    int rc = 0;
    if (strcmp(zcert_secret_txt(cert), S_EMPTY_SECRET) == 0 || !s_z85_ok(zcert_secret_txt(cert))) {
        snprintf(err, errlen, "%s holds no secret key (give the .cert_secret file)", path);
        rc = -1;
    }
    zcert_destroy(&cert);
    return rc;
}

static bool s_service_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 64 || (n >= 4 && strncmp(s, "mmi.", 4) == 0)) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
              s[i] == '.'))
            return false;
    return true;
}

bool sam_keys_services_ok(const char *services)
{
    if (!services || !*services) return false;
    for (const char *p = services;;) {
        size_t n = strcspn(p, ",");
        if (!s_service_name_ok(p, n)) return false;
        if (!p[n]) return true;
        p += n + 1;
    }
}

bool sam_keys_may_offer(const char *services, const char *service)
{
    size_t want = strlen(service);
    for (const char *p = services ? services : ""; *p;) {
        size_t n = strcspn(p, ",");
        if (n == want && strncmp(p, service, n) == 0) return true;
        p += n;
        if (*p == ',') p++;
    }
    return false;
}

/* ---- keyring ----------------------------------------------------------------------------- */

typedef struct {
    sam_key_info_t info;
    char *agency, *role, *services, *file; /* owned; info points at them */
} s_key_t;

struct sam_keyring_t {
    char *dir;
    zhashx_t *keys; /* Z85 public key → s_key_t */
    int count;      /* what the directory looked like at the last load */
    off_t size;
    time_t modified;
    bool loaded;
};

static void s_key_destroy(void **item)
{
    s_key_t *k = *item;
    if (!k) return;
    free(k->agency);
    free(k->role);
    free(k->services);
    free(k->file);
    free(k);
    *item = NULL;
}

static bool s_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Loads every public certificate of the directory into a new table. */
static zhashx_t *s_load(const char *dir)
{
    zhashx_t *keys = zhashx_new();
    if (!keys) return NULL;
    zhashx_set_destructor(keys, s_key_destroy);
    zdir_t *zdir = zdir_new(dir, "-");
    if (!zdir) return keys;
    zfile_t **files = zdir_flatten(zdir);
    for (size_t i = 0; files && files[i]; i++) {
        const char *path = zfile_filename(files[i], NULL);
        if (s_ends_with(path, "_secret")) continue; /* secrets do not belong here */
        zcert_t *cert = zcert_load(path);
        if (!cert) continue;
        const char *key = zcert_public_txt(cert);
        s_key_t *k = calloc(1, sizeof *k);
        if (k && s_z85_ok(key)) {
            const char *agency = zcert_meta(cert, "agency");
            const char *role = zcert_meta(cert, "role");
            const char *services = zcert_meta(cert, "services");
            k->agency = strdup(agency ? agency : "");
            k->role = strdup(role ? role : "");
            k->services = strdup(services ? services : "");
            k->file = strdup(path);
            if (k->agency && k->role && k->services && k->file) {
                k->info.agency = k->agency;
                k->info.role = k->role;
                k->info.services = k->services;
                k->info.file = k->file;
                if (zhashx_insert(keys, key, k) == 0) k = NULL;
            }
        }
        if (k) s_key_destroy((void **)&k);
        zcert_destroy(&cert);
    }
    zdir_flatten_free(&files);
    zdir_destroy(&zdir);
    return keys;
}

sam_keyring_t *sam_keyring_new(const char *dir)
{
    if (!dir || !zsys_file_exists(dir)) return NULL;
    sam_keyring_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->dir = strdup(dir);
    if (!self->dir || sam_keyring_refresh(self, true) < 0) {
        sam_keyring_destroy(&self);
        return NULL;
    }
    return self;
}

void sam_keyring_destroy(sam_keyring_t **self_p)
{
    if (!self_p || !*self_p) return;
    sam_keyring_t *self = *self_p;
    zhashx_destroy(&self->keys);
    free(self->dir);
    free(self);
    *self_p = NULL;
}

int sam_keyring_refresh(sam_keyring_t *self, bool force)
{
    zdir_t *zdir = zdir_new(self->dir, "-");
    if (!zdir) {
        size_t had = self->keys ? zhashx_size(self->keys) : 0;
        zhashx_destroy(&self->keys);
        self->loaded = false;
        return had ? (int)had : -1;
    }
    int count = zdir_count(zdir);
    off_t size = zdir_cursize(zdir);
    time_t modified = zdir_modified(zdir);
    zdir_destroy(&zdir);
    if (!force && self->loaded && count == self->count && size == self->size &&
        modified == self->modified)
        return 0;
    zhashx_t *keys = s_load(self->dir);
    if (!keys) return -1;
    int removed = 0;
    if (self->keys)
        for (void *k = zhashx_first(self->keys); k; k = zhashx_next(self->keys))
            if (!zhashx_lookup(keys, zhashx_cursor(self->keys))) removed++;
    zhashx_destroy(&self->keys);
    self->keys = keys;
    self->count = count;
    self->size = size;
    self->modified = modified;
    self->loaded = true;
    return removed;
}

const sam_key_info_t *sam_keyring_lookup(sam_keyring_t *self, const char *z85)
{
    if (!self || !self->keys || !z85) return NULL;
    s_key_t *k = zhashx_lookup(self->keys, z85);
    return k ? &k->info : NULL;
}

size_t sam_keyring_size(sam_keyring_t *self)
{
    return self && self->keys ? zhashx_size(self->keys) : 0;
}

/* ---- self-test ---------------------------------------------------------------------------- */

/* A check of this selftest (sam_testkit.h); `failed` is this run's count. */
#define S_CHECK(cond) ((void)(SAM_CHECK(cond) || failed++))

int sam_keys_selftest(const char *scratch, bool verbose)
{
    int failed = 0;
    char err[512], key[SAM_KEY_Z85_LEN + 1], key2[SAM_KEY_Z85_LEN + 1], path[1024];

    S_CHECK(sam_keys_agency_ok("nav-ost-viken"));
    S_CHECK(!sam_keys_agency_ok(""));
    S_CHECK(!sam_keys_agency_ok("NAV"));
    S_CHECK(!sam_keys_agency_ok("a b"));
    S_CHECK(!sam_keys_agency_ok(NULL));
    S_CHECK(sam_keys_role_ok("publisher") && sam_keys_role_ok("service"));
    S_CHECK(sam_keys_role_ok("gateway"));
    S_CHECK(!sam_keys_role_ok("root") && !sam_keys_role_ok(NULL));

    char keys[512], secrets[512];
    snprintf(keys, sizeof keys, "%s/trusted", scratch);
    snprintf(secrets, sizeof secrets, "%s/secrets", scratch);
    S_CHECK(sam_keys_new(secrets, "a", "nav-ost-viken", "publisher", NULL, key, err, sizeof err) ==
            0);
    S_CHECK(sam_keys_new(secrets, "a", "nav-ost-viken", "publisher", NULL, NULL, err, sizeof err) ==
            -1);
    S_CHECK(strstr(err, "exists already") != NULL);
    S_CHECK(sam_keys_new(secrets, "b", "Bad", "publisher", NULL, NULL, err, sizeof err) == -1);
    S_CHECK(strstr(err, "agency") != NULL);
    S_CHECK(sam_keys_new(secrets, "b", "fmov", "root", NULL, NULL, err, sizeof err) == -1);
    S_CHECK(sam_keys_new(secrets, "../b", "fmov", "admin", NULL, NULL, err, sizeof err) == -1);
    S_CHECK(sam_keys_new(secrets, "b", "fmov", "admin", NULL, key2, err, sizeof err) == 0);
    /* a service certificate names its services; nobody else's may */
    S_CHECK(sam_keys_new(secrets, "s0", "fmov", "service", NULL, NULL, err, sizeof err) == -1);
    S_CHECK(sam_keys_new(secrets, "s0", "fmov", "service", "Registry", NULL, err, sizeof err) ==
            -1);
    S_CHECK(sam_keys_new(secrets, "s0", "fmov", "reader", "registry", NULL, err, sizeof err) == -1);
    S_CHECK(sam_keys_new(secrets, "s1", "fmov", "service", "registry,status", NULL, err,
                         sizeof err) == 0);
    S_CHECK(sam_keys_may_offer("registry,status", "status"));
    S_CHECK(sam_keys_may_offer("registry,status", "registry"));
    S_CHECK(!sam_keys_may_offer("registry,status", "regis"));
    S_CHECK(!sam_keys_may_offer("registry,status", "grants"));
    S_CHECK(!sam_keys_may_offer("", "registry"));
    S_CHECK(!sam_keys_services_ok("registry,"));
    S_CHECK(!sam_keys_services_ok("mmi.service"));

    /* Secret and server keys. */
    snprintf(path, sizeof path, "%s/a.cert_secret", secrets);
    S_CHECK(sam_keys_check_secret(path, err, sizeof err) == 0);
    char got[SAM_KEY_Z85_LEN + 1];
    S_CHECK(sam_keys_server_key(path, got, err, sizeof err) == 0 && strcmp(got, key) == 0);
    snprintf(path, sizeof path, "%s/a.cert", secrets);
    S_CHECK(sam_keys_server_key(path, got, err, sizeof err) == 0 && strcmp(got, key) == 0);
    S_CHECK(sam_keys_server_key(key2, got, err, sizeof err) == 0 && strcmp(got, key2) == 0);
    S_CHECK(sam_keys_server_key("short", got, err, sizeof err) == -1);
    S_CHECK(sam_keys_server_key("", got, err, sizeof err) == -1);
    S_CHECK(sam_keys_check_secret("/nonexistent/x", err, sizeof err) == -1);

    /* The keyring follows its directory. */
    S_CHECK(sam_keyring_new("/nonexistent/dir") == NULL);
    zsys_dir_create("%s", keys);
    sam_keyring_t *ring = sam_keyring_new(keys);
    S_CHECK(ring && sam_keyring_size(ring) == 0);
    char from[1024], to[1024];
    snprintf(from, sizeof from, "%s/a.cert", secrets);
    snprintf(to, sizeof to, "%s/a.cert", keys);
    {
        zcert_t *c = zcert_load(from);
        S_CHECK(c && zcert_save_public(c, to) == 0);
        zcert_destroy(&c);
        snprintf(from, sizeof from, "%s/b.cert", secrets);
        snprintf(to, sizeof to, "%s/b.cert", keys);
        c = zcert_load(from);
        S_CHECK(c && zcert_save_public(c, to) == 0);
        zcert_destroy(&c);
    }
    S_CHECK(sam_keys_check_secret(to, err, sizeof err) == -1); /* a public half only */
    S_CHECK(sam_keyring_refresh(ring, false) == 0);
    S_CHECK(sam_keyring_size(ring) == 2);
    const sam_key_info_t *info = sam_keyring_lookup(ring, key);
    S_CHECK(info && strcmp(info->agency, "nav-ost-viken") == 0 &&
            strcmp(info->role, "publisher") == 0);
    S_CHECK(sam_keyring_lookup(ring, "nope") == NULL);
    snprintf(to, sizeof to, "%s/a.cert", keys);
    S_CHECK(unlink(to) == 0);
    S_CHECK(sam_keyring_refresh(ring, false) == 1);
    S_CHECK(sam_keyring_lookup(ring, key) == NULL);
    S_CHECK(sam_keyring_lookup(ring, key2) != NULL);
    sam_keyring_destroy(&ring);
    S_CHECK(ring == NULL);
    sam_keyring_destroy(&ring);

    if (verbose) printf("sam_keys_selftest: %s\n", failed ? "FAILED" : "OK");
    return failed ? -1 : 0;
}
