/*  sam_jwt.h — OAuth2 bearer tokens as signed JWTs, verified offline (Maskinporten style).

    A token is three base64url parts, header.payload.signature (RFC 7519, compact JWS of
    RFC 7515). The verifier holds what an operator configured: the keys (a JWKS file, RFC 7517:
    RSA keys by n and e, EC P-256 keys by x and y), the one issuer and audience it accepts, the
    algorithms (RS256, ES256; never `none` nor an HMAC) and a small leeway for clocks that
    disagree. A token is accepted only when every one of these holds:
      - the three parts decode (base64url without padding) and header and payload are JSON
        objects without duplicate names; no `crit` header (we understand no extension);
      - `alg` is configured, `kid` names a key of the JWKS whose type fits `alg` (an RSA key
        for RS256, a P-256 key for ES256; a key that names its own `alg` only that one), and
        the signature over header.payload verifies with it;
      - `iss` is the configured issuer, `aud` the configured audience (or an array holding it);
      - `exp` is after now, `nbf` (when present) not after now, `iat` (when present) not in
        the future and not after `exp` — each with the leeway;
      - `consumer`, when present, is Maskinporten's {"authority": "iso6523-actorid-upis",
        "ID": "0192:<nine digits>"}; `scope` when present is a string.
    The clock is the programme's wall clock (sam_clock_now_ms), which tests set.

    Every refusal names what was wrong in one line of plain text, never quoting the token
    (safe to put into a WWW-Authenticate header or a problem document as it is).

    A token that verified is remembered (a keyed hash of it, with its claims and times; 1024
    of them, the newest in each slot): its next uses cost a hash instead of a signature (an
    RS256 verification is ~17 µs, ES256 ~60 µs, at every request of a busy gateway), and
    its exp, nbf and iat are checked against the clock again at every use. A verifier may be
    used by several threads at once.
*/
#ifndef SAM_JWT_H
#define SAM_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SAM_JWT_MAX_TOKEN 8192   /* longest token looked at */
#define SAM_JWT_MAX_LEEWAY_S 300 /* the most clock skew an operator may allow */
#define SAM_JWT_DEFAULT_LEEWAY_S 30

typedef enum {
    SAM_JWT_OK = 0,
    SAM_JWT_MALFORMED, /* not three base64url parts of JSON objects, or a claim of wrong type */
    SAM_JWT_ALG,       /* alg none, HS*, or any alg not configured */
    SAM_JWT_KEY,       /* no kid, or kid unknown, or the key does not fit the alg */
    SAM_JWT_SIGNATURE, /* the signature does not verify */
    SAM_JWT_ISSUER,    /* iss missing or another issuer */
    SAM_JWT_AUDIENCE,  /* aud missing or for another audience */
    SAM_JWT_EXPIRED,   /* exp missing or passed */
    SAM_JWT_NOT_YET,   /* nbf in the future */
    SAM_JWT_IAT,       /* iat in the future, or after exp */
    SAM_JWT_CONSUMER   /* consumer present but not a Norwegian organisation number */
} sam_jwt_error_t;

/* A short name of the error ("expired", "unknown key", …). */
const char *sam_jwt_strerror(sam_jwt_error_t error);

typedef struct {
    const char *jwks_file; /* the JWKS, JSON {"keys": [...]} */
    const char *issuer;    /* required: the exact `iss` */
    const char *audience;  /* required: the `aud` this verifier is */
    const char *algs;      /* comma-separated subset of "RS256,ES256"; NULL: both */
    int leeway_s;          /* 0..SAM_JWT_MAX_LEEWAY_S; applied to exp, nbf and iat */
} sam_jwt_opts_t;

/* What a verified token says. */
typedef struct {
    char consumer[16];   /* the organisation number, nine digits; "" when the token has none */
    char scope[1024];    /* the space-separated scopes; "" when none */
    char client_id[128]; /* `client_id` when it is short clean text, else "" (for logs) */
    char kid[128];       /* the key that signed it */
    int64_t exp;         /* seconds since the epoch */
} sam_jwt_claims_t;

typedef struct sam_jwt_verifier_t sam_jwt_verifier_t;

/*  Loads the JWKS file and checks the options. Returns the verifier, or NULL with the reason
    in err (the file unreadable, not JSON, a key without kid, of another type or curve, with
    a bad n/e/x/y or a point not on the curve, two keys of one kid, no keys; an alg that is
    not RS256 or ES256; no issuer or audience; a leeway out of range). */
sam_jwt_verifier_t *sam_jwt_verifier_new(const sam_jwt_opts_t *opts, char *err, size_t errlen);
void sam_jwt_verifier_destroy(sam_jwt_verifier_t **self_p);

/* Number of keys loaded. */
size_t sam_jwt_verifier_keys(const sam_jwt_verifier_t *self);

/*  Verifies the compact token (`len` bytes, need not be NUL-terminated). Returns SAM_JWT_OK
    with *claims filled, or the error with the reason in why (plain text, no token bytes). */
sam_jwt_error_t sam_jwt_verify(sam_jwt_verifier_t *self, const char *token, size_t len,
                               sam_jwt_claims_t *claims, char *why, size_t whylen);

/* True when the space-separated `scopes` hold `scope` as one whole word. */
bool sam_jwt_has_scope(const char *scopes, const char *scope);

/*  Unit self-test: keys made with OpenSSL in the test itself, their JWKS written to a file
    in `scratch` (made when missing); 0 when every check passes. */
int sam_jwt_selftest(const char *scratch, bool verbose);

#endif
