/*  sam_status.c — names of the status codes, one table. */
#include "sam_status.h"

#include <stddef.h>

static const struct {
    uint32_t code;
    const char *name;
} s_names[] = {
    {SAM_OK, "ok"},
    {SAM_BAD_REQUEST, "bad request"},
    {SAM_UNAUTHORIZED, "unauthorized"},
    {SAM_FORBIDDEN, "forbidden"},
    {SAM_NOT_FOUND, "not found"},
    {SAM_CONFLICT, "conflict"},
    {SAM_TOO_LARGE, "too large"},
    {SAM_UNPROCESSABLE, "refused"},
    {SAM_BUSY, "busy"},
    {SAM_INTERNAL, "internal error"},
    {SAM_NOT_IMPLEMENTED, "not implemented"},
    {SAM_UNAVAILABLE, "unavailable"},
    {SAM_TIMEOUT, "timed out"},
};

const char *sam_status_name(uint32_t code)
{
    for (size_t i = 0; i < sizeof s_names / sizeof s_names[0]; i++)
        if (s_names[i].code == code) return s_names[i].name;
    return "error";
}
