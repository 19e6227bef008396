/*  gw_auth.c — bearer tokens → gw_caller_t: who each HTTP request speaks for.

    The trust chain (docs/security.md): the token's issuer vouches for an organisation and
    its scopes; the gateway verifies the token (sam_jwt, offline against --jwks) and maps the
    organisation to an agency and the scopes to a role (sam_auth, --auth-map); the gateway's
    certificate, of role `gateway`, lets it present that caller to the broker with each
    request (Request.on_behalf); the broker passes it to the service as the Caller with
    via="gateway"; the service applies its own role and ownership checks to it, as to any
    caller. So a publisher token for agency A cannot publish an event of source B: the
    service refuses it 403, exactly as it refuses A's own certificate.

    The decision is taken once per request, when its headers are in (gw_auth_caller, from
    gateway.c), before the body is read: a refused request costs the gateway no body and the
    services nothing. Every /v1/ route is checked, except the two that carry no pilot data
    and must answer without credentials: /v1/healthz (probes) and /v1/openapi.json (the
    description of the API itself). A GET or HEAD is a read, any other method a write.
    Other routes (the board at /) read as the gateway's own certificate: a reader.

    Without the token options the gateway authenticates nobody and listens on loopback only
    (gw_new): every request is the gateway's own certificate, presenting nobody. --insecure
    (loopback only) skips tokens too: every caller is the admin of an insecure broker.
*/
#include "gateway.h"
#include "sam_auth.h"
#include "sam_config.h"
#include "sam_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gw_auth_configure(sam_config_t *config, gw_config_t *cfg)
{
    const char *jwks = sam_config_get(config, "jwks"), *map = sam_config_get(config, "auth-map");
    const char *issuer = sam_config_get(config, "issuer");
    const char *audience = sam_config_get(config, "audience");
    bool ok = true;
    long leeway = sam_config_int(config, "token-leeway-s", 0, SAM_JWT_MAX_LEEWAY_S, &ok);
    cfg->auth = NULL;
    if (!ok) return -1;
    int given = !!jwks + !!map + !!issuer + !!audience;
    if (cfg->insecure) {
        if (given) {
            fprintf(stderr, "samordna-gateway: --insecure skips tokens (every caller is admin); "
                            "--jwks, --auth-map, --issuer and --audience need CURVE to the "
                            "broker (--cert, --server-key) instead\n");
            return -1;
        }
        return 0;
    }
    if (given == 0) return 0; /* callers not authenticated: gw_new allows loopback only */
    if (given < 4) {
        fprintf(stderr,
                "samordna-gateway: bearer tokens need all of --jwks FILE, --auth-map FILE, "
                "--issuer URL and --audience AUD (missing: %s%s%s%s)\n",
                jwks ? "" : "--jwks ", map ? "" : "--auth-map ", issuer ? "" : "--issuer ",
                audience ? "" : "--audience");
        return -1;
    }
    char err[512];
    sam_auth_opts_t opts = {{jwks, issuer, audience, NULL, (int)leeway}, map};
    cfg->auth = sam_auth_new(&opts, err, sizeof err);
    if (!cfg->auth) {
        fprintf(stderr, "samordna-gateway: %s\n", err);
        return -1;
    }
    sam_info("auth.ready jwks=%s auth_map=%s issuer=%s audience=%s leeway_s=%ld", sam_logv(jwks),
             sam_logv(map), sam_logv(issuer), sam_logv(audience), leeway);
    return 0;
}

/* Routes that answer without credentials: they carry no pilot data. The web board (`/`)
   and a briefing's page (`/briefing/…`) carry it and are reads like /v1's: a token, or
   `reads: "open"`. */
static bool s_open_route(const char *path)
{
    return strcmp(path, "/v1/healthz") == 0 || strcmp(path, "/v1/openapi.json") == 0 ||
           strcmp(path, "/board.css") == 0 || strcmp(path, "/board.js") == 0 ||
           strcmp(path, "/board.svg") == 0;
}

/* The WWW-Authenticate challenge of a refusal (RFC 6750 §3). The description and scopes are
   sam_auth's plain text: no `"` or `\` to escape. */
static void s_challenge(gw_request_t *req, const sam_auth_result_t *r)
{
    char value[1024];
    int n = snprintf(value, sizeof value, "Bearer realm=\"samordna\"");
    if (r->error && n > 0 && (size_t)n < sizeof value)
        n += snprintf(value + n, sizeof value - (size_t)n,
                      ", error=\"%s\", error_description=\"%s\"", r->error, r->description);
    if (r->scope[0] && n > 0 && (size_t)n < sizeof value)
        snprintf(value + n, sizeof value - (size_t)n, ", scope=\"%s\"", r->scope);
    gw_add_header(req, "WWW-Authenticate", value);
}

bool gw_auth_caller(gw_request_t *req)
{
    const gw_config_t *cfg = gw_config(req->gw);
    if (cfg->insecure || !cfg->auth) { /* nobody is authenticated: nothing is presented */
        req->caller = (gw_caller_t){"", "admin", cfg->insecure};
        return true;
    }
    req->caller = (gw_caller_t){"", "reader", false}; /* the gateway's own certificate */
    if (s_open_route(req->path)) return true;
    bool write = strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0;
    sam_auth_result_t r;
    if (sam_auth_check(cfg->auth, gw_header(req, "Authorization"), write, &r) == 0) {
        if (r.present) {
            snprintf(req->caller.agency, sizeof req->caller.agency, "%s", r.agency);
            snprintf(req->caller.role, sizeof req->caller.role, "%s", r.role);
            sam_debug("auth.accepted rid=%llu agency=%s role=%s consumer=%s client_id=%s kid=%s",
                      (unsigned long long)req->rid, sam_logv(r.agency), sam_logv(r.role),
                      sam_logv(r.claims.consumer), sam_logv(r.claims.client_id),
                      sam_logv(r.claims.kid));
        }
        return true;
    }
    if (r.claims.kid[0]) /* the token verified: say whose it was, for the operator */
        sam_info("auth.refused rid=%llu status=%u consumer=%s client_id=%s kid=%s scope=%s",
                 (unsigned long long)req->rid, r.status, sam_logv(r.claims.consumer),
                 sam_logv(r.claims.client_id), sam_logv(r.claims.kid), sam_logv(r.claims.scope));
    const char *labels[] = {r.status == 401   ? "401"
                            : r.status == 403 ? "403"
                                              : "400",
                            r.error ? r.error : "none"};
    sam_metric_add(sam_metrics_counter(cfg->metrics, "gateway_auth_refused_total",
                                       "Requests refused for their bearer token, by HTTP status "
                                       "and RFC 6750 error (none: no token).",
                                       "status,error"),
                   labels, 1);
    s_challenge(req, &r);
    const char *type = r.status == 401   ? "unauthorized"
                       : r.status == 403 ? "forbidden"
                                         : "invalid-request";
    const char *title = r.status == 401   ? "Bearer token required or not valid"
                        : r.status == 403 ? "Insufficient scope"
                                          : "Bad Authorization header";
    gw_problem(req, r.status, type, title, NULL, "%s", r.description);
    return false;
}

const sam_caller_as_t *gw_auth_as(const gw_caller_t *caller, sam_caller_as_t *out)
{
    if (!caller || caller->insecure || !caller->agency[0]) return NULL;
    out->agency = caller->agency;
    out->role = caller->role;
    return out;
}
