/*  grants_ledger.h — the double-entry ledger of the grants service (docs/ledger.md).

    Every event that moves money posts ONE journal entry: a list of (account, signed øre)
    lines whose sum is zero (debit > 0, credit < 0). Posting an entry, in the event's write
    transaction, checks the sum, adds every line to its account's balance with overflow
    checks, checks each touched account's invariant, and stores the entry in "journal" under
    the event's outbox sequence number. Any failure refuses the event: nothing is stored.

    Accounts (per scheme S, award A, funder F):
      appropriation/S    ≤ 0   where a scheme's money comes from (its frame, or for a scheme
                               without a frame, what its awards have drawn)
      budget/S           ≥ 0   the frame not yet committed
      committed/A/F      ≥ 0   awarded by F, not yet paid nor cancelled
      paid/A/F           ≥ 0   paid by F to the recipient, less repayments

    grants_ledger_verify() recomputes every balance from the journal alone and compares it
    with the stored balances, the awards and the schemes.
*/
#ifndef GRANTS_LEDGER_H
#define GRANTS_LEDGER_H

#include "grants_store.h"

#define GRANTS_MAX_POSTINGS (4 * GRANTS_MAX_FUNDERS + 4)
#define GRANTS_ACCOUNT_LEN 160

typedef struct {
    char account[GRANTS_ACCOUNT_LEN];
    int64_t amount; /* debit > 0, credit < 0 */
} grants_line_t;

/* A journal entry under construction. */
typedef struct {
    grants_line_t lines[GRANTS_MAX_POSTINGS];
    size_t n;
    bool overflow; /* too many lines or a name too long: posting refuses it */
} grants_entry_t;

/* Adds a balanced pair: `amount` (> 0) debited to `debit` and credited to `credit`. */
void grants_entry_move(grants_entry_t *e, const char *debit, const char *credit, int64_t amount);

/* Account names into out (GRANTS_ACCOUNT_LEN). */
void grants_account_budget(char *out, const char *scheme);
void grants_account_appropriation(char *out, const char *scheme);
void grants_account_committed(char *out, const char *award, const char *funder);
void grants_account_paid(char *out, const char *award, const char *funder);

/* Posts the entry for the event (see above). Returns 0, or -1 with a reason in err. */
int grants_ledger_post(grants_t *g, MDB_txn *txn, const sam_event_t *ev, const grants_entry_t *e,
                       char *err, size_t errlen);

/* Recomputes the books from the journal into report (problems listed). 0, or an LMDB error
   code when the store could not be read. */
int grants_ledger_verify(grants_t *g, MDB_txn *txn, Samordna__V1__LedgerReport *report);

/* Frees what grants_ledger_verify allocated in report (the problems). */
void grants_ledger_report_clear(Samordna__V1__LedgerReport *report);

#endif
