/*  sam_auth.h — who an HTTP request speaks for: the gateway's bearer-token decision.

    The gateway asks once per request, before anything goes to the broker: here is the
    Authorization header (or none), is this a read or a write? The answer is either a caller
    to present to the services (agency and role, Request.on_behalf), or none (an open read:
    the gateway's own certificate, a reader), or a refusal with its HTTP status and the
    RFC 6750 error for the WWW-Authenticate header:

        no token, where one is needed      401, no error code (RFC 6750 §3.1)
        not "Bearer <token>"               400 invalid_request
        a token sam_jwt refuses            401 invalid_token, the reason as the description
        a consumer the map does not know   401 invalid_token
        no scope that maps to a role       403 insufficient_scope, with the scopes that would do
        a reader's scope for a write       403 insufficient_scope, with the scopes that would do

    The mapping file (JSON, --auth-map; docs/gateway.md "Tokens"):
        {
          "consumers": {"889640782": "nav-ost-viken", "974760673": "fmov"},
          "scopes": {"samordna:admin": "admin", "samordna:write": "publisher",
                     "samordna:read": "reader"},
          "reads": "token"
        }
    `consumers` maps the organisation number of a token's consumer (Maskinporten's
    "0192:<nine digits>") to an agency id; `scopes` maps a scope to admin, publisher or
    reader — a token with several gets the strongest; `reads` is "token" (the default: a
    read needs a token with a mapped scope, e.g. samordna:read) or "open" (a read without
    a token goes through as the gateway's own reader; a read with a token is still checked
    and presented). Any other member, a duplicate name, a value of another form is refused
    when the file is loaded, naming it.
*/
#ifndef SAM_AUTH_H
#define SAM_AUTH_H

#include "sam_jwt.h"

#include <stdbool.h>
#include <stddef.h>

/* The gateway's token options, for its sam_option_t table. */
#define SAM_AUTH_OPTIONS                                                                           \
    {"jwks", "FILE", NULL,                                                                         \
     "the token issuer's signing keys (JWKS: RSA and EC P-256); with --auth-map, --issuer and "    \
     "--audience every /v1 request needs a bearer token",                                          \
     false},                                                                                       \
        {"auth-map", "FILE", NULL,                                                                 \
         "JSON mapping token consumers (organisation numbers) to agencies and scopes to roles "    \
         "(docs/gateway.md, Tokens)",                                                              \
         false},                                                                                   \
        {"issuer", "URL", NULL, "the iss every token must carry, e.g. https://maskinporten.no/",   \
         false},                                                                                   \
        {"audience", "AUD", NULL, "the aud every token must be made for (this gateway)", false},   \
    {                                                                                              \
        "token-leeway-s", "S", "30", "clock skew allowed on a token's exp, nbf and iat (0-300)",   \
            false                                                                                  \
    }

typedef struct sam_auth_t sam_auth_t;

typedef struct {
    sam_jwt_opts_t jwt;   /* the keys, issuer, audience, algorithms and leeway */
    const char *map_file; /* the mapping file above */
} sam_auth_opts_t;

/* The decision on one request. */
typedef struct {
    unsigned status;       /* 0: go on; else 400, 401 or 403 */
    const char *error;     /* RFC 6750 error code, or NULL (a 401 without a token) */
    char description[512]; /* plain text, no token bytes, no `"` or `\` */
    char scope[256];       /* 403: the scopes that would do, space-separated */
    bool present;          /* go on presenting agency and role; false: an open read */
    char agency[65];
    char role[16];
    sam_jwt_claims_t claims; /* what the token said (for the log line), when it verified */
} sam_auth_result_t;

/*  Loads the JWKS and the mapping file. Returns NULL with the reason in err. */
sam_auth_t *sam_auth_new(const sam_auth_opts_t *opts, char *err, size_t errlen);
void sam_auth_destroy(sam_auth_t **self_p);

/*  Decides on a request with this Authorization header value (NULL when there is none)
    that reads (`write` false: GET, HEAD) or writes. Always fills *out; returns out->status. */
unsigned sam_auth_check(sam_auth_t *self, const char *authorization, bool write,
                        sam_auth_result_t *out);

/*  Unit self-test over `scratch` (made when missing); 0 when every check passes. */
int sam_auth_selftest(const char *scratch, bool verbose);

#endif
