/*  grants_ledger.c — posting journal entries and verifying the books (grants_ledger.h).

    Why a journal and a balances table both: the balances make every check on a write one
    key lookup (what is left of a frame, what is not yet paid), while the journal is the
    evidence. Verification trusts only the journal: it sums it again from the first entry,
    then holds the stored balances, awards and schemes against that sum. A bug that updated
    a balance without a journal line, or an award total without a posting, shows up there.
*/
#include "grants_ledger.h"

#include <czmq.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_entry_line(grants_entry_t *e, const char *account, int64_t amount)
{
    if (e->n >= GRANTS_MAX_POSTINGS || strlen(account) >= GRANTS_ACCOUNT_LEN) {
        e->overflow = true;
        return;
    }
    snprintf(e->lines[e->n].account, GRANTS_ACCOUNT_LEN, "%s", account);
    e->lines[e->n].amount = amount;
    e->n++;
}

void grants_entry_move(grants_entry_t *e, const char *debit, const char *credit, int64_t amount)
{
    if (amount <= 0) {
        e->overflow = amount < 0;
        return;
    }
    s_entry_line(e, debit, amount);
    s_entry_line(e, credit, -amount);
}

void grants_account_budget(char *out, const char *scheme)
{
    snprintf(out, GRANTS_ACCOUNT_LEN, "budget/%s", scheme);
}

void grants_account_appropriation(char *out, const char *scheme)
{
    snprintf(out, GRANTS_ACCOUNT_LEN, "appropriation/%s", scheme);
}

void grants_account_committed(char *out, const char *award, const char *funder)
{
    snprintf(out, GRANTS_ACCOUNT_LEN, "committed/%s/%s", award, funder);
}

void grants_account_paid(char *out, const char *award, const char *funder)
{
    snprintf(out, GRANTS_ACCOUNT_LEN, "paid/%s/%s", award, funder);
}

/* The sign an account's balance must keep: -1 for appropriations, +1 for the rest. */
static int s_account_sign(const char *account)
{
    return strncmp(account, "appropriation/", 14) == 0 ? -1 : 1;
}

static int s_put_balance(grants_t *g, MDB_txn *txn, const char *account, int64_t v)
{
    grants_key_t k = {0};
    grants_key_raw(&k, account);
    Samordna__V1__AccountBalance b = SAMORDNA__V1__ACCOUNT_BALANCE__INIT;
    b.account = (char *)account;
    b.balance_ore = v;
    return grants_put(g, txn, GRANTS_T_BALANCES, &k, &b.base);
}

int grants_ledger_post(grants_t *g, MDB_txn *txn, const sam_event_t *ev, const grants_entry_t *e,
                       char *err, size_t errlen)
{
    if (e->overflow) {
        snprintf(err, errlen, "ledger: entry has too many lines or an account name too long");
        return -1;
    }
    if (e->n == 0) return 0;
    int64_t sum = 0;
    for (size_t i = 0; i < e->n; i++)
        if (__builtin_add_overflow(sum, e->lines[i].amount, &sum)) {
            snprintf(err, errlen, "ledger: entry sum overflows");
            return -1;
        }
    if (sum != 0) {
        snprintf(err, errlen, "ledger: entry does not balance (off by %lld øre)", (long long)sum);
        return -1;
    }
    /* Each line reads its account's balance as the earlier lines left it (LMDB shows the
       transaction its own writes); after[i] is the balance line i leaves behind. */
    int64_t after[GRANTS_MAX_POSTINGS];
    for (size_t i = 0; i < e->n; i++) {
        const grants_line_t *l = &e->lines[i];
        int64_t v = grants_balance(g, txn, l->account);
        if (__builtin_add_overflow(v, l->amount, &v)) {
            snprintf(err, errlen, "ledger: balance of %s overflows", l->account);
            return -1;
        }
        int rc = s_put_balance(g, txn, l->account, v);
        if (rc != 0) {
            snprintf(err, errlen, "ledger: %s", sam_store_strerror(rc));
            return -1;
        }
        after[i] = v;
    }
    /* Invariants on each account's balance after the whole entry (the last line touching
       it): lines on one account may pass through zero on the way. */
    for (size_t i = 0; i < e->n; i++) {
        const grants_line_t *l = &e->lines[i];
        bool last = true;
        for (size_t j = i + 1; j < e->n && last; j++)
            last = strcmp(e->lines[j].account, l->account) != 0;
        if (!last) continue;
        int64_t v = after[i];
        if ((s_account_sign(l->account) > 0 && v < 0) ||
            (s_account_sign(l->account) < 0 && v > 0)) {
            char f[48];
            snprintf(err, errlen, "ledger: %s would be %s NOK", l->account,
                     grants_fmt_ore(v, f, sizeof f));
            return -1;
        }
    }
    Samordna__V1__JournalEntry je = SAMORDNA__V1__JOURNAL_ENTRY__INIT;
    Samordna__V1__Posting posts[GRANTS_MAX_POSTINGS];
    Samordna__V1__Posting *pp[GRANTS_MAX_POSTINGS];
    for (size_t i = 0; i < e->n; i++) {
        samordna__v1__posting__init(&posts[i]);
        posts[i].account = (char *)e->lines[i].account;
        posts[i].amount_ore = e->lines[i].amount;
        pp[i] = &posts[i];
    }
    je.seq = ev->seq;
    je.event_type = ev->ce->type;
    je.event_id = ev->ce->id;
    je.n_postings = e->n;
    je.postings = pp;
    grants_key_t k = {0};
    grants_key_be64(&k, ev->seq);
    int rc = grants_put(g, txn, GRANTS_T_JOURNAL, &k, &je.base);
    if (rc != 0) {
        snprintf(err, errlen, "ledger: journal: %s", sam_store_strerror(rc));
        return -1;
    }
    return 0;
}

/* ---- verification ------------------------------------------------------------------------ */

typedef struct {
    Samordna__V1__LedgerReport *r;
    size_t cap;
} s_problems_t;

static void s_problem(s_problems_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_problem(s_problems_t *p, const char *fmt, ...)
{
    p->r->balanced = false;
    if (p->r->n_problems >= 100) return;
    if (p->r->n_problems == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        char **np = realloc(p->r->problems, cap * sizeof *np);
        if (!np) return;
        p->r->problems = np;
        p->cap = cap;
    }
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *s = strdup(buf);
    if (s) p->r->problems[p->r->n_problems++] = s;
}

static int64_t *s_sum_slot(zhashx_t *sums, const char *account)
{
    int64_t *v = zhashx_lookup(sums, account);
    if (v) return v;
    v = calloc(1, sizeof *v);
    if (!v) return NULL;
    zhashx_insert(sums, account, v);
    return v;
}

static int64_t s_sum_of(zhashx_t *sums, const char *account)
{
    int64_t *v = zhashx_lookup(sums, account);
    return v ? *v : 0;
}

static void s_free_slot(void **item)
{
    free(*item);
    *item = NULL;
}

/* Step 1: the journal alone. */
static int s_verify_journal(grants_t *g, MDB_txn *txn, zhashx_t *sums, s_problems_t *p)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, g->dbi[GRANTS_T_JOURNAL], &cur);
    if (rc) return rc;
    MDB_val k, v;
    __int128 debits = 0, credits = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Samordna__V1__JournalEntry *je =
            samordna__v1__journal_entry__unpack(NULL, v.mv_size, v.mv_data);
        uint64_t seq = k.mv_size == 8 ? sam_be64_get(k.mv_data) : 0;
        if (!je) {
            s_problem(p, "journal entry %llu does not unpack", (unsigned long long)seq);
            continue;
        }
        p->r->entries++;
        __int128 sum = 0;
        for (size_t i = 0; i < je->n_postings; i++) {
            const Samordna__V1__Posting *po = je->postings[i];
            p->r->postings++;
            sum += po->amount_ore;
            if (po->amount_ore > 0)
                debits += po->amount_ore;
            else
                credits -= po->amount_ore;
            int64_t *slot = s_sum_slot(sums, po->account);
            if (!slot || __builtin_add_overflow(*slot, po->amount_ore, slot))
                s_problem(p, "account %s overflows at entry %llu", po->account,
                          (unsigned long long)seq);
        }
        if (sum != 0)
            s_problem(p, "journal entry %llu (%s) does not balance", (unsigned long long)seq,
                      je->event_type);
        samordna__v1__journal_entry__free_unpacked(je, NULL);
    }
    mdb_cursor_close(cur);
    if (debits != credits) s_problem(p, "debits and credits of the journal differ");
    p->r->debits_ore = debits > INT64_MAX ? INT64_MAX : (int64_t)debits;
    p->r->credits_ore = credits > INT64_MAX ? INT64_MAX : (int64_t)credits;
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Step 2: stored balances against the recomputed ones, and every account's sign. */
static int s_verify_balances(grants_t *g, MDB_txn *txn, zhashx_t *sums, s_problems_t *p)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, g->dbi[GRANTS_T_BALANCES], &cur);
    if (rc) return rc;
    zhashx_t *seen = zhashx_new();
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Samordna__V1__AccountBalance *b =
            samordna__v1__account_balance__unpack(NULL, v.mv_size, v.mv_data);
        if (!b) {
            s_problem(p, "a stored balance does not unpack");
            continue;
        }
        p->r->accounts++;
        int64_t want = s_sum_of(sums, b->account);
        char f1[48], f2[48];
        if (want != b->balance_ore)
            s_problem(p, "account %s: stored %s NOK, journal gives %s NOK", b->account,
                      grants_fmt_ore(b->balance_ore, f1, sizeof f1),
                      grants_fmt_ore(want, f2, sizeof f2));
        if (seen) zhashx_insert(seen, b->account, (void *)1);
        samordna__v1__account_balance__free_unpacked(b, NULL);
    }
    mdb_cursor_close(cur);
    for (int64_t *v2 = zhashx_first(sums); v2; v2 = zhashx_next(sums)) {
        const char *acc = zhashx_cursor(sums);
        char f[48];
        if (*v2 != 0 && seen && !zhashx_lookup(seen, acc))
            s_problem(p, "account %s: no stored balance, journal gives %s NOK", acc,
                      grants_fmt_ore(*v2, f, sizeof f));
        if ((s_account_sign(acc) > 0 && *v2 < 0) || (s_account_sign(acc) < 0 && *v2 > 0))
            s_problem(p, "account %s: balance %s NOK has the wrong sign", acc,
                      grants_fmt_ore(*v2, f, sizeof f));
    }
    zhashx_destroy(&seen);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Step 3, per award: its funder totals against the journal. */
static void s_verify_award(const ProtobufCMessage *m, zhashx_t *sums, s_problems_t *p)
{
    const Samordna__V1__Award *a = (const Samordna__V1__Award *)m;
    char acc[GRANTS_ACCOUNT_LEN];
    int64_t total = 0;
    for (size_t i = 0; i < a->n_funders; i++) {
        const Samordna__V1__FunderShare *f = a->funders[i];
        total += f->amount_ore;
        grants_account_committed(acc, a->id, f->agency);
        int64_t unpaid = f->amount_ore - f->paid_ore - f->cancelled_ore;
        if (s_sum_of(sums, acc) != unpaid)
            s_problem(p, "award %s funder %s: journal's committed differs from the award", a->id,
                      f->agency);
        grants_account_paid(acc, a->id, f->agency);
        if (s_sum_of(sums, acc) != f->paid_ore - f->repaid_ore)
            s_problem(p, "award %s funder %s: journal's paid differs from the award", a->id,
                      f->agency);
    }
    if (total != a->amount_ore)
        s_problem(p, "award %s: funders' shares do not sum to the award", a->id);
}

/* Step 3, per scheme: its frame and budget against the journal. */
static void s_verify_scheme(const ProtobufCMessage *m, zhashx_t *sums, s_problems_t *p)
{
    const Samordna__V1__Scheme *s = (const Samordna__V1__Scheme *)m;
    char acc[GRANTS_ACCOUNT_LEN];
    grants_account_appropriation(acc, s->id);
    int64_t appropriated = -s_sum_of(sums, acc);
    grants_account_budget(acc, s->id);
    int64_t left = s_sum_of(sums, acc);
    if (s->has_frame && appropriated != s->frame_ore)
        s_problem(p, "scheme %s: appropriation differs from its frame", s->id);
    if (left + s->committed_ore != appropriated)
        s_problem(p, "scheme %s: budget left and committed do not add up to what was appropriated",
                  s->id);
}

/* Runs `check` on every record of table (of type desc; `what` names one in a problem). */
static int s_verify_each(grants_t *g, MDB_txn *txn, grants_table_t table,
                         const ProtobufCMessageDescriptor *desc, const char *what,
                         void (*check)(const ProtobufCMessage *, zhashx_t *, s_problems_t *),
                         zhashx_t *sums, s_problems_t *p)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, g->dbi[table], &cur);
    if (rc) return rc;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, v.mv_size, v.mv_data);
        if (!m) {
            s_problem(p, "%s does not unpack", what);
            continue;
        }
        check(m, sums, p);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Step 3: every award's funder totals and every scheme's frame against the journal. */
static int s_verify_awards(grants_t *g, MDB_txn *txn, zhashx_t *sums, s_problems_t *p)
{
    int rc = s_verify_each(g, txn, GRANTS_T_AWARDS, &samordna__v1__award__descriptor, "an award",
                           s_verify_award, sums, p);
    if (rc) return rc;
    return s_verify_each(g, txn, GRANTS_T_SCHEMES, &samordna__v1__scheme__descriptor, "a scheme",
                         s_verify_scheme, sums, p);
}

int grants_ledger_verify(grants_t *g, MDB_txn *txn, Samordna__V1__LedgerReport *report)
{
    s_problems_t p = {report, 0};
    report->balanced = true;
    zhashx_t *sums = zhashx_new();
    if (!sums) return SAM_STORE_NOMEM;
    zhashx_set_destructor(sums, s_free_slot);
    int rc = s_verify_journal(g, txn, sums, &p);
    if (rc == 0) rc = s_verify_balances(g, txn, sums, &p);
    if (rc == 0) rc = s_verify_awards(g, txn, sums, &p);
    zhashx_destroy(&sums);
    return rc;
}

void grants_ledger_report_clear(Samordna__V1__LedgerReport *report)
{
    for (size_t i = 0; i < report->n_problems; i++)
        free(report->problems[i]);
    free(report->problems);
    report->problems = NULL;
    report->n_problems = 0;
}
