/*  sam_service_rows.h — a service's table from its .def file, for the definition in its
    <service>_main.c, which includes this once:

        #define SAM_SERVICE_DEF_FILE "registry.def"
        #include "sam_service_rows.h"

    and names the rows in its definition with SAM_SERVICE_ROWS (registry_main.c shows one).
    It defines `static const sam_row_t s_rows[]`, one row per line of the .def (Q, W, L and E,
    sam_service.h "The table"), and SAM_SERVICE_ROWS, the definition's .rows and .n_rows.
    The service's folder is on its include path (CMakeLists.txt), where the .def is found.
    The one-letter names live only while the .def is read, so no other code sees them.
*/
#include "sam_service.h"

#ifndef SAM_SERVICE_DEF_FILE
#error "#define SAM_SERVICE_DEF_FILE (the service's .def) before including sam_service_rows.h"
#endif

#define Q SAM_ROW_QUERY
#define W SAM_ROW_WRITING_QUERY
#define L SAM_ROW_LONG_QUERY
#define E SAM_ROW_EVENT
static const sam_row_t s_rows[] = {
#include SAM_SERVICE_DEF_FILE
};
#undef Q
#undef W
#undef L
#undef E

#define SAM_SERVICE_ROWS .rows = s_rows, .n_rows = sizeof s_rows / sizeof s_rows[0]
