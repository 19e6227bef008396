/*  fuzz_jwt — bearer tokens and the files behind them (sam_jwt, sam_auth).

    The first byte picks what the rest is:
      0  a token as it arrives (any bytes) against a JWKS of one RSA and one EC key;
      1  header and payload (two frames, fuzz_input.h) that the target signs with its EC
         key (ES256) before verifying: the fuzzer reaches every claim check with any JSON,
         which a random token never would past the signature;
      2  a JWKS file (sam_jwt_verifier_new);
      3  a mapping file (sam_auth_new), then an Authorization header (the last frame) checked
         against it as a read and as a write.
    The keys are made once at start; their public halves go into a JWKS in the scratch
    folder. The clock is fixed, so an input replays the same way every time.
*/
#include "fuzz_input.h"
#include "sam_auth.h"
#include "sam_clock.h"
#include "sam_jwt.h"

#include <czmq.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

#define S_ISSUER "https://test.maskinporten.no/"
#define S_AUDIENCE "https://samordna.example/"

static char s_jwks[512], s_file[512];
static EVP_PKEY *s_ec;
static sam_jwt_verifier_t *s_verifier;

static void s_b64(const uint8_t *bin, size_t len, char *out, size_t cap)
{
    sodium_bin2base64(out, cap, bin, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void s_bn64(EVP_PKEY *pkey, const char *param, int pad, char *out, size_t cap)
{
    BIGNUM *bn = NULL;
    uint8_t bin[512];
    if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1) abort();
    int n = pad ? BN_bn2binpad(bn, bin, pad) : BN_bn2bin(bn, bin);
    BN_free(bn);
    s_b64(bin, (size_t)n, out, cap);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = fuzz_scratch_dir();
    zsys_dir_create("%s", tmp);
    snprintf(s_jwks, sizeof s_jwks, "%s/samordna-fuzz-jwt-%d.jwks", tmp, (int)getpid());
    snprintf(s_file, sizeof s_file, "%s/samordna-fuzz-jwt-%d.in", tmp, (int)getpid());
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    s_ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!rsa || !s_ec) abort();
    char n[400], e[16], x[64], y[64], text[1024];
    s_bn64(rsa, OSSL_PKEY_PARAM_RSA_N, 0, n, sizeof n);
    s_bn64(rsa, OSSL_PKEY_PARAM_RSA_E, 0, e, sizeof e);
    s_bn64(s_ec, OSSL_PKEY_PARAM_EC_PUB_X, 32, x, sizeof x);
    s_bn64(s_ec, OSSL_PKEY_PARAM_EC_PUB_Y, 32, y, sizeof y);
    EVP_PKEY_free(rsa);
    snprintf(text, sizeof text,
             "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"rsa-1\",\"n\":\"%s\",\"e\":\"%s\"},"
             "{\"kty\":\"EC\",\"kid\":\"ec-1\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}",
             n, e, x, y);
    FILE *f = fopen(s_jwks, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) abort();
    sam_clock_set("2026-03-02T10:00");
    char err[512];
    sam_jwt_opts_t opts = {s_jwks, S_ISSUER, S_AUDIENCE, NULL, 30};
    if (!(s_verifier = sam_jwt_verifier_new(&opts, err, sizeof err))) {
        fprintf(stderr, "fuzz_jwt: %s\n", err);
        abort();
    }
    return 0;
}

static void s_verify(const char *token, size_t len)
{
    sam_jwt_claims_t claims;
    char why[512];
    if (sam_jwt_verify(s_verifier, token, len, &claims, why, sizeof why) == SAM_JWT_OK)
        sam_jwt_has_scope(claims.scope, "samordna:write");
}

/* header.payload signed with the EC key, then verified. */
static void s_signed(fuzz_input_t *in)
{
    size_t hlen, plen;
    const uint8_t *h = fuzz_frame(in, &hlen), *p = fuzz_frame(in, &plen);
    size_t cap = (hlen + plen) * 4 / 3 + 200;
    char *token = malloc(cap);
    if (!token) abort();
    s_b64(h, hlen, token, cap);
    size_t at = strlen(token);
    token[at++] = '.';
    s_b64(p, plen, token + at, cap - at);
    at = strlen(token);
    uint8_t der[128], rs[64];
    size_t derlen = sizeof der;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, s_ec) != 1 ||
        EVP_DigestSign(md, der, &derlen, (uint8_t *)token, at) != 1)
        abort();
    EVP_MD_CTX_free(md);
    const uint8_t *q = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &q, (long)derlen);
    if (!sig) abort();
    BN_bn2binpad(ECDSA_SIG_get0_r(sig), rs, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(sig), rs + 32, 32);
    ECDSA_SIG_free(sig);
    token[at++] = '.';
    s_b64(rs, 64, token + at, cap - at);
    s_verify(token, strlen(token));
    free(token);
}

static void s_jwks_file(void *arg)
{
    (void)arg;
    char err[512];
    sam_jwt_opts_t opts = {s_file, S_ISSUER, S_AUDIENCE, NULL, 30};
    sam_jwt_verifier_t *v = sam_jwt_verifier_new(&opts, err, sizeof err);
    sam_jwt_verifier_destroy(&v);
}

typedef struct {
    const char *header;
} s_map_arg_t;

static void s_map_file(void *arg)
{
    s_map_arg_t *a = arg;
    char err[512];
    sam_auth_opts_t opts = {{s_jwks, S_ISSUER, S_AUDIENCE, NULL, 30}, s_file};
    sam_auth_t *auth = sam_auth_new(&opts, err, sizeof err);
    if (auth) {
        sam_auth_result_t r;
        sam_auth_check(auth, a->header, false, &r);
        sam_auth_check(auth, a->header, true, &r);
    }
    sam_auth_destroy(&auth);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input_t in = {data, size, 0};
    uint8_t mode = fuzz_byte(&in) % 4;
    if (mode == 0) {
        s_verify((const char *)data + in.at, fuzz_left(&in));
    } else if (mode == 1) {
        s_signed(&in);
    } else if (mode == 2) {
        fuzz_file_quietly(s_file, data + in.at, fuzz_left(&in), s_jwks_file, NULL);
    } else {
        size_t mlen, hlen;
        const uint8_t *map = fuzz_frame(&in, &mlen), *h = fuzz_frame(&in, &hlen);
        char *header = malloc(hlen + 1);
        if (!header) abort();
        memcpy(header, h, hlen);
        header[hlen] = 0; /* a header stops at its first NUL, as libmicrohttpd gives it */
        s_map_arg_t arg = {header};
        fuzz_file_quietly(s_file, map, mlen, s_map_file, &arg);
        free(header);
    }
    return 0;
}
