/*  sam_status.c — names of the status codes. */
#include "sam_status.h"

const char *sam_status_name(uint32_t code)
{
    switch (code) {
    case SAM_OK:
        return "ok";
    case SAM_BAD_REQUEST:
        return "bad request";
    case SAM_UNAUTHORIZED:
        return "unauthorized";
    case SAM_FORBIDDEN:
        return "forbidden";
    case SAM_NOT_FOUND:
        return "not found";
    case SAM_CONFLICT:
        return "conflict";
    case SAM_TOO_LARGE:
        return "too large";
    case SAM_UNPROCESSABLE:
        return "refused";
    case SAM_BUSY:
        return "busy";
    case SAM_INTERNAL:
        return "internal error";
    case SAM_NOT_IMPLEMENTED:
        return "not implemented";
    case SAM_UNAVAILABLE:
        return "unavailable";
    case SAM_TIMEOUT:
        return "timed out";
    default:
        return "error";
    }
}
