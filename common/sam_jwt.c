/*  sam_jwt.c — see sam_jwt.h.

    The order of the checks is the order of trust: the token's shape first (three parts,
    each base64url, header and payload JSON objects), then the header (alg, kid, crit) and
    the signature, and only then the claims — a claim of an unsigned or wrongly signed
    token is never looked at, so a refusal never says more about a forged token than that
    its signature is wrong.

    The keys are EVP_PKEYs built with OSSL_PARAM from the JWKS members (RSA n and e, EC P-256
    x and y as the uncompressed point 04||x||y) and checked with EVP_PKEY_public_check, so a
    point off the curve is refused when the file is loaded, not when a token arrives. An
    RSA key shorter than 2048 bits is refused too. An ES256 signature is r||s (32 bytes each,
    RFC 7518 §3.4); OpenSSL verifies DER, so it is rewritten as an ECDSA_SIG first.

    base64url is libsodium's strict decoder (no padding, no other alphabet, no whitespace);
    JSON is jansson's, with duplicate names refused (two `aud` members must not let one
    reader see another audience than the next).
*/
#include "sam_jwt.h"
#include "sam_clock.h"
#include "sam_testkit.h"

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <sodium.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_KEYS_MAX 64       /* keys in one JWKS */
#define S_KID_MAX 127       /* longest kid kept */
#define S_RSA_MIN_BITS 2048 /* shorter RSA keys are refused */
#define S_JWKS_MAX (1024 * 1024)
#define S_CACHE_SLOTS 1024 /* verified tokens remembered (direct-mapped) */
#define S_CACHE_KEY 16     /* bytes of a token's hash */

typedef enum { S_RS256 = 1, S_ES256 = 2 } s_alg_t;

typedef struct {
    char kid[S_KID_MAX + 1];
    s_alg_t kind;    /* S_RS256 for an RSA key, S_ES256 for a P-256 key */
    bool alg_pinned; /* the JWKS entry named its alg (which is then `kind`'s) */
    EVP_PKEY *pkey;
} s_key_t;

/* A token that verified, kept so that its next uses cost a hash instead of a signature. */
typedef struct {
    uint8_t key[S_CACHE_KEY]; /* keyed BLAKE2b of the whole token */
    bool used;
    int64_t exp, nbf, iat; /* its times, checked again at every use */
    bool has_nbf, has_iat;
    sam_jwt_claims_t claims;
} s_cached_t;

struct sam_jwt_verifier_t {
    s_key_t keys[S_KEYS_MAX];
    size_t nkeys;
    pthread_mutex_t lock; /* guards the cache: handlers of several threads verify at once */
    uint8_t cache_key[crypto_generichash_KEYBYTES];
    s_cached_t *cache; /* S_CACHE_SLOTS, direct-mapped by the token's hash */
    char *issuer;
    char *audience;
    unsigned algs; /* S_RS256 | S_ES256 bits */
    int leeway_s;
};

const char *sam_jwt_strerror(sam_jwt_error_t error)
{
    switch (error) {
    case SAM_JWT_OK:
        return "ok";
    case SAM_JWT_MALFORMED:
        return "malformed";
    case SAM_JWT_ALG:
        return "algorithm not accepted";
    case SAM_JWT_KEY:
        return "unknown key";
    case SAM_JWT_SIGNATURE:
        return "bad signature";
    case SAM_JWT_ISSUER:
        return "wrong issuer";
    case SAM_JWT_AUDIENCE:
        return "wrong audience";
    case SAM_JWT_EXPIRED:
        return "expired";
    case SAM_JWT_NOT_YET:
        return "not yet valid";
    case SAM_JWT_IAT:
        return "issued in the future";
    case SAM_JWT_CONSUMER:
        return "bad consumer";
    }
    return "error";
}

/* ---- helpers ------------------------------------------------------------------------------ */

/*  base64url without padding into a malloc'd buffer (NUL-terminated for JSON); NULL when the
    text is not strictly that. */
static uint8_t *s_b64url(const char *text, size_t len, size_t *out_len)
{
    uint8_t *bin = malloc(len * 3 / 4 + 2);
    if (!bin) return NULL;
    const char *end = NULL;
    size_t n = 0;
    if (sodium_base642bin(bin, len * 3 / 4 + 1, text, len, NULL, &n, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        end != text + len) {
        free(bin);
        return NULL;
    }
    bin[n] = 0;
    *out_len = n;
    return bin;
}

/* A JSON object from base64url text, or NULL. */
static json_t *s_b64_json(const char *text, size_t len)
{
    size_t n;
    uint8_t *bin = s_b64url(text, len, &n);
    if (!bin) return NULL;
    json_t *j = json_loadb((const char *)bin, n, JSON_REJECT_DUPLICATES, NULL);
    free(bin);
    if (j && !json_is_object(j)) json_decref(j), j = NULL;
    return j;
}

/* A string member decoded as base64url into a BIGNUM; NULL when missing or not base64url. */
static BIGNUM *s_member_bn(json_t *obj, const char *name, size_t *bytes)
{
    const char *text = json_string_value(json_object_get(obj, name));
    if (!text || !*text) return NULL;
    size_t n;
    uint8_t *bin = s_b64url(text, strlen(text), &n);
    if (!bin) return NULL;
    BIGNUM *bn = n ? BN_bin2bn(bin, (int)n, NULL) : NULL;
    if (bytes) *bytes = n;
    free(bin);
    return bn;
}

/* A claim holding seconds since the epoch: true with *out set, false when not a number. */
static bool s_seconds(json_t *claim, int64_t *out)
{
    if (json_is_integer(claim)) {
        *out = json_integer_value(claim);
        return true;
    }
    if (json_is_real(claim)) {
        double v = json_real_value(claim);
        if (!(v > -1e15 && v < 1e15)) return false;
        *out = (int64_t)v;
        return true;
    }
    return false;
}

/* True when s is 1..max bytes of [A-Za-z0-9._:@/-] — text safe to keep for logs. */
static bool s_plain(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max) return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@/-", s[i]))
            return false;
    return true;
}

/*  True when s is 1..255 printable ASCII bytes without `"` or `\`: configured text that
    refusals quote, and refusals go into a WWW-Authenticate header as they are. */
static bool s_header_safe(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 255) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < ' ' || s[i] > '~' || s[i] == '"' || s[i] == '\\') return false;
    return true;
}

/* ---- keys --------------------------------------------------------------------------------- */

static EVP_PKEY *s_pkey_fromdata(const char *type, OSSL_PARAM *params)
{
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    if (!pkey) return NULL;
    /* the public part must be a real key: a point on the curve, a usable modulus */
    EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    bool ok = check && EVP_PKEY_public_check(check) == 1;
    EVP_PKEY_CTX_free(check);
    if (!ok) EVP_PKEY_free(pkey), pkey = NULL;
    return pkey;
}

static EVP_PKEY *s_rsa_key(json_t *jwk, char *err, size_t errlen)
{
    BIGNUM *n = s_member_bn(jwk, "n", NULL), *e = s_member_bn(jwk, "e", NULL);
    EVP_PKEY *pkey = NULL;
    if (!n || !e) {
        snprintf(err, errlen, "an RSA key needs n and e as base64url without padding");
    } else if (BN_num_bits(n) < S_RSA_MIN_BITS) {
        snprintf(err, errlen, "the RSA key has %d bits; at least %d are needed", BN_num_bits(n),
                 S_RSA_MIN_BITS);
    } else {
        OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
        OSSL_PARAM *params = NULL;
        if (bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1)
            params = OSSL_PARAM_BLD_to_param(bld);
        if (params) pkey = s_pkey_fromdata("RSA", params);
        if (!pkey) snprintf(err, errlen, "n and e do not make a usable RSA public key");
        OSSL_PARAM_free(params);
        OSSL_PARAM_BLD_free(bld);
    }
    BN_free(n);
    BN_free(e);
    return pkey;
}

static EVP_PKEY *s_ec_key(json_t *jwk, char *err, size_t errlen)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    if (!crv || strcmp(crv, "P-256") != 0) {
        snprintf(err, errlen, "an EC key must have crv \"P-256\" (ES256)");
        return NULL;
    }
    uint8_t point[65] = {0x04};
    const char *names[2] = {"x", "y"};
    for (int i = 0; i < 2; i++) {
        const char *text = json_string_value(json_object_get(jwk, names[i]));
        size_t n = 0;
        uint8_t *bin = text ? s_b64url(text, strlen(text), &n) : NULL;
        if (!bin || n != 32) {
            free(bin);
            snprintf(err, errlen, "an EC P-256 key needs %s as 32 bytes in base64url", names[i]);
            return NULL;
        }
        memcpy(point + 1 + 32 * i, bin, 32);
        free(bin);
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point),
        OSSL_PARAM_construct_end()};
    EVP_PKEY *pkey = s_pkey_fromdata("EC", params);
    if (!pkey) snprintf(err, errlen, "x and y are not a point on the P-256 curve");
    return pkey;
}

/* One JWKS entry into self->keys. Returns 0, or -1 with the reason in err. */
static int s_load_key(sam_jwt_verifier_t *self, json_t *jwk, size_t index, char *err, size_t errlen)
{
    char why[256] = "";
    const char *kid = json_string_value(json_object_get(jwk, "kid"));
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const char *alg = json_string_value(json_object_get(jwk, "alg"));
    const char *use = json_string_value(json_object_get(jwk, "use"));
    if (!json_is_object(jwk)) {
        snprintf(err, errlen, "keys[%zu]: is not an object", index);
        return -1;
    }
    if (!kid || !s_plain(kid, S_KID_MAX)) {
        snprintf(err, errlen, "keys[%zu]: needs a kid of 1 to %d of [A-Za-z0-9._:@/-]", index,
                 S_KID_MAX);
        return -1;
    }
    for (size_t i = 0; i < self->nkeys; i++)
        if (strcmp(self->keys[i].kid, kid) == 0) {
            snprintf(err, errlen, "keys[%zu]: kid '%s' is there twice", index, kid);
            return -1;
        }
    if (use && strcmp(use, "sig") != 0) {
        snprintf(err, errlen, "keys[%zu] (kid '%s'): use must be \"sig\"", index, kid);
        return -1;
    }
    if (self->nkeys == S_KEYS_MAX) {
        snprintf(err, errlen, "keys[%zu]: more than %d keys", index, S_KEYS_MAX);
        return -1;
    }
    s_key_t *key = &self->keys[self->nkeys];
    if (kty && strcmp(kty, "RSA") == 0) {
        key->kind = S_RS256;
        key->pkey = s_rsa_key(jwk, why, sizeof why);
    } else if (kty && strcmp(kty, "EC") == 0) {
        key->kind = S_ES256;
        key->pkey = s_ec_key(jwk, why, sizeof why);
    } else {
        snprintf(err, errlen, "keys[%zu] (kid '%s'): kty must be \"RSA\" or \"EC\"", index, kid);
        return -1;
    }
    if (!key->pkey) {
        snprintf(err, errlen, "keys[%zu] (kid '%s'): %s", index, kid, why);
        return -1;
    }
    const char *want = key->kind == S_RS256 ? "RS256" : "ES256";
    if (alg && strcmp(alg, want) != 0) {
        EVP_PKEY_free(key->pkey);
        key->pkey = NULL;
        snprintf(err, errlen, "keys[%zu] (kid '%s'): alg of a %s key must be \"%s\"", index, kid,
                 kty, want);
        return -1;
    }
    key->alg_pinned = alg != NULL;
    snprintf(key->kid, sizeof key->kid, "%s", kid);
    self->nkeys++;
    return 0;
}

static int s_load_jwks(sam_jwt_verifier_t *self, const char *path, char *err, size_t errlen)
{
    char why[512];
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "--jwks %s: %s", path, strerror(errno));
        return -1;
    }
    if (st.st_size > S_JWKS_MAX) {
        snprintf(err, errlen, "--jwks %s: larger than %d bytes", path, S_JWKS_MAX);
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "--jwks %s: line %d: %s", path, jerr.line, jerr.text);
        return -1;
    }
    json_t *keys = json_object_get(root, "keys");
    int rc = 0;
    if (!json_is_array(keys) || json_array_size(keys) == 0) {
        snprintf(err, errlen, "--jwks %s: must be an object with a non-empty array \"keys\"", path);
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < json_array_size(keys); i++)
        if ((rc = s_load_key(self, json_array_get(keys, i), i, why, sizeof why)) != 0)
            snprintf(err, errlen, "--jwks %s: %s", path, why);
    json_decref(root);
    return rc;
}

sam_jwt_verifier_t *sam_jwt_verifier_new(const sam_jwt_opts_t *opts, char *err, size_t errlen)
{
    if (!opts || !opts->jwks_file || !*opts->jwks_file) {
        snprintf(err, errlen, "--jwks: the JWKS file of the token issuer's keys is required");
        return NULL;
    }
    if (!opts->issuer || !*opts->issuer) {
        snprintf(err, errlen,
                 "--issuer: the issuer whose tokens are accepted is required "
                 "(e.g. https://maskinporten.no/)");
        return NULL;
    }
    if (!opts->audience || !*opts->audience) {
        snprintf(err, errlen, "--audience: the audience tokens must be made for is required");
        return NULL;
    }
    if (!s_header_safe(opts->issuer) || !s_header_safe(opts->audience)) {
        snprintf(err, errlen, "--%s: at most 255 printable ASCII characters without \" or \\",
                 s_header_safe(opts->issuer) ? "audience" : "issuer");
        return NULL;
    }
    if (opts->leeway_s < 0 || opts->leeway_s > SAM_JWT_MAX_LEEWAY_S) {
        snprintf(err, errlen, "leeway: %d s is outside 0 to %d s", opts->leeway_s,
                 SAM_JWT_MAX_LEEWAY_S);
        return NULL;
    }
    sam_jwt_verifier_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->leeway_s = opts->leeway_s;
    pthread_mutex_init(&self->lock, NULL);
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium cannot be initialised");
        sam_jwt_verifier_destroy(&self);
        return NULL;
    }
    randombytes_buf(self->cache_key, sizeof self->cache_key);
    if (!(self->cache = calloc(S_CACHE_SLOTS, sizeof *self->cache))) {
        snprintf(err, errlen, "out of memory");
        sam_jwt_verifier_destroy(&self);
        return NULL;
    }
    const char *algs = opts->algs && *opts->algs ? opts->algs : "RS256,ES256";
    for (const char *p = algs; *p;) {
        size_t n = strcspn(p, ",");
        if (n == 5 && strncmp(p, "RS256", 5) == 0)
            self->algs |= S_RS256;
        else if (n == 5 && strncmp(p, "ES256", 5) == 0)
            self->algs |= S_ES256;
        else {
            snprintf(err, errlen, "algorithms: '%.*s' is not RS256 or ES256",
                     (int)(n < 32 ? n : 32), p);
            sam_jwt_verifier_destroy(&self);
            return NULL;
        }
        p += n + (p[n] == ',');
    }
    self->issuer = strdup(opts->issuer);
    self->audience = strdup(opts->audience);
    if (!self->issuer || !self->audience) {
        snprintf(err, errlen, "out of memory");
        sam_jwt_verifier_destroy(&self);
        return NULL;
    }
    if (s_load_jwks(self, opts->jwks_file, err, errlen) != 0) sam_jwt_verifier_destroy(&self);
    return self;
}

void sam_jwt_verifier_destroy(sam_jwt_verifier_t **self_p)
{
    if (!self_p || !*self_p) return;
    sam_jwt_verifier_t *self = *self_p;
    for (size_t i = 0; i < self->nkeys; i++)
        EVP_PKEY_free(self->keys[i].pkey);
    free(self->issuer);
    free(self->audience);
    free(self->cache);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

size_t sam_jwt_verifier_keys(const sam_jwt_verifier_t *self)
{
    return self ? self->nkeys : 0;
}

/* ---- verification ------------------------------------------------------------------------- */

/* Whether sig (as the JWS carries it) signs `data` with `key`. */
static bool s_signature_ok(const s_key_t *key, const char *data, size_t len, const uint8_t *sig,
                           size_t siglen)
{
    uint8_t *der = NULL;
    int derlen = 0;
    if (key->kind == S_ES256) {
        if (siglen != 64) return false;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
        if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
            BN_free(r);
            BN_free(s);
            ECDSA_SIG_free(es);
            return false;
        }
        derlen = i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);
        if (derlen <= 0) return false;
        sig = der;
        siglen = (size_t)derlen;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
              EVP_DigestVerify(md, sig, siglen, (const uint8_t *)data, len) == 1;
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    return ok;
}

static bool s_audience_ok(json_t *aud, const char *want)
{
    if (json_is_string(aud)) return strcmp(json_string_value(aud), want) == 0;
    size_t i;
    json_t *one;
    json_array_foreach(aud, i, one) if (json_is_string(one) &&
                                        strcmp(json_string_value(one), want) == 0) return true;
    return false;
}

/* Maskinporten's consumer: {"authority": "iso6523-actorid-upis", "ID": "0192:NNNNNNNNN"}. */
static bool s_consumer(json_t *consumer, char out[16])
{
    const char *authority = json_string_value(json_object_get(consumer, "authority"));
    const char *id = json_string_value(json_object_get(consumer, "ID"));
    if (!authority || strcmp(authority, "iso6523-actorid-upis") != 0 || !id ||
        strncmp(id, "0192:", 5) != 0 || strlen(id) != 14)
        return false;
    for (int i = 5; i < 14; i++)
        if (id[i] < '0' || id[i] > '9') return false;
    memcpy(out, id + 5, 9);
    out[9] = 0;
    return true;
}

/*  The times of a token against the clock now, with the leeway: the checks a remembered
    token goes through again at every use. */
static sam_jwt_error_t s_times(const sam_jwt_verifier_t *self, const s_cached_t *t, char *why,
                               size_t whylen)
{
    int64_t now = sam_clock_now_ms() / 1000, leeway = self->leeway_s;
    if (now > t->exp + leeway) {
        snprintf(why, whylen, "the token expired %" PRId64 " s ago", now - t->exp);
        return SAM_JWT_EXPIRED;
    }
    if (t->has_nbf && t->nbf > now + leeway) {
        snprintf(why, whylen, "the token is not valid for another %" PRId64 " s", t->nbf - now);
        return SAM_JWT_NOT_YET;
    }
    if (t->has_iat && t->iat > now + leeway) {
        snprintf(why, whylen, "the token says it was issued %" PRId64 " s from now", t->iat - now);
        return SAM_JWT_IAT;
    }
    return SAM_JWT_OK;
}

/* The claims of a token whose signature verified, into *t (its times and claims). */
static sam_jwt_error_t s_claims(sam_jwt_verifier_t *self, json_t *payload, s_cached_t *t, char *why,
                                size_t whylen)
{
    sam_jwt_claims_t *out = &t->claims;
    json_t *iss = json_object_get(payload, "iss");
    if (!json_is_string(iss) || strcmp(json_string_value(iss), self->issuer) != 0) {
        snprintf(why, whylen, "the token is not issued by %s", self->issuer);
        return SAM_JWT_ISSUER;
    }
    json_t *aud = json_object_get(payload, "aud");
    if (!s_audience_ok(aud, self->audience)) {
        snprintf(why, whylen, "the token is not for the audience %s", self->audience);
        return SAM_JWT_AUDIENCE;
    }
    if (!s_seconds(json_object_get(payload, "exp"), &t->exp)) {
        snprintf(why, whylen, "the token has no exp (expiry) as a number");
        return SAM_JWT_EXPIRED;
    }
    json_t *claim = json_object_get(payload, "nbf");
    t->has_nbf = claim != NULL;
    if (claim && !s_seconds(claim, &t->nbf)) {
        snprintf(why, whylen, "the token's nbf is not a number");
        return SAM_JWT_MALFORMED;
    }
    claim = json_object_get(payload, "iat");
    t->has_iat = claim != NULL;
    if (claim && !s_seconds(claim, &t->iat)) {
        snprintf(why, whylen, "the token's iat is not a number");
        return SAM_JWT_MALFORMED;
    }
    if (t->has_iat && t->iat > t->exp) {
        snprintf(why, whylen, "the token expires before it was issued");
        return SAM_JWT_IAT;
    }
    sam_jwt_error_t rc = s_times(self, t, why, whylen);
    if (rc != SAM_JWT_OK) return rc;
    claim = json_object_get(payload, "consumer");
    out->consumer[0] = 0;
    if (claim && !s_consumer(claim, out->consumer)) {
        snprintf(why, whylen,
                 "the token's consumer is not an iso6523-actorid-upis organisation number "
                 "(0192: and nine digits)");
        return SAM_JWT_CONSUMER;
    }
    claim = json_object_get(payload, "scope");
    const char *scope = json_string_value(claim);
    if ((claim && !scope) || (scope && strlen(scope) >= sizeof out->scope)) {
        snprintf(why, whylen, "the token's scope is not a string of at most %zu bytes",
                 sizeof out->scope - 1);
        return SAM_JWT_MALFORMED;
    }
    snprintf(out->scope, sizeof out->scope, "%s", scope ? scope : "");
    const char *client = json_string_value(json_object_get(payload, "client_id"));
    snprintf(out->client_id, sizeof out->client_id, "%s",
             s_plain(client, sizeof out->client_id - 1) ? client : "");
    out->exp = t->exp;
    return SAM_JWT_OK;
}

/*  A token verified before: true with *claims filled, or with the time error in *rc, when
    its hash `key` is remembered. */
static bool s_remembered(sam_jwt_verifier_t *self, const uint8_t *key, sam_jwt_claims_t *claims,
                         sam_jwt_error_t *rc, char *why, size_t whylen)
{
    s_cached_t *slot = &self->cache[(key[0] | (size_t)key[1] << 8) % S_CACHE_SLOTS];
    bool hit = false;
    pthread_mutex_lock(&self->lock);
    if (slot->used && sodium_memcmp(slot->key, key, S_CACHE_KEY) == 0) {
        hit = true;
        *rc = s_times(self, slot, why, whylen);
        if (*rc == SAM_JWT_OK) *claims = slot->claims;
    }
    pthread_mutex_unlock(&self->lock);
    return hit;
}

static void s_remember(sam_jwt_verifier_t *self, const uint8_t *key, const s_cached_t *t)
{
    s_cached_t *slot = &self->cache[(key[0] | (size_t)key[1] << 8) % S_CACHE_SLOTS];
    pthread_mutex_lock(&self->lock);
    *slot = *t;
    memcpy(slot->key, key, S_CACHE_KEY);
    slot->used = true;
    pthread_mutex_unlock(&self->lock);
}

sam_jwt_error_t sam_jwt_verify(sam_jwt_verifier_t *self, const char *token, size_t len,
                               sam_jwt_claims_t *claims, char *why, size_t whylen)
{
    memset(claims, 0, sizeof *claims);
    if (len == 0 || len > SAM_JWT_MAX_TOKEN) {
        snprintf(why, whylen, "the token is empty or longer than %d bytes", SAM_JWT_MAX_TOKEN);
        return SAM_JWT_MALFORMED;
    }
    uint8_t hash[S_CACHE_KEY];
    crypto_generichash(hash, sizeof hash, (const uint8_t *)token, len, self->cache_key,
                       sizeof self->cache_key);
    sam_jwt_error_t known;
    if (s_remembered(self, hash, claims, &known, why, whylen)) {
        if (known != SAM_JWT_OK) memset(claims, 0, sizeof *claims);
        return known;
    }
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    const char *end = token + len;
    if (!dot1 || !dot2 || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1))) {
        snprintf(why, whylen, "the token is not three base64url parts separated by dots");
        return SAM_JWT_MALFORMED;
    }
    json_t *header = s_b64_json(token, (size_t)(dot1 - token));
    json_t *payload = header ? s_b64_json(dot1 + 1, (size_t)(dot2 - dot1 - 1)) : NULL;
    size_t siglen = 0;
    uint8_t *sig = payload ? s_b64url(dot2 + 1, (size_t)(end - dot2 - 1), &siglen) : NULL;
    sam_jwt_error_t rc = SAM_JWT_OK;
    if (!header || !payload || !sig) {
        snprintf(why, whylen, "the token's %s",
                 !header    ? "header is not base64url of a JSON object"
                 : !payload ? "payload is not base64url of a JSON object"
                            : "signature is not base64url without padding");
        rc = SAM_JWT_MALFORMED;
        goto done;
    }
    const char *alg = json_string_value(json_object_get(header, "alg"));
    s_alg_t kind = alg && strcmp(alg, "RS256") == 0   ? S_RS256
                   : alg && strcmp(alg, "ES256") == 0 ? S_ES256
                                                      : 0;
    if (!kind || !(self->algs & kind)) {
        snprintf(why, whylen, "the token's alg %s is not accepted (accepted: %s%s%s)",
                 s_plain(alg, 16) ? alg : "(missing or not shown)",
                 self->algs & S_RS256 ? "RS256" : "", self->algs == (S_RS256 | S_ES256) ? ", " : "",
                 self->algs & S_ES256 ? "ES256" : "");
        rc = SAM_JWT_ALG;
        goto done;
    }
    if (json_object_get(header, "crit")) {
        snprintf(why, whylen,
                 "the token names critical header extensions, which are not known "
                 "here");
        rc = SAM_JWT_MALFORMED;
        goto done;
    }
    const char *kid = json_string_value(json_object_get(header, "kid"));
    const s_key_t *key = NULL;
    for (size_t i = 0; kid && i < self->nkeys; i++)
        if (strcmp(self->keys[i].kid, kid) == 0) key = &self->keys[i];
    if (!key) {
        snprintf(why, whylen, "the token's kid %s names no key of the configured JWKS",
                 s_plain(kid, 64) ? kid : "(missing or not shown)");
        rc = SAM_JWT_KEY;
        goto done;
    }
    if (key->kind != kind) {
        snprintf(why, whylen, "the key %s is not a key for %s", key->kid, alg);
        rc = SAM_JWT_KEY;
        goto done;
    }
    if (!s_signature_ok(key, token, (size_t)(dot2 - token), sig, siglen)) {
        snprintf(why, whylen, "the token's signature does not verify with the key %s", key->kid);
        rc = SAM_JWT_SIGNATURE;
        goto done;
    }
    s_cached_t checked = {0};
    rc = s_claims(self, payload, &checked, why, whylen);
    if (rc == SAM_JWT_OK) {
        snprintf(checked.claims.kid, sizeof checked.claims.kid, "%s", key->kid);
        *claims = checked.claims;
        s_remember(self, hash, &checked);
    }
done:
    free(sig);
    json_decref(payload);
    json_decref(header);
    if (rc != SAM_JWT_OK) memset(claims, 0, sizeof *claims);
    return rc;
}

bool sam_jwt_has_scope(const char *scopes, const char *scope)
{
    size_t want = scope ? strlen(scope) : 0;
    if (!scopes || want == 0) return false;
    for (const char *p = scopes; *p;) {
        size_t n = strcspn(p, " ");
        if (n == want && strncmp(p, scope, n) == 0) return true;
        p += n;
        while (*p == ' ')
            p++;
    }
    return false;
}

/* ---- self-test ---------------------------------------------------------------------------- */

#define S_CHECK(cond) ((void)(SAM_CHECK(cond) || failed++))

static char *s_b64enc(const uint8_t *bin, size_t len)
{
    size_t size = sodium_base64_encoded_len(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *text = malloc(size);
    if (text) sodium_bin2base64(text, size, bin, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return text;
}

static char *s_b64bn(EVP_PKEY *pkey, const char *param, int pad)
{
    BIGNUM *bn = NULL;
    if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1) return NULL;
    uint8_t bin[1024];
    int n = pad ? BN_bn2binpad(bn, bin, pad) : BN_bn2bin(bn, bin);
    BN_free(bn);
    return n > 0 ? s_b64enc(bin, (size_t)n) : NULL;
}

/* header.payload signed with pkey (RS256 or, for an EC key, ES256 as r||s); malloc'd. */
static char *s_sign(EVP_PKEY *pkey, const char *header, const char *payload)
{
    char *h = s_b64enc((const uint8_t *)header, strlen(header));
    char *p = s_b64enc((const uint8_t *)payload, strlen(payload));
    size_t dlen = strlen(h) + strlen(p) + 1;
    char *data = malloc(dlen + 1);
    snprintf(data, dlen + 1, "%s.%s", h, p);
    free(h);
    free(p);
    uint8_t sig[1024], rs[64];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) != 1 ||
        EVP_DigestSign(md, sig, &siglen, (uint8_t *)data, dlen) != 1)
        siglen = 0;
    EVP_MD_CTX_free(md);
    const uint8_t *out = sig;
    if (EVP_PKEY_is_a(pkey, "EC")) {
        const uint8_t *der = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &der, (long)siglen);
        BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, 32);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + 32, 32);
        ECDSA_SIG_free(es);
        out = rs;
        siglen = 64;
    }
    char *s = s_b64enc(out, siglen);
    char *token = malloc(dlen + strlen(s) + 2);
    sprintf(token, "%s.%s", data, s);
    free(data);
    free(s);
    return token;
}

/* The claims of a test token, valid from now - 10 s for `life` s, for audience `aud`. */
static char *s_payload(const char *iss, const char *aud, int64_t from, int64_t life)
{
    char *text = malloc(1024);
    snprintf(text, 1024,
             "{\"iss\":\"%s\",\"aud\":%s,\"iat\":%" PRId64 ",\"nbf\":%" PRId64 ",\"exp\":%" PRId64
             ",\"scope\":\"samordna:write samordna:read\",\"client_id\":\"nav-system\","
             "\"consumer\":{\"authority\":\"iso6523-actorid-upis\",\"ID\":\"0192:889640782\"}}",
             iss, aud, from, from, from + life);
    return text;
}

static sam_jwt_error_t s_try(sam_jwt_verifier_t *v, const char *token, sam_jwt_claims_t *c,
                             bool verbose)
{
    char why[512];
    sam_jwt_error_t rc = sam_jwt_verify(v, token, strlen(token), c, why, sizeof why);
    if (verbose) printf("  %s: %s\n", sam_jwt_strerror(rc), rc ? why : "");
    return rc;
}

int sam_jwt_selftest(const char *scratch, bool verbose)
{
    int failed = 0;
    char err[512], path[1024], text[8192];
    mkdir(scratch, 0700);
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"); /* in no JWKS */
    S_CHECK(rsa && ec && other);
    if (!rsa || !ec || !other) return -1;
    char *n = s_b64bn(rsa, OSSL_PKEY_PARAM_RSA_N, 0), *e = s_b64bn(rsa, OSSL_PKEY_PARAM_RSA_E, 0);
    char *x = s_b64bn(ec, OSSL_PKEY_PARAM_EC_PUB_X, 32),
         *y = s_b64bn(ec, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
    snprintf(text, sizeof text,
             "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"rsa-1\",\"use\":\"sig\",\"alg\":\"RS256\","
             "\"n\":\"%s\",\"e\":\"%s\"},{\"kty\":\"EC\",\"kid\":\"ec-1\",\"crv\":\"P-256\","
             "\"x\":\"%s\",\"y\":\"%s\"}]}",
             n, e, x, y);
    snprintf(path, sizeof path, "%s/jwks.json", scratch);
    FILE *f = fopen(path, "w");
    S_CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0);

    const char *iss = "https://test.maskinporten.no/", *aud = "https://samordna.example/";
    sam_jwt_opts_t opts = {path, iss, aud, NULL, 30};
    sam_jwt_verifier_t *v = sam_jwt_verifier_new(&opts, err, sizeof err);
    S_CHECK(v && sam_jwt_verifier_keys(v) == 2);
    if (!v) {
        fprintf(stderr, "sam_jwt_selftest: %s\n", err);
        return -1;
    }
    sam_clock_set("2026-03-02T10:00");
    int64_t now = sam_clock_now_ms() / 1000;
    sam_jwt_claims_t c;
    char aud_json[256];
    snprintf(aud_json, sizeof aud_json, "\"%s\"", aud);
    const char *rs = "{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"typ\":\"JWT\"}";
    const char *es = "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}";

    /* good RS256 and ES256, aud as a string or in an array */
    char *payload = s_payload(iss, aud_json, now - 10, 120);
    char *token = s_sign(rsa, rs, payload);
    S_CHECK(s_try(v, token, &c, verbose) == SAM_JWT_OK);
    S_CHECK(strcmp(c.consumer, "889640782") == 0 && strcmp(c.kid, "rsa-1") == 0);
    S_CHECK(strcmp(c.client_id, "nav-system") == 0 && c.exp == now + 110);
    S_CHECK(sam_jwt_has_scope(c.scope, "samordna:write"));
    /* a token used again is remembered, and its times are checked at every use */
    sam_jwt_claims_t again;
    S_CHECK(s_try(v, token, &again, false) == SAM_JWT_OK && memcmp(&again, &c, sizeof c) == 0);
    sam_clock_set("2026-03-02T10:05");
    S_CHECK(s_try(v, token, &again, verbose) == SAM_JWT_EXPIRED && again.consumer[0] == 0);
    sam_clock_set("2026-03-02T10:00");
    S_CHECK(s_try(v, token, &again, false) == SAM_JWT_OK && strcmp(again.kid, "rsa-1") == 0);
    S_CHECK(sam_jwt_has_scope(c.scope, "samordna:read"));
    S_CHECK(!sam_jwt_has_scope(c.scope, "samordna:admin"));
    S_CHECK(!sam_jwt_has_scope(c.scope, "samordna"));
    /* tampered payload: the signature of the first with another payload */
    char *p2 = s_payload(iss, aud_json, now - 10, 100000);
    char *t2 = s_sign(rsa, rs, p2);
    char *dot = strchr(token, '.'), *dot2 = strchr(dot + 1, '.'), *d2 = strchr(t2, '.');
    snprintf(text, sizeof text, "%.*s.%.*s%s", (int)(dot - token), token,
             (int)(strchr(d2 + 1, '.') - d2 - 1), d2 + 1, dot2);
    S_CHECK(s_try(v, text, &c, verbose) == SAM_JWT_SIGNATURE);
    S_CHECK(c.consumer[0] == 0);
    free(t2);
    free(p2);
    /* alg none, and an HMAC: refused before any key is looked at */
    snprintf(text, sizeof text, "%s.%.*s.", "eyJhbGciOiJub25lIn0", (int)(dot2 - dot - 1), dot + 1);
    S_CHECK(s_try(v, text, &c, verbose) == SAM_JWT_ALG);
    t2 = s_sign(rsa, "{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}", payload);
    S_CHECK(s_try(v, t2, &c, verbose) == SAM_JWT_ALG);
    free(t2);
    free(token);

    token = s_sign(ec, es, payload);
    S_CHECK(s_try(v, token, &c, verbose) == SAM_JWT_OK);
    free(token);
    free(payload);
    snprintf(aud_json, sizeof aud_json, "[\"https://other.example/\",\"%s\"]", aud);
    payload = s_payload(iss, aud_json, now - 10, 120);
    token = s_sign(ec, es, payload);
    S_CHECK(s_try(v, token, &c, verbose) == SAM_JWT_OK);
    free(token);
    /* a key of the wrong type for the alg, an unknown kid, a key in no JWKS */
    token = s_sign(ec, "{\"alg\":\"RS256\",\"kid\":\"ec-1\"}", payload);
    S_CHECK(s_try(v, token, &c, verbose) == SAM_JWT_KEY);
    free(token);
    token = s_sign(ec, "{\"alg\":\"ES256\",\"kid\":\"ec-9\"}", payload);
    S_CHECK(s_try(v, token, &c, verbose) == SAM_JWT_KEY);
    free(token);
    token = s_sign(other, es, payload);
    S_CHECK(s_try(v, token, &c, verbose) == SAM_JWT_SIGNATURE);
    free(token);
    free(payload);

    /* wrong audience, wrong issuer */
    payload = s_payload(iss, "\"https://other.example/\"", now - 10, 120);
    token = s_sign(ec, es, payload);
    S_CHECK(s_try(v, token, &c, verbose) == SAM_JWT_AUDIENCE);
    free(token);
    free(payload);
    snprintf(aud_json, sizeof aud_json, "\"%s\"", aud);
    payload = s_payload("https://maskinporten.no/", aud_json, now - 10, 120);
    token = s_sign(ec, es, payload);
    S_CHECK(s_try(v, token, &c, verbose) == SAM_JWT_ISSUER);
    free(token);
    free(payload);

    /* expired (past the leeway, and just inside it), not yet valid, issued in the future */
    payload = s_payload(iss, aud_json, now - 200, 120);
    token = s_sign(ec, es, payload);
    S_CHECK(s_try(v, token, &c, verbose) == SAM_JWT_EXPIRED);
    free(token);
    free(payload);
    payload = s_payload(iss, aud_json, now - 140, 120);
    token = s_sign(ec, es, payload);
    S_CHECK(s_try(v, token, &c, verbose) == SAM_JWT_OK);
    free(token);
    free(payload);
    payload = s_payload(iss, aud_json, now + 600, 120);
    token = s_sign(ec, es, payload);
    S_CHECK(s_try(v, token, &c, verbose) == SAM_JWT_NOT_YET);
    free(token);
    free(payload);
    snprintf(text, sizeof text,
             "{\"iss\":\"%s\",\"aud\":\"%s\",\"iat\":%" PRId64 ",\"exp\":%" PRId64 "}", iss, aud,
             now + 600, now + 700);
    token = s_sign(ec, es, text);
    S_CHECK(s_try(v, token, &c, verbose) == SAM_JWT_IAT);
    free(token);
    snprintf(text, sizeof text, "{\"iss\":\"%s\",\"aud\":\"%s\"}", iss, aud);
    token = s_sign(ec, es, text);
    S_CHECK(s_try(v, token, &c, verbose) == SAM_JWT_EXPIRED); /* no exp at all */
    free(token);
    snprintf(text, sizeof text,
             "{\"iss\":\"%s\",\"aud\":\"%s\",\"exp\":%" PRId64 ",\"consumer\":{\"authority\":"
             "\"iso6523-actorid-upis\",\"ID\":\"0192:88964078\"}}",
             iss, aud, now + 60);
    token = s_sign(ec, es, text);
    S_CHECK(s_try(v, token, &c, verbose) == SAM_JWT_CONSUMER);
    free(token);
    snprintf(text, sizeof text, "{\"iss\":\"%s\",\"aud\":\"%s\",\"exp\":%" PRId64 ",\"exp\":1}",
             iss, aud, now + 60);
    token = s_sign(ec, es, text);
    S_CHECK(s_try(v, token, &c, verbose) == SAM_JWT_MALFORMED); /* duplicate names */
    free(token);

    /* malformed shapes */
    const char *bad[] = {"",
                         "abc",
                         "a.b",
                         "a.b.c.d",
                         "!!.e30.",
                         "e30.e30.",
                         "W10.e30.",
                         "eyJhbGciOiJSUzI1NiJ9=.e30.",
                         "eyJhbGciOiJSUzI1NiJ9.e30.++"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        S_CHECK(s_try(v, bad[i], &c, verbose) == SAM_JWT_MALFORMED ||
                s_try(v, bad[i], &c, false) == SAM_JWT_ALG);
    S_CHECK(s_try(v, "e30.e30.", &c, false) == SAM_JWT_ALG); /* {} has no alg */
    S_CHECK(s_try(v, "a.b", &c, false) == SAM_JWT_MALFORMED);
    S_CHECK(s_try(v, "W10.e30.", &c, false) == SAM_JWT_MALFORMED); /* [] is not an object */

    /* only the configured algorithms */
    sam_jwt_verifier_destroy(&v);
    opts.algs = "RS256";
    v = sam_jwt_verifier_new(&opts, err, sizeof err);
    payload = s_payload(iss, aud_json, now - 10, 120);
    token = s_sign(ec, es, payload);
    S_CHECK(v && s_try(v, token, &c, verbose) == SAM_JWT_ALG);
    free(token);
    free(payload);
    sam_jwt_verifier_destroy(&v);
    S_CHECK(v == NULL);

    /* configuration refused with the reason */
    opts.algs = "HS256";
    S_CHECK(!sam_jwt_verifier_new(&opts, err, sizeof err) && strstr(err, "HS256"));
    opts.algs = NULL;
    opts.leeway_s = 3600;
    S_CHECK(!sam_jwt_verifier_new(&opts, err, sizeof err) && strstr(err, "leeway"));
    opts.leeway_s = 30;
    opts.issuer = "";
    S_CHECK(!sam_jwt_verifier_new(&opts, err, sizeof err) && strstr(err, "--issuer"));
    opts.issuer = iss;
    const char *jwks_bad[] = {
        "not json", "{\"keys\":[]}", "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"AA\"}]}",
        "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"e\",\"crv\":\"P-256\",\"x\":"
        "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\",\"y\":"
        "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}]}",
        "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}"};
    const char *jwks_why[] = {"line 1", "non-empty", "kty", "not a point", "bits"};
    for (size_t i = 0; i < sizeof jwks_bad / sizeof jwks_bad[0]; i++) {
        f = fopen(path, "w");
        S_CHECK(f && fputs(jwks_bad[i], f) >= 0 && fclose(f) == 0);
        S_CHECK(!sam_jwt_verifier_new(&opts, err, sizeof err) && strstr(err, jwks_why[i]));
        if (verbose) printf("  jwks refused: %s\n", err);
    }
    snprintf(
        text, sizeof text,
        "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"d\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"},"
        "{\"kty\":\"EC\",\"kid\":\"d\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}",
        x, y, x, y);
    f = fopen(path, "w");
    S_CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0);
    S_CHECK(!sam_jwt_verifier_new(&opts, err, sizeof err) && strstr(err, "twice"));
    sam_clock_set(NULL);
    free(n);
    free(e);
    free(x);
    free(y);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(other);
    if (verbose) printf("sam_jwt_selftest: %s\n", failed ? "FAILED" : "OK");
    return failed ? -1 : 0;
}
