/*  registry_selftest — the registry's field rules and its paged scan, without a broker.

    Runs every syntax rule of registry_check.h on good and bad values (each refusal must name
    its field), the enum words both ways, and registry_page() over a scratch store: pages in
    key order, the token of a full page, a filter, and a token that is no longer a key.
    Writes only under $SAMORDNA_TESTDATA (or ./testdata).
*/
#include "registry_check.h"
#include "registry_store.h"
#include "sam_testkit.h"

#include "samordna/v1/registry.pb-c.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK SAM_CHECK /* sam_testkit.h */

/* A refusal of rc with a message starting with field. */
static bool s_refused(int rc, const sam_reply_t *r, const char *field)
{
    return rc == -1 && r->code == SAM_BAD_REQUEST && strncmp(r->message, field, strlen(field)) == 0;
}

static void s_check_rules(void)
{
    sam_reply_t r = {0};
    CHECK(registry_check_id(&r, "a.id", "nav-ost-viken", true) == 0);
    CHECK(registry_check_id(&r, "a.id", "", false) == 0);
    CHECK(s_refused(registry_check_id(&r, "a.id", "", true), &r, "a.id: required"));
    CHECK(s_refused(registry_check_id(&r, "a.id", "Halden", true), &r, "a.id:"));
    CHECK(s_refused(registry_check_id(&r, "a.id", "a b", true), &r, "a.id:"));
    char long_id[70];
    sam_testkit_fill(long_id, 'a', 65);
    CHECK(s_refused(registry_check_id(&r, "a.id", long_id, true), &r, "a.id:"));
    CHECK(registry_check_id(&r, "a.id", sam_testkit_fill(long_id, 'a', 64), true) == 0);

    CHECK(registry_check_date(&r, "d", "2020-02-29", true) == 0);
    CHECK(s_refused(registry_check_date(&r, "d", "2019-02-29", true), &r, "d:"));
    CHECK(s_refused(registry_check_date(&r, "d", "2019-13-01", true), &r, "d:"));
    CHECK(s_refused(registry_check_date(&r, "d", "2019-1-01", true), &r, "d:"));
    CHECK(s_refused(registry_check_date(&r, "d", "", true), &r, "d: required"));
    CHECK(registry_check_date(&r, "d", "", false) == 0);

    CHECK(registry_check_number(&r, "n", "0101") == 0);
    CHECK(s_refused(registry_check_number(&r, "n", "101"), &r, "n:"));
    CHECK(s_refused(registry_check_number(&r, "n", "01a1"), &r, "n:"));

    CHECK(registry_check_text(&r, "t", "Høgskolen i Østfold", 200, true) == 0);
    CHECK(s_refused(registry_check_text(&r, "t", "abc", 2, true), &r, "t: longer"));
    CHECK(s_refused(registry_check_text(&r, "t", "a\x01", 20, true), &r, "t: control"));
    CHECK(s_refused(registry_check_text(&r, "t", "a\xc3", 20, true), &r, "t: not UTF-8"));
    CHECK(s_refused(registry_check_text(&r, "t", "\xed\xa0\x80", 20, true), &r, "t: not UTF-8"));
    CHECK(registry_check_text(&r, "t", "line\nnext", 20, true) == 0);

    CHECK(registry_check_count(&r, "l", 100, false) == 0);
    CHECK(s_refused(registry_check_count(&r, "l", 101, false), &r, "l:"));
    CHECK(s_refused(registry_check_count(&r, "l", 0, true), &r, "l: required"));

    const ProtobufCEnumDescriptor *kind = &samordna__v1__agency_kind__descriptor;
    CHECK(registry_check_enum(&r, "k", kind, SAMORDNA__V1__AGENCY_KIND__AGENCY_KIND_POLICE) == 0);
    CHECK(s_refused(registry_check_enum(&r, "k", kind, 0), &r, "k: required"));
    CHECK(s_refused(registry_check_enum(&r, "k", kind, 99), &r, "k: unknown"));
    char w[64];
    CHECK(strcmp(registry_enum_word(kind, SAMORDNA__V1__AGENCY_KIND__AGENCY_KIND_COUNTY_GOVERNOR, w,
                                    sizeof w),
                 "county_governor") == 0);
    CHECK(registry_enum_value(kind, "county_governor") ==
          SAMORDNA__V1__AGENCY_KIND__AGENCY_KIND_COUNTY_GOVERNOR);
    CHECK(registry_enum_value(kind, "unspecified") == -1);
    CHECK(registry_enum_value(kind, "spaceship") == -1);
    CHECK(registry_enum_value(&samordna__v1__answer__descriptor, "no") ==
          SAMORDNA__V1__ANSWER__ANSWER_NO);
}

static bool s_match_state(const ProtobufCMessage *rec, const void *arg)
{
    return (int)((const Samordna__V1__Agency *)rec)->kind == *(const int *)arg;
}

static void s_check_pages(void)
{
    const char *base = getenv("SAMORDNA_TESTDATA") ? getenv("SAMORDNA_TESTDATA") : "testdata";
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/registry-selftest", base);
    sam_store_t *store = sam_testkit_store(dir, registry_table_names);
    if (!store) return;
    MDB_dbi dbi = sam_store_dbi(store, "agencies");
    MDB_txn *txn;
    CHECK(sam_store_begin(store, NULL, true, &txn) == 0);
    for (int i = 0; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof id, "a%02d", i);
        Samordna__V1__Agency a = SAMORDNA__V1__AGENCY__INIT;
        a.id = id;
        a.name = id;
        a.kind = i % 2 ? SAMORDNA__V1__AGENCY_KIND__AGENCY_KIND_STATE_REGIONAL
                       : SAMORDNA__V1__AGENCY_KIND__AGENCY_KIND_POLICE;
        CHECK(registry_put(txn, dbi, id, &a.base) == 0);
    }
    CHECK(mdb_txn_commit(txn) == 0);
    CHECK(sam_store_begin(store, NULL, false, &txn) == 0);
    registry_page_t page;
    /* Four, four, two: tokens on full pages only when more follow. */
    CHECK(registry_page(txn, dbi, &samordna__v1__agency__descriptor, "", 4, NULL, NULL, &page) ==
          0);
    CHECK(page.n == 4 && strcmp(page.next, "a03") == 0);
    registry_page_clear(&page);
    CHECK(registry_page(txn, dbi, &samordna__v1__agency__descriptor, "a03", 4, NULL, NULL, &page) ==
          0);
    CHECK(page.n == 4 && strcmp(((Samordna__V1__Agency *)page.items[0])->id, "a04") == 0);
    CHECK(strcmp(page.next, "a07") == 0);
    registry_page_clear(&page);
    CHECK(registry_page(txn, dbi, &samordna__v1__agency__descriptor, "a07", 4, NULL, NULL, &page) ==
          0);
    CHECK(page.n == 2 && page.next[0] == '\0');
    registry_page_clear(&page);
    /* Exactly a page left: no token. */
    CHECK(registry_page(txn, dbi, &samordna__v1__agency__descriptor, "a05", 4, NULL, NULL, &page) ==
          0);
    CHECK(page.n == 4 && page.next[0] == '\0');
    registry_page_clear(&page);
    /* A token that is not a key starts at the next key. */
    CHECK(registry_page(txn, dbi, &samordna__v1__agency__descriptor, "a045", 100, NULL, NULL,
                        &page) == 0);
    CHECK(page.n == 5 && strcmp(((Samordna__V1__Agency *)page.items[0])->id, "a05") == 0);
    registry_page_clear(&page);
    /* A filter: the odd ones, two a page. */
    int state = SAMORDNA__V1__AGENCY_KIND__AGENCY_KIND_STATE_REGIONAL;
    CHECK(registry_page(txn, dbi, &samordna__v1__agency__descriptor, "", 2, s_match_state, &state,
                        &page) == 0);
    CHECK(page.n == 2 && strcmp(page.next, "a03") == 0);
    registry_page_clear(&page);
    CHECK(registry_page(txn, dbi, &samordna__v1__agency__descriptor, "a07", 2, s_match_state,
                        &state, &page) == 0);
    CHECK(page.n == 1 && page.next[0] == '\0');
    registry_page_clear(&page);
    /* A value that is not the expected message is reported, not trusted. */
    mdb_txn_abort(txn);
    CHECK(sam_store_begin(store, NULL, true, &txn) == 0);
    MDB_val k = {3, "zzz"}, v = {3, "\xff\xff\xff"};
    CHECK(mdb_put(txn, dbi, &k, &v, 0) == 0);
    CHECK(registry_page(txn, dbi, &samordna__v1__agency__descriptor, "a09", 10, NULL, NULL,
                        &page) == SAM_STORE_CORRUPT);
    CHECK(page.n == 0 && page.items == NULL);
    mdb_txn_abort(txn);
    sam_store_destroy(&store);
}

int main(void)
{
    s_check_rules();
    s_check_pages();
    return sam_testkit_done("registry_selftest");
}
