/*  sam_status.h — the status codes of samordna.v1.Status, one number space for every
    service, the broker and the client library. They follow HTTP where one fits, so a
    caller in any language can read them without a table.
*/
#ifndef SAM_STATUS_H
#define SAM_STATUS_H

#include <stdint.h>

enum {
    SAM_OK = 200,
    SAM_BAD_REQUEST = 400,     /* undecodable body, missing or malformed field */
    SAM_UNAUTHORIZED = 401,    /* no identity where one is required */
    SAM_FORBIDDEN = 403,       /* the caller's role or agency may not do this */
    SAM_NOT_FOUND = 404,       /* unknown id */
    SAM_CONFLICT = 409,        /* exists already, or an illegal state transition */
    SAM_TOO_LARGE = 413,       /* message over the size limit */
    SAM_UNPROCESSABLE = 422,   /* valid shape, refused by the current state (overspending …) */
    SAM_BUSY = 429,            /* the broker's queue for the service is full */
    SAM_INTERNAL = 500,        /* the store failed; nothing was written */
    SAM_NOT_IMPLEMENTED = 501, /* unknown method or event type */
    SAM_UNAVAILABLE = 503,     /* no worker for the service within the wait */
    SAM_TIMEOUT = 504,         /* no answer within the caller's timeout */
};

/* A short English name for a status code ("not found"); never NULL. */
const char *sam_status_name(uint32_t code);

#endif
