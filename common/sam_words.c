/*  sam_words.c — the vocabulary, dates and amounts in Norwegian and English (sam_words.h). */
#include "sam_words.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *group, *word, *nb, *en;
} s_entry_t;

static const s_entry_t s_words[] = {
    /* meeting kinds (status MeetingLogged.kind; free words, these are the programme's own) */
    {"meeting", "anchoring", "forankringsmøte", "anchoring meeting"},
    {"meeting", "startup", "oppstartsmøte", "start-up meeting"},
    {"meeting", "working", "arbeidsmøte", "working meeting"},
    {"meeting", "workshop", "verksted", "workshop"},
    {"meeting", "gathering", "samling", "gathering"},
    {"meeting", "implementation", "gjennomføringsmøte", "implementation meeting"},
    {"meeting", "briefing", "orientering", "briefing"},
    {"meeting", "internal", "internt møte", "internal meeting"},
    {"meeting", "steering", "styringsgruppemøte", "steering group meeting"},
    {"meeting", "clarification", "avklaringsmøte", "clarification meeting"},
    {"meeting", "information", "informasjonsmøte", "information meeting"},
    /* the milestone kinds of the programme (DOMAIN.md) */
    {"milestone", "defined_challenge", "definert utfordring", "defined challenge"},
    {"milestone", "anchored", "forankret", "anchored"},
    {"milestone", "knowledge_base", "kunnskapsgrunnlag", "knowledge base"},
    {"milestone", "defined_need", "definert behov", "defined need"},
    {"milestone", "organised", "organisert", "organised"},
    {"milestone", "operative", "operativ", "operative"},
    {"milestone", "sustainable_structures", "bærekraftige strukturer", "sustainable structures"},
    /* barrier states: identified → raised regionally → raised nationally → changed | rejected
       | withdrawn */
    {"barrier", "identified", "identifisert", "identified"},
    {"barrier", "raised_regionally", "løftet regionalt", "raised regionally"},
    {"barrier", "raised_nationally", "løftet nasjonalt", "raised nationally"},
    {"barrier", "changed", "endret", "changed"},
    {"barrier", "rejected", "avvist", "rejected"},
    {"barrier", "withdrawn", "trukket tilbake", "withdrawn"},
    {"concerns", "rule", "regelverk", "a rule"},
    {"concerns", "practice", "praksis", "a practice"},
    {"concerns", "allocation_letter", "tildelingsbrev", "an allocation letter"},
    {"step", "planned", "planlagt", "planned"},
    {"step", "in_progress", "pågår", "in progress"},
    {"step", "done", "fullført", "done"},
    {"step", "dropped", "avbrutt", "dropped"},
};

int sam_lang_parse(const char *s, sam_lang_t *out)
{
    if (!s || !*s) {
        *out = SAM_LANG_NB;
        return 0;
    }
    char lang[4] = "";
    size_t n = strcspn(s, "-_");
    if (n > 3) return -1;
    for (size_t i = 0; i < n; i++)
        lang[i] = (char)tolower((unsigned char)s[i]);
    if (!strcmp(lang, "nb") || !strcmp(lang, "no") || !strcmp(lang, "nob")) {
        *out = SAM_LANG_NB;
        return 0;
    }
    if (!strcmp(lang, "en") || !strcmp(lang, "eng")) {
        *out = SAM_LANG_EN;
        return 0;
    }
    return -1;
}

const char *sam_lang_code(sam_lang_t lang)
{
    return lang == SAM_LANG_EN ? "en" : "nb";
}

const char *sam_word(sam_lang_t lang, const char *group, const char *word, char *out, size_t cap)
{
    if (!cap) return out;
    word = word ? word : "";
    for (size_t i = 0; i < sizeof s_words / sizeof s_words[0]; i++)
        if (!strcmp(s_words[i].group, group) && !strcmp(s_words[i].word, word)) {
            snprintf(out, cap, "%s", lang == SAM_LANG_EN ? s_words[i].en : s_words[i].nb);
            return out;
        }
    snprintf(out, cap, "%s", word);
    for (char *p = out; *p; p++)
        if (*p == '_') *p = ' ';
    return out;
}

const char *sam_word_cap(sam_lang_t lang, const char *group, const char *word, char *out,
                         size_t cap)
{
    sam_word(lang, group, word, out, cap);
    /* every first letter here is ASCII, or "ø"/"æ"/"å" (two bytes, upper case one less) */
    unsigned char *p = (unsigned char *)out;
    if (p[0] >= 'a' && p[0] <= 'z')
        p[0] = (unsigned char)(p[0] - 'a' + 'A');
    else if (p[0] == 0xC3 && p[1] >= 0xA0 && p[1] <= 0xBE)
        p[1] = (unsigned char)(p[1] - 0x20);
    return out;
}

static const char *const s_months_nb[] = {"januar",    "februar", "mars",     "april",
                                          "mai",       "juni",    "juli",     "august",
                                          "september", "oktober", "november", "desember"};
static const char *const s_months_en[] = {"January",   "February", "March",    "April",
                                          "May",       "June",     "July",     "August",
                                          "September", "October",  "November", "December"};

const char *sam_words_date(sam_lang_t lang, const char *ymd, char *out, size_t cap)
{
    if (!cap) return out;
    int y, m, d;
    char tail;
    if (!ymd || strlen(ymd) != 10 || sscanf(ymd, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 ||
        m < 1 || m > 12 || d < 1 || d > 31) {
        snprintf(out, cap, "%s", ymd ? ymd : "");
        return out;
    }
    if (lang == SAM_LANG_EN)
        snprintf(out, cap, "%d %s %d", d, s_months_en[m - 1], y);
    else
        snprintf(out, cap, "%d. %s %d", d, s_months_nb[m - 1], y);
    return out;
}

const char *sam_words_nok(sam_lang_t lang, int64_t ore, char *out, size_t cap)
{
    if (!cap) return out;
    static const char nbsp[] = "\xC2\xA0";
    const char *group = lang == SAM_LANG_EN ? "," : nbsp;
    char digits[32];
    uint64_t abs = ore < 0 ? (uint64_t)0 - (uint64_t)ore : (uint64_t)ore;
    int len = snprintf(digits, sizeof digits, "%llu", (unsigned long long)(abs / 100));
    char whole[64];
    size_t w = 0;
    for (int i = 0; i < len; i++) {
        if (i && (len - i) % 3 == 0)
            w += (size_t)snprintf(whole + w, sizeof whole - w, "%s", group);
        whole[w++] = digits[i];
        whole[w] = '\0';
    }
    char cents[8] = "";
    if (abs % 100)
        snprintf(cents, sizeof cents, "%c%02u", lang == SAM_LANG_EN ? '.' : ',',
                 (unsigned)(abs % 100));
    const char *sign = ore < 0 ? "-" : "";
    if (lang == SAM_LANG_EN)
        snprintf(out, cap, "%sNOK %s%s", sign, whole, cents);
    else
        snprintf(out, cap, "%s%s%s%skr", sign, whole, cents, nbsp);
    return out;
}
