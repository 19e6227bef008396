/*  sam_array.h — growing an array by doubling, the one way every module does it.

    An array is a pointer, a count and a capacity the caller keeps; sam_array_grow makes
    room for one more item before the caller stores it. Memory is the caller's (free(*arr)).
*/
#ifndef SAM_ARRAY_H
#define SAM_ARRAY_H

#include <stdlib.h>
#include <string.h>

/*  Makes room for item n (0-based) in the array at *arr_p — a `T **` passed as void * —
    of `elem` bytes an item: when n reaches *cap, the capacity doubles (`first` items when
    it is 0). Returns 0; -1 when out of memory, with the array and *cap as they were. */
static inline int sam_array_grow(void *arr_p, size_t *cap, size_t n, size_t elem, size_t first)
{
    if (n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : first;
    void *old;
    memcpy(&old, arr_p, sizeof old); /* read the caller's T * without punning it */
    void *grown = realloc(old, nc * elem);
    if (!grown) return -1;
    memcpy(arr_p, &grown, sizeof grown);
    *cap = nc;
    return 0;
}

#endif
