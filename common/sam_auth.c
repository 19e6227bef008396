/*  sam_auth.c — see sam_auth.h.

    The mapping is small (tens of organisations, a handful of scopes) and read once at start:
    two jansson objects kept as they were loaded, looked up per request. A role is a rank
    (reader < publisher < admin) so that "the strongest of the token's scopes" and "enough
    for a write" are comparisons.
*/
#include "sam_auth.h"
#include "sam_keys.h"
#include "sam_testkit.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

enum { S_NONE = 0, S_READER, S_PUBLISHER, S_ADMIN };

static const char *const s_roles[] = {"", "reader", "publisher", "admin"};

struct sam_auth_t {
    sam_jwt_verifier_t *jwt;
    json_t *consumers; /* organisation number → agency id */
    json_t *scopes;    /* scope → role name */
    bool open_reads;   /* reads without a token go through as the gateway's reader */
};

static int s_rank(const char *role)
{
    for (int i = S_READER; i <= S_ADMIN; i++)
        if (role && strcmp(role, s_roles[i]) == 0) return i;
    return S_NONE;
}

static bool s_orgno(const char *s)
{
    if (!s || strlen(s) != 9) return false;
    for (int i = 0; i < 9; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

/* A scope as the map may name it: 1..64 printable ASCII bytes, no space, `"` or `\`. */
static bool s_scope_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~' || s[i] == '"' || s[i] == '\\') return false;
    return true;
}

static int s_load_map(sam_auth_t *self, const char *path, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "--auth-map %s: line %d: %s", path, jerr.line, jerr.text);
        return -1;
    }
    int rc = -1;
    const char *name;
    json_t *value;
    if (!json_is_object(root)) {
        snprintf(err, errlen, "--auth-map %s: must be a JSON object", path);
        goto done;
    }
    json_object_foreach(root, name, value)
    {
        if (strcmp(name, "consumers") != 0 && strcmp(name, "scopes") != 0 &&
            strcmp(name, "reads") != 0) {
            snprintf(err, errlen,
                     "--auth-map %s: unknown member '%.64s' (consumers, scopes and reads are "
                     "known)",
                     path, name);
            goto done;
        }
    }
    json_t *consumers = json_object_get(root, "consumers");
    json_t *scopes = json_object_get(root, "scopes");
    json_t *reads = json_object_get(root, "reads");
    if (!json_is_object(consumers) || json_object_size(consumers) == 0) {
        snprintf(err, errlen,
                 "--auth-map %s: \"consumers\" must map organisation numbers to agency ids, "
                 "e.g. {\"889640782\": \"nav-ost-viken\"}",
                 path);
        goto done;
    }
    json_object_foreach(consumers, name, value)
    {
        if (!s_orgno(name) || !sam_keys_agency_ok(json_string_value(value))) {
            snprintf(err, errlen,
                     "--auth-map %s: consumers: '%.64s' must be a nine-digit organisation number "
                     "mapped to an agency id (lowercase [a-z0-9-], 1-64)",
                     path, name);
            goto done;
        }
    }
    if (!json_is_object(scopes) || json_object_size(scopes) == 0) {
        snprintf(err, errlen,
                 "--auth-map %s: \"scopes\" must map scopes to roles, e.g. "
                 "{\"samordna:write\": \"publisher\"}",
                 path);
        goto done;
    }
    json_object_foreach(scopes, name, value)
    {
        if (!s_scope_ok(name) || !s_rank(json_string_value(value))) {
            snprintf(err, errlen,
                     "--auth-map %s: scopes: '%.64s' must be a scope (1-64 printable characters, "
                     "no space) mapped to admin, publisher or reader",
                     path, name);
            goto done;
        }
    }
    const char *r = reads ? json_string_value(reads) : "token";
    if (!r || (strcmp(r, "token") != 0 && strcmp(r, "open") != 0)) {
        snprintf(err, errlen, "--auth-map %s: \"reads\" must be \"token\" or \"open\"", path);
        goto done;
    }
    self->open_reads = strcmp(r, "open") == 0;
    self->consumers = json_incref(consumers);
    self->scopes = json_incref(scopes);
    rc = 0;
done:
    json_decref(root);
    return rc;
}

sam_auth_t *sam_auth_new(const sam_auth_opts_t *opts, char *err, size_t errlen)
{
    if (!opts->map_file || !*opts->map_file) {
        snprintf(err, errlen,
                 "--auth-map: the file mapping token consumers to agencies and "
                 "scopes to roles is required with --jwks");
        return NULL;
    }
    sam_auth_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!(self->jwt = sam_jwt_verifier_new(&opts->jwt, err, errlen)) ||
        s_load_map(self, opts->map_file, err, errlen) != 0)
        sam_auth_destroy(&self);
    return self;
}

void sam_auth_destroy(sam_auth_t **self_p)
{
    if (!self_p || !*self_p) return;
    sam_auth_t *self = *self_p;
    sam_jwt_verifier_destroy(&self->jwt);
    json_decref(self->consumers);
    json_decref(self->scopes);
    free(self);
    *self_p = NULL;
}

static unsigned s_refuse(sam_auth_result_t *out, unsigned status, const char *error,
                         const char *text)
{
    out->status = status;
    out->error = error;
    snprintf(out->description, sizeof out->description, "%s", text);
    out->present = false;
    out->agency[0] = out->role[0] = 0;
    return status;
}

/* The mapped scopes of at least rank `need`, space-separated, into out->scope. */
static void s_scopes_for(sam_auth_t *self, int need, sam_auth_result_t *out)
{
    const char *name;
    json_t *value;
    out->scope[0] = 0;
    json_object_foreach(self->scopes, name, value)
    {
        if (s_rank(json_string_value(value)) < need) continue;
        size_t n = strlen(out->scope);
        snprintf(out->scope + n, sizeof out->scope - n, "%s%s", n ? " " : "", name);
    }
}

unsigned sam_auth_check(sam_auth_t *self, const char *authorization, bool write,
                        sam_auth_result_t *out)
{
    memset(out, 0, sizeof *out);
    if (!authorization || !*authorization) {
        if (!write && self->open_reads) return 0; /* the gateway's own reader */
        return s_refuse(out, 401, NULL,
                        write
                            ? "a bearer token is required to write (Authorization: Bearer <token>)"
                            : "a bearer token is required (Authorization: Bearer <token>)");
    }
    if (strncasecmp(authorization, "Bearer ", 7) != 0)
        return s_refuse(out, 400, "invalid_request",
                        "the Authorization header must be \"Bearer\" and a token");
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    char why[512];
    sam_jwt_error_t rc =
        sam_jwt_verify(self->jwt, token, strlen(token), &out->claims, why, sizeof why);
    if (rc != SAM_JWT_OK) return s_refuse(out, 401, "invalid_token", why);
    if (!out->claims.consumer[0])
        return s_refuse(out, 401, "invalid_token",
                        "the token names no consumer organisation (Maskinporten's consumer claim)");
    const char *agency = json_string_value(json_object_get(self->consumers, out->claims.consumer));
    if (!agency) {
        snprintf(why, sizeof why, "the organisation %s is not mapped to an agency here",
                 out->claims.consumer);
        return s_refuse(out, 401, "invalid_token", why);
    }
    int rank = S_NONE;
    const char *name;
    json_t *value;
    json_object_foreach(self->scopes, name, value)
    {
        int r = s_rank(json_string_value(value));
        if (r > rank && sam_jwt_has_scope(out->claims.scope, name)) rank = r;
    }
    int need = write ? S_PUBLISHER : S_READER;
    if (rank < need) {
        s_scopes_for(self, need, out);
        snprintf(why, sizeof why, "the token has no scope that allows %s (one of: %s)",
                 write ? "writes" : "reads", out->scope);
        return s_refuse(out, 403, "insufficient_scope", why);
    }
    out->present = true;
    snprintf(out->agency, sizeof out->agency, "%s", agency);
    snprintf(out->role, sizeof out->role, "%s", s_roles[rank]);
    return 0;
}

/* ---- self-test ---------------------------------------------------------------------------- */

#define S_CHECK(cond) ((void)(SAM_CHECK(cond) || failed++))

static void s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

int sam_auth_selftest(const char *scratch, bool verbose)
{
    int failed = 0;
    char err[512], jwks[1024], map[1024];
    mkdir(scratch, 0700);
    snprintf(jwks, sizeof jwks, "%s/jwks.json", scratch);
    snprintf(map, sizeof map, "%s/auth-map.json", scratch);
    /* one P-256 key (the point is the curve's generator): enough to load */
    s_write(jwks, "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"k1\",\"crv\":\"P-256\","
                  "\"x\":\"axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY\","
                  "\"y\":\"T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU\"}]}");
    sam_auth_opts_t opts = {
        {jwks, "https://test.maskinporten.no/", "https://samordna.example/", NULL, 30}, map};
    const char *bad[][2] = {
        {"[]", "JSON object"},
        {"{\"consumers\":{\"889640782\":\"nav\"},\"scopes\":{\"a\":\"admin\"},\"x\":1}", "'x'"},
        {"{\"consumers\":{},\"scopes\":{\"a\":\"admin\"}}", "consumers"},
        {"{\"consumers\":{\"88964078\":\"nav\"},\"scopes\":{\"a\":\"admin\"}}", "'88964078'"},
        {"{\"consumers\":{\"889640782\":\"NAV\"},\"scopes\":{\"a\":\"admin\"}}", "'889640782'"},
        {"{\"consumers\":{\"889640782\":\"nav\"},\"scopes\":{\"a\":\"root\"}}", "scopes: 'a'"},
        {"{\"consumers\":{\"889640782\":\"nav\"},\"scopes\":{\"a b\":\"admin\"}}", "'a b'"},
        {"{\"consumers\":{\"889640782\":\"nav\"},\"scopes\":{\"a\":\"admin\"},\"reads\":\"all\"}",
         "reads"},
        {"{\"consumers\":{\"889640782\":\"nav\",\"889640782\":\"imdi\"},\"scopes\":{}}", "line 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_write(map, bad[i][0]);
        sam_auth_t *a = sam_auth_new(&opts, err, sizeof err);
        S_CHECK(!a && strstr(err, bad[i][1]));
        if (verbose) printf("  auth-map refused: %s\n", err);
        sam_auth_destroy(&a);
    }
    s_write(map, "{\"consumers\":{\"889640782\":\"nav-ost-viken\"},\"scopes\":{"
                 "\"samordna:admin\":\"admin\",\"samordna:write\":\"publisher\","
                 "\"samordna:read\":\"reader\"}}");
    sam_auth_t *a = sam_auth_new(&opts, err, sizeof err);
    S_CHECK(a != NULL);
    if (!a) return -1;
    sam_auth_result_t r;
    /* without a token: reads need one too unless the map says "open" */
    S_CHECK(sam_auth_check(a, NULL, false, &r) == 401 && r.error == NULL && !r.present);
    S_CHECK(sam_auth_check(a, "", true, &r) == 401 && strstr(r.description, "to write"));
    S_CHECK(sam_auth_check(a, "Basic Zm9vOmJhcg==", false, &r) == 400 &&
            strcmp(r.error, "invalid_request") == 0);
    S_CHECK(sam_auth_check(a, "Bearer not-a-token", false, &r) == 401 &&
            strcmp(r.error, "invalid_token") == 0 && !strstr(r.description, "not-a-token"));
    S_CHECK(sam_auth_check(a, "bearer e30.e30.", true, &r) == 401 && strstr(r.description, "alg"));
    sam_auth_destroy(&a);
    S_CHECK(a == NULL);
    s_write(map, "{\"consumers\":{\"889640782\":\"nav-ost-viken\"},\"scopes\":{"
                 "\"samordna:read\":\"reader\"},\"reads\":\"open\"}");
    a = sam_auth_new(&opts, err, sizeof err);
    S_CHECK(a && sam_auth_check(a, NULL, false, &r) == 0 && !r.present);
    S_CHECK(a && sam_auth_check(a, NULL, true, &r) == 401);
    S_CHECK(a && sam_auth_check(a, "Bearer x.y.z", false, &r) == 401); /* checked all the same */
    sam_auth_destroy(&a);
    opts.map_file = NULL;
    S_CHECK(!sam_auth_new(&opts, err, sizeof err) && strstr(err, "--auth-map"));
    if (verbose) printf("sam_auth_selftest: %s\n", failed ? "FAILED" : "OK");
    return failed ? -1 : 0;
}
