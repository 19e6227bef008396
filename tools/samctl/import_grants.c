/*  import_grants.c — the grants section of `samctl import`: schemes, awards, instruments and
    needs of a samordna-fixture/1 file, as no.samordna.grants.* events.

    File shape (every member optional unless marked *; amounts are whole NOK, stored as øre):
      schemes      [{id*, name*, owner*, year*, budget_nok (null: no frame), chapter, item,
                     note}]
      awards       [{id*, scheme*, recipient*, amount_nok*, purpose*, pilot, report_due,
                     decided, funders* [{agency*, amount_nok*}]}]
      instruments  [{id*, agency*, municipality*, year*, kind* (project, programme, advice,
                     position, other), title*, description, pilot, value_nok}]
      needs        [{id*, municipality*, year*, title*, description, pilot}]

    Checks made here, before anything is sent: every amount is a whole number above zero
    (a budget frame, a share, an award) and fits in øre; the funders' shares sum to the
    award; an award's scheme is in the file or already held by grants; a recipient that the
    file registers as a municipality or an agency must be one. The service checks the rest
    (frames, unknown recipients not in the file) and the import reports its refusals.
*/
#include "import.h"

#include "samordna/v1/grants.pb-c.h"

#include <stdio.h>
#include <string.h>

#define SVC "grants"
#define T(noun_verb) "no.samordna.grants." noun_verb
#define S_MAX_NOK (INT64_MAX / 100)

/* True when the file's array `name` holds an object whose "id" is id. */
static bool s_in_file(json_t *root, const char *name, const char *id)
{
    json_t *arr = json_object_get(root, name), *o;
    size_t i;
    if (!json_is_array(arr)) return false;
    json_array_foreach(arr, i, o)
    {
        json_t *v = json_object_get(o, "id");
        if (json_is_string(v) && strcmp(json_string_value(v), id) == 0) return true;
    }
    return false;
}

#define S_NAMED (IMPORT_REQUIRED | IMPORT_ID)

static const import_field_t s_scheme_fields[] = {
    {"id", S_NAMED},
    {"name", IMPORT_REQUIRED},
    {"owner", S_NAMED},
    {"chapter", 0},
    {"item", 0},
    {"note", 0},
    {NULL},
};

static void s_scheme(import_t *imp, json_t *o, const char *path, size_t i, void *root)
{
    (void)i, (void)root;
    Samordna__V1__Scheme s = SAMORDNA__V1__SCHEME__INIT;
    int64_t year = 0, budget = -1;
    if (!import_record(imp, o, path, "id name owner year budget_nok chapter item note", &s.base,
                       s_scheme_fields) ||
        !import_int(imp, o, path, "year", true, 2000, 2100, &year) ||
        !import_int(imp, o, path, "budget_nok", false, 1, S_MAX_NOK, &budget))
        return;
    s.year = (uint32_t)year;
    s.currency = "NOK";
    if (budget > 0) {
        s.has_frame = true;
        s.frame_ore = budget * 100;
    }
    import_define(imp, "scheme", s.id, path);
    import_require(imp, "agency", s.owner, import_path(imp, "%s.owner", path));
    import_event(imp, SVC, T("scheme.created"), s.id, &s.base);
}

static const import_field_t s_award_fields[] = {
    {"id", S_NAMED},          {"scheme", S_NAMED},
    {"recipient", S_NAMED},   {"purpose", IMPORT_REQUIRED},
    {"pilot", IMPORT_ID},     {"report_due", IMPORT_DATE},
    {"decided", IMPORT_DATE}, {NULL},
};

static void s_award(import_t *imp, json_t *o, const char *path, size_t i, void *root)
{
    (void)i;
    Samordna__V1__Award a = SAMORDNA__V1__AWARD__INIT;
    int64_t amount = 0;
    if (!import_record(imp, o, path,
                       "id scheme recipient amount_nok purpose pilot report_due decided funders",
                       &a.base, s_award_fields) ||
        !import_int(imp, o, path, "amount_nok", true, 1, S_MAX_NOK, &amount))
        return;
    a.amount_ore = amount * 100;
    a.currency = "NOK";
    json_t *funders = import_array(imp, o, path, "funders", true), *f;
    if (!funders) return;
    size_t n = json_array_size(funders), j;
    if (n == 0) {
        import_error(imp, import_path(imp, "%s.funders", path), "at least one funder");
        return;
    }
    a.funders = import_alloc(imp, n * sizeof *a.funders);
    Samordna__V1__FunderShare *shares = import_alloc(imp, n * sizeof *shares);
    if (!a.funders || !shares) return;
    int64_t sum = 0;
    bool ok = true;
    json_array_foreach(funders, j, f)
    {
        const char *fp = import_path(imp, "%s.funders[%zu]", path, j);
        int64_t share = 0;
        samordna__v1__funder_share__init(&shares[j]);
        if (!import_object(imp, f, fp, "agency amount_nok") ||
            !(shares[j].agency = (char *)import_str(imp, f, fp, "agency", S_NAMED)) ||
            !import_int(imp, f, fp, "amount_nok", true, 1, S_MAX_NOK, &share)) {
            ok = false;
            continue;
        }
        shares[j].amount_ore = share * 100;
        a.funders[j] = &shares[j];
        if (__builtin_add_overflow(sum, share, &sum)) sum = -1;
        import_require(imp, "agency", shares[j].agency, import_path(imp, "%s.agency", fp));
    }
    if (!ok) return;
    a.n_funders = n;
    if (sum != amount) {
        import_error(imp, import_path(imp, "%s.funders", path),
                     "the shares sum to NOK %lld, the award is NOK %lld", (long long)sum,
                     (long long)amount);
        return;
    }
    import_require(imp, "scheme", a.scheme, import_path(imp, "%s.scheme", path));
    const char *rp = import_path(imp, "%s.recipient", path);
    if (s_in_file(root, "municipalities", a.recipient))
        import_require(imp, "municipality", a.recipient, rp);
    else if (s_in_file(root, "agencies", a.recipient))
        import_require(imp, "agency", a.recipient, rp);
    if (a.pilot[0]) import_require(imp, "pilot", a.pilot, import_path(imp, "%s.pilot", path));
    import_define(imp, "award", a.id, path);
    import_event(imp, SVC, T("award.granted"), a.id, &a.base);
}

static const import_field_t s_instrument_fields[] = {
    {"id", S_NAMED},
    {"agency", S_NAMED},
    {"municipality", S_NAMED},
    {"title", IMPORT_REQUIRED},
    {"description", 0},
    {"pilot", IMPORT_ID},
    {NULL},
};

static void s_instrument(import_t *imp, json_t *o, const char *path, size_t i, void *root)
{
    (void)i, (void)root;
    Samordna__V1__Instrument in = SAMORDNA__V1__INSTRUMENT__INIT;
    int64_t year = 0, value = 0;
    const char *kind;
    if (!import_record(imp, o, path,
                       "id agency municipality year kind title description pilot value_nok",
                       &in.base, s_instrument_fields) ||
        !(kind = import_str(imp, o, path, "kind", IMPORT_REQUIRED)) ||
        !import_int(imp, o, path, "year", true, 2000, 2100, &year) ||
        !import_int(imp, o, path, "value_nok", false, 0, S_MAX_NOK, &value))
        return;
    int k = import_enum(imp, &samordna__v1__instrument_kind__descriptor, kind,
                        import_path(imp, "%s.kind", path));
    if (k <= 0) {
        if (k == 0) import_error(imp, import_path(imp, "%s.kind", path), "a kind is required");
        return;
    }
    in.kind = (Samordna__V1__InstrumentKind)k;
    in.year = (uint32_t)year;
    in.value_ore = value * 100;
    import_require(imp, "agency", in.agency, import_path(imp, "%s.agency", path));
    import_require(imp, "municipality", in.municipality, import_path(imp, "%s.municipality", path));
    if (in.pilot[0]) import_require(imp, "pilot", in.pilot, import_path(imp, "%s.pilot", path));
    import_define(imp, "instrument", in.id, path);
    import_event(imp, SVC, T("instrument.registered"), in.id, &in.base);
}

static const import_field_t s_need_fields[] = {
    {"id", S_NAMED},    {"municipality", S_NAMED}, {"title", IMPORT_REQUIRED},
    {"description", 0}, {"pilot", IMPORT_ID},      {NULL},
};

static void s_need(import_t *imp, json_t *o, const char *path, size_t i, void *root)
{
    (void)i, (void)root;
    Samordna__V1__Need nd = SAMORDNA__V1__NEED__INIT;
    int64_t year = 0;
    if (!import_record(imp, o, path, "id municipality year title description pilot", &nd.base,
                       s_need_fields) ||
        !import_int(imp, o, path, "year", true, 2000, 2100, &year))
        return;
    nd.year = (uint32_t)year;
    import_require(imp, "municipality", nd.municipality, import_path(imp, "%s.municipality", path));
    char key[160];
    snprintf(key, sizeof key, "%s/%u/%s", nd.municipality, nd.year, nd.id);
    import_event(imp, SVC, T("need.recorded"), key, &nd.base);
}

int import_grants(import_t *imp, json_t *root)
{
    import_kind(imp, "scheme", SVC, "grants.schemes.get");
    import_each(imp, root, "schemes", s_scheme, root);
    /* Awards name schemes: those must be stored first. */
    import_barrier(imp);
    import_each(imp, root, "awards", s_award, root);
    import_each(imp, root, "instruments", s_instrument, root);
    import_each(imp, root, "needs", s_need, root);
    return 0;
}
