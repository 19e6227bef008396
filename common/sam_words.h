/*  sam_words.h — the words readers see: the vocabulary of the programme in Norwegian
    (bokmål, the default) and English, dates and amounts the way each language writes them.

    Every output people read (the board, the period report, the briefing, reminders, samctl's
    text) speaks one language, Norwegian unless the reader asks for English (--lang en).
    Machine output (--json, protobuf, CSV columns) keeps the ids and enum words.

    A word is looked up in a group: "meeting" (meeting kinds), "milestone" (the seven
    milestone kinds, for a store that has no labels of its own), "barrier" (barrier states),
    "concerns" (what a barrier concerns), "step" (work-plan step states). A word the
    vocabulary does not know is shown as it is, its '_' as spaces.
*/
#ifndef SAM_WORDS_H
#define SAM_WORDS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    SAM_LANG_NB = 0, /* norsk bokmål: the default */
    SAM_LANG_EN = 1,
} sam_lang_t;

/* "" or NULL, "nb", "no", "nob", "nb-NO" → Norwegian; "en", "en-GB", … → English. Returns 0,
   or -1 for anything else (*out untouched). */
int sam_lang_parse(const char *s, sam_lang_t *out);

/* The lower-case code: "nb" or "en". */
const char *sam_lang_code(sam_lang_t lang);

/*  `word` of `group` in the language, lower case as inside a sentence ("arbeidsmøte",
    "løftet nasjonalt"). Into out (cap bytes), which is returned; an unknown word is copied
    with '_' as ' '. */
const char *sam_word(sam_lang_t lang, const char *group, const char *word, char *out, size_t cap);

/* The same with its first letter upper case, as at the start of a line ("Arbeidsmøte"). */
const char *sam_word_cap(sam_lang_t lang, const char *group, const char *word, char *out,
                         size_t cap);

/*  A date "YYYY-MM-DD" as the language writes it in text: "11. november 2019",
    "11 November 2019". Anything else is copied as it is. Returns out. */
const char *sam_words_date(sam_lang_t lang, const char *ymd, char *out, size_t cap);

/*  An amount in øre as the language writes money: "1 500 000 kr" (no-break spaces between
    the thousands and before "kr"; ",50" when there are øre), "NOK 1,500,000.50". */
const char *sam_words_nok(sam_lang_t lang, int64_t ore, char *out, size_t cap);

#endif
