/* SPDX-License-Identifier: Apache-2.0
 *
 * Relabeling: the engine behind relabel_configs, metric_relabel_configs and
 * alert_relabel_configs, reproducing Prometheus 2.42's model/relabel.
 *
 * Each config reads the label set as the previous one left it. The source
 * label values (absent labels read as "") are joined with the separator,
 * and then, by action:
 *   keep / drop           the anchored regex is matched against the join;
 *   keepequal / dropequal the join is compared with target_label's value;
 *   replace               on a match, target_label and replacement are both
 *                         expanded with the regex's groups; the target is
 *                         set to the result, or deleted when it is empty;
 *                         no match leaves the set alone;
 *   lowercase / uppercase target_label is set to the case-mapped join;
 *   hashmod               target_label = md5(join)[8..16) as a big-endian
 *                         integer, modulo modulus, in decimal;
 *   labelmap              every label whose name matches is copied to the
 *                         name replacement expands to (over the set as it
 *                         was before this config, in name order, so of two
 *                         labels mapping to one name the later name wins);
 *   labeldrop / labelkeep labels whose names match (do not match) go.
 * Setting a label to "" deletes it, as everywhere in bongsu.
 *
 * Quirks kept on purpose, because Prometheus 2.42 has them and the test
 * cases (tests/data/relabel, produced by a real Prometheus) pin them:
 *   - The regex is compiled as ^(?:re)$ without the s flag, so '.' does not
 *     match a newline and the default "(.*)" does not match a value that
 *     contains one: replace then leaves the set unchanged.
 *   - When replace's expanded target is not a valid label name, or the
 *     expanded replacement is empty, Prometheus deletes the label named by
 *     the unexpanded target_label text ("${1}" itself), so a templated
 *     target is never deleted.
 *   - The target_label of replace, lowercase, uppercase, keepequal and
 *     dropequal is validated only against Prometheus's template pattern
 *     (letters, digits, '_', $name and ${name}, not starting with a digit),
 *     and only replace expands it: "${1}" is a literal (invalid) label name
 *     for lowercase.
 *
 * Templates follow Go's regexp.Expand: "$$" is '$'; "$name" takes the
 * longest run of letters, digits and '_' (Unicode letters and digits too),
 * "${name}" needs the closing brace; a name of digits without a leading
 * zero is a group number, anything else a group name; an unknown or unset
 * group expands to nothing; a '$' that starts no valid reference is copied.
 * So "$1x" names the group "1x" (usually empty) and "${1}x" is group 1
 * then 'x'.
 *
 * Regexes run on PCRE2 in UTF mode with PCRE2_ANCHORED | PCRE2_ENDANCHORED
 * (the same as wrapping in ^(?:...)$ but keeping error offsets in the
 * user's text) and PCRE2_DOLLAR_ENDONLY ('$' is end of text, as in RE2).
 * Go reads a byte that is not valid UTF-8 as U+FFFD; so do we, by matching
 * a copy in which each such byte is EF BF BD and mapping group offsets back
 * to the original. Known divergence: PCRE2 accepts constructs RE2 rejects
 * (backreferences, lookaround, possessive quantifiers); Prometheus refuses
 * such configs, bongsu runs them.
 *
 * Case mapping is Go's strings.ToLower/ToUpper: Unicode simple case
 * mappings one code point at a time (no special casing: 'ß' stays, 'İ'
 * lowers to 'i'), invalid bytes become U+FFFD. The table at the end of this
 * file holds the simple mappings of Unicode 13.0, the version of the Go
 * that built Prometheus 2.42 (Go 1.19).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "labels/labels_int.h"

/* Longest group name PCRE2 accepts is far below this. */
#define RELABEL_GROUP_NAME_MAX 256

/* -------------------------------------------------------------- actions */

static const char *const action_names[] = {
    [LABELS_RELABEL_REPLACE] = "replace",     [LABELS_RELABEL_KEEP] = "keep",
    [LABELS_RELABEL_DROP] = "drop",           [LABELS_RELABEL_KEEPEQUAL] = "keepequal",
    [LABELS_RELABEL_DROPEQUAL] = "dropequal", [LABELS_RELABEL_HASHMOD] = "hashmod",
    [LABELS_RELABEL_LABELMAP] = "labelmap",   [LABELS_RELABEL_LABELDROP] = "labeldrop",
    [LABELS_RELABEL_LABELKEEP] = "labelkeep", [LABELS_RELABEL_LOWERCASE] = "lowercase",
    [LABELS_RELABEL_UPPERCASE] = "uppercase",
};
#define NACTIONS (sizeof(action_names) / sizeof(action_names[0]))

const char *labels_relabel_action_name(enum labels_relabel_action a)
{
    if ((size_t)a < NACTIONS)
        return action_names[a];
    return "unknown";
}

static int case_map(const char *s, size_t n, bool upper, struct bs_buf *out);

int labels_relabel_action_parse(const char *s, enum labels_relabel_action *out)
{
    struct bs_buf low;
    int rc = BS_EINVAL;

    /* Go lowers the text with strings.ToLower first, so do we (the Kelvin
     * sign lowers to 'k' there too). */
    bs_buf_init(&low, 64);
    if (case_map(s, strlen(s), false, &low) == 0) {
        for (size_t i = 0; i < NACTIONS; i++) {
            if (strcmp(low.data, action_names[i]) == 0) {
                *out = (enum labels_relabel_action)i;
                rc = 0;
                break;
            }
        }
    }
    bs_buf_fini(&low);
    return rc;
}

/* --------------------------------------------------------- case mapping */

/* A range of code points lo..hi sharing the deltas to their upper- and
 * lower-case forms; ALT marks a range alternating upper, lower, upper...
 * starting with an upper-case letter at lo (Go's UpperLower). */
struct case_range {
    uint32_t lo, hi;
    int32_t upper, lower;
};
#define ALT INT32_MAX

/* Unicode 13.0 simple case mappings (UnicodeData.txt fields 12 and 13),
 * as Go 1.19's unicode.CaseRanges. Derived from Perl's Unicode::UCD
 * (prop_invmap of Simple_Uppercase_Mapping and Simple_Lowercase_Mapping,
 * Unicode 14.0) by dropping code points assigned after 13.0, and checked
 * code point by code point against that source. {lo, hi, upper, lower}:
 * deltas to add, or ALT. */
/* clang-format off */
static const struct case_range case_ranges[] = {
    {0x0041, 0x005A, 0, 32}, {0x0061, 0x007A, -32, 0}, {0x00B5, 0x00B5, 743, 0},
    {0x00C0, 0x00D6, 0, 32}, {0x00D8, 0x00DE, 0, 32}, {0x00E0, 0x00F6, -32, 0},
    {0x00F8, 0x00FE, -32, 0}, {0x00FF, 0x00FF, 121, 0}, {0x0100, 0x012F, ALT, ALT},
    {0x0130, 0x0130, 0, -199}, {0x0131, 0x0131, -232, 0}, {0x0132, 0x0137, ALT, ALT},
    {0x0139, 0x0148, ALT, ALT}, {0x014A, 0x0177, ALT, ALT}, {0x0178, 0x0178, 0, -121},
    {0x0179, 0x017E, ALT, ALT}, {0x017F, 0x017F, -300, 0}, {0x0180, 0x0180, 195, 0},
    {0x0181, 0x0181, 0, 210}, {0x0182, 0x0185, ALT, ALT}, {0x0186, 0x0186, 0, 206},
    {0x0187, 0x0188, ALT, ALT}, {0x0189, 0x018A, 0, 205}, {0x018B, 0x018C, ALT, ALT},
    {0x018E, 0x018E, 0, 79}, {0x018F, 0x018F, 0, 202}, {0x0190, 0x0190, 0, 203},
    {0x0191, 0x0192, ALT, ALT}, {0x0193, 0x0193, 0, 205}, {0x0194, 0x0194, 0, 207},
    {0x0195, 0x0195, 97, 0}, {0x0196, 0x0196, 0, 211}, {0x0197, 0x0197, 0, 209},
    {0x0198, 0x0199, ALT, ALT}, {0x019A, 0x019A, 163, 0}, {0x019C, 0x019C, 0, 211},
    {0x019D, 0x019D, 0, 213}, {0x019E, 0x019E, 130, 0}, {0x019F, 0x019F, 0, 214},
    {0x01A0, 0x01A5, ALT, ALT}, {0x01A6, 0x01A6, 0, 218}, {0x01A7, 0x01A8, ALT, ALT},
    {0x01A9, 0x01A9, 0, 218}, {0x01AC, 0x01AD, ALT, ALT}, {0x01AE, 0x01AE, 0, 218},
    {0x01AF, 0x01B0, ALT, ALT}, {0x01B1, 0x01B2, 0, 217}, {0x01B3, 0x01B6, ALT, ALT},
    {0x01B7, 0x01B7, 0, 219}, {0x01B8, 0x01B9, ALT, ALT}, {0x01BC, 0x01BD, ALT, ALT},
    {0x01BF, 0x01BF, 56, 0}, {0x01C4, 0x01C4, 0, 2}, {0x01C5, 0x01C5, -1, 1},
    {0x01C6, 0x01C6, -2, 0}, {0x01C7, 0x01C7, 0, 2}, {0x01C8, 0x01C8, -1, 1},
    {0x01C9, 0x01C9, -2, 0}, {0x01CA, 0x01CA, 0, 2}, {0x01CB, 0x01CB, -1, 1},
    {0x01CC, 0x01CC, -2, 0}, {0x01CD, 0x01DC, ALT, ALT}, {0x01DD, 0x01DD, -79, 0},
    {0x01DE, 0x01EF, ALT, ALT}, {0x01F1, 0x01F1, 0, 2}, {0x01F2, 0x01F2, -1, 1},
    {0x01F3, 0x01F3, -2, 0}, {0x01F4, 0x01F5, ALT, ALT}, {0x01F6, 0x01F6, 0, -97},
    {0x01F7, 0x01F7, 0, -56}, {0x01F8, 0x021F, ALT, ALT}, {0x0220, 0x0220, 0, -130},
    {0x0222, 0x0233, ALT, ALT}, {0x023A, 0x023A, 0, 10795}, {0x023B, 0x023C, ALT, ALT},
    {0x023D, 0x023D, 0, -163}, {0x023E, 0x023E, 0, 10792}, {0x023F, 0x0240, 10815, 0},
    {0x0241, 0x0242, ALT, ALT}, {0x0243, 0x0243, 0, -195}, {0x0244, 0x0244, 0, 69},
    {0x0245, 0x0245, 0, 71}, {0x0246, 0x024F, ALT, ALT}, {0x0250, 0x0250, 10783, 0},
    {0x0251, 0x0251, 10780, 0}, {0x0252, 0x0252, 10782, 0}, {0x0253, 0x0253, -210, 0},
    {0x0254, 0x0254, -206, 0}, {0x0256, 0x0257, -205, 0}, {0x0259, 0x0259, -202, 0},
    {0x025B, 0x025B, -203, 0}, {0x025C, 0x025C, 42319, 0}, {0x0260, 0x0260, -205, 0},
    {0x0261, 0x0261, 42315, 0}, {0x0263, 0x0263, -207, 0}, {0x0265, 0x0265, 42280, 0},
    {0x0266, 0x0266, 42308, 0}, {0x0268, 0x0268, -209, 0}, {0x0269, 0x0269, -211, 0},
    {0x026A, 0x026A, 42308, 0}, {0x026B, 0x026B, 10743, 0}, {0x026C, 0x026C, 42305, 0},
    {0x026F, 0x026F, -211, 0}, {0x0271, 0x0271, 10749, 0}, {0x0272, 0x0272, -213, 0},
    {0x0275, 0x0275, -214, 0}, {0x027D, 0x027D, 10727, 0}, {0x0280, 0x0280, -218, 0},
    {0x0282, 0x0282, 42307, 0}, {0x0283, 0x0283, -218, 0}, {0x0287, 0x0287, 42282, 0},
    {0x0288, 0x0288, -218, 0}, {0x0289, 0x0289, -69, 0}, {0x028A, 0x028B, -217, 0},
    {0x028C, 0x028C, -71, 0}, {0x0292, 0x0292, -219, 0}, {0x029D, 0x029D, 42261, 0},
    {0x029E, 0x029E, 42258, 0}, {0x0345, 0x0345, 84, 0}, {0x0370, 0x0373, ALT, ALT},
    {0x0376, 0x0377, ALT, ALT}, {0x037B, 0x037D, 130, 0}, {0x037F, 0x037F, 0, 116},
    {0x0386, 0x0386, 0, 38}, {0x0388, 0x038A, 0, 37}, {0x038C, 0x038C, 0, 64},
    {0x038E, 0x038F, 0, 63}, {0x0391, 0x03A1, 0, 32}, {0x03A3, 0x03AB, 0, 32},
    {0x03AC, 0x03AC, -38, 0}, {0x03AD, 0x03AF, -37, 0}, {0x03B1, 0x03C1, -32, 0},
    {0x03C2, 0x03C2, -31, 0}, {0x03C3, 0x03CB, -32, 0}, {0x03CC, 0x03CC, -64, 0},
    {0x03CD, 0x03CE, -63, 0}, {0x03CF, 0x03CF, 0, 8}, {0x03D0, 0x03D0, -62, 0},
    {0x03D1, 0x03D1, -57, 0}, {0x03D5, 0x03D5, -47, 0}, {0x03D6, 0x03D6, -54, 0},
    {0x03D7, 0x03D7, -8, 0}, {0x03D8, 0x03EF, ALT, ALT}, {0x03F0, 0x03F0, -86, 0},
    {0x03F1, 0x03F1, -80, 0}, {0x03F2, 0x03F2, 7, 0}, {0x03F3, 0x03F3, -116, 0},
    {0x03F4, 0x03F4, 0, -60}, {0x03F5, 0x03F5, -96, 0}, {0x03F7, 0x03F8, ALT, ALT},
    {0x03F9, 0x03F9, 0, -7}, {0x03FA, 0x03FB, ALT, ALT}, {0x03FD, 0x03FF, 0, -130},
    {0x0400, 0x040F, 0, 80}, {0x0410, 0x042F, 0, 32}, {0x0430, 0x044F, -32, 0},
    {0x0450, 0x045F, -80, 0}, {0x0460, 0x0481, ALT, ALT}, {0x048A, 0x04BF, ALT, ALT},
    {0x04C0, 0x04C0, 0, 15}, {0x04C1, 0x04CE, ALT, ALT}, {0x04CF, 0x04CF, -15, 0},
    {0x04D0, 0x052F, ALT, ALT}, {0x0531, 0x0556, 0, 48}, {0x0561, 0x0586, -48, 0},
    {0x10A0, 0x10C5, 0, 7264}, {0x10C7, 0x10C7, 0, 7264}, {0x10CD, 0x10CD, 0, 7264},
    {0x10D0, 0x10FA, 3008, 0}, {0x10FD, 0x10FF, 3008, 0}, {0x13A0, 0x13EF, 0, 38864},
    {0x13F0, 0x13F5, 0, 8}, {0x13F8, 0x13FD, -8, 0}, {0x1C80, 0x1C80, -6254, 0},
    {0x1C81, 0x1C81, -6253, 0}, {0x1C82, 0x1C82, -6244, 0}, {0x1C83, 0x1C84, -6242, 0},
    {0x1C85, 0x1C85, -6243, 0}, {0x1C86, 0x1C86, -6236, 0}, {0x1C87, 0x1C87, -6181, 0},
    {0x1C88, 0x1C88, 35266, 0}, {0x1C90, 0x1CBA, 0, -3008}, {0x1CBD, 0x1CBF, 0, -3008},
    {0x1D79, 0x1D79, 35332, 0}, {0x1D7D, 0x1D7D, 3814, 0}, {0x1D8E, 0x1D8E, 35384, 0},
    {0x1E00, 0x1E95, ALT, ALT}, {0x1E9B, 0x1E9B, -59, 0}, {0x1E9E, 0x1E9E, 0, -7615},
    {0x1EA0, 0x1EFF, ALT, ALT}, {0x1F00, 0x1F07, 8, 0}, {0x1F08, 0x1F0F, 0, -8},
    {0x1F10, 0x1F15, 8, 0}, {0x1F18, 0x1F1D, 0, -8}, {0x1F20, 0x1F27, 8, 0},
    {0x1F28, 0x1F2F, 0, -8}, {0x1F30, 0x1F37, 8, 0}, {0x1F38, 0x1F3F, 0, -8},
    {0x1F40, 0x1F45, 8, 0}, {0x1F48, 0x1F4D, 0, -8}, {0x1F51, 0x1F51, 8, 0},
    {0x1F53, 0x1F53, 8, 0}, {0x1F55, 0x1F55, 8, 0}, {0x1F57, 0x1F57, 8, 0},
    {0x1F59, 0x1F59, 0, -8}, {0x1F5B, 0x1F5B, 0, -8}, {0x1F5D, 0x1F5D, 0, -8},
    {0x1F5F, 0x1F5F, 0, -8}, {0x1F60, 0x1F67, 8, 0}, {0x1F68, 0x1F6F, 0, -8},
    {0x1F70, 0x1F71, 74, 0}, {0x1F72, 0x1F75, 86, 0}, {0x1F76, 0x1F77, 100, 0},
    {0x1F78, 0x1F79, 128, 0}, {0x1F7A, 0x1F7B, 112, 0}, {0x1F7C, 0x1F7D, 126, 0},
    {0x1F80, 0x1F87, 8, 0}, {0x1F88, 0x1F8F, 0, -8}, {0x1F90, 0x1F97, 8, 0},
    {0x1F98, 0x1F9F, 0, -8}, {0x1FA0, 0x1FA7, 8, 0}, {0x1FA8, 0x1FAF, 0, -8},
    {0x1FB0, 0x1FB1, 8, 0}, {0x1FB3, 0x1FB3, 9, 0}, {0x1FB8, 0x1FB9, 0, -8},
    {0x1FBA, 0x1FBB, 0, -74}, {0x1FBC, 0x1FBC, 0, -9}, {0x1FBE, 0x1FBE, -7205, 0},
    {0x1FC3, 0x1FC3, 9, 0}, {0x1FC8, 0x1FCB, 0, -86}, {0x1FCC, 0x1FCC, 0, -9},
    {0x1FD0, 0x1FD1, 8, 0}, {0x1FD8, 0x1FD9, 0, -8}, {0x1FDA, 0x1FDB, 0, -100},
    {0x1FE0, 0x1FE1, 8, 0}, {0x1FE5, 0x1FE5, 7, 0}, {0x1FE8, 0x1FE9, 0, -8},
    {0x1FEA, 0x1FEB, 0, -112}, {0x1FEC, 0x1FEC, 0, -7}, {0x1FF3, 0x1FF3, 9, 0},
    {0x1FF8, 0x1FF9, 0, -128}, {0x1FFA, 0x1FFB, 0, -126}, {0x1FFC, 0x1FFC, 0, -9},
    {0x2126, 0x2126, 0, -7517}, {0x212A, 0x212A, 0, -8383}, {0x212B, 0x212B, 0, -8262},
    {0x2132, 0x2132, 0, 28}, {0x214E, 0x214E, -28, 0}, {0x2160, 0x216F, 0, 16},
    {0x2170, 0x217F, -16, 0}, {0x2183, 0x2184, ALT, ALT}, {0x24B6, 0x24CF, 0, 26},
    {0x24D0, 0x24E9, -26, 0}, {0x2C00, 0x2C2E, 0, 48}, {0x2C30, 0x2C5E, -48, 0},
    {0x2C60, 0x2C61, ALT, ALT}, {0x2C62, 0x2C62, 0, -10743}, {0x2C63, 0x2C63, 0, -3814},
    {0x2C64, 0x2C64, 0, -10727}, {0x2C65, 0x2C65, -10795, 0}, {0x2C66, 0x2C66, -10792, 0},
    {0x2C67, 0x2C6C, ALT, ALT}, {0x2C6D, 0x2C6D, 0, -10780}, {0x2C6E, 0x2C6E, 0, -10749},
    {0x2C6F, 0x2C6F, 0, -10783}, {0x2C70, 0x2C70, 0, -10782}, {0x2C72, 0x2C73, ALT, ALT},
    {0x2C75, 0x2C76, ALT, ALT}, {0x2C7E, 0x2C7F, 0, -10815}, {0x2C80, 0x2CE3, ALT, ALT},
    {0x2CEB, 0x2CEE, ALT, ALT}, {0x2CF2, 0x2CF3, ALT, ALT}, {0x2D00, 0x2D25, -7264, 0},
    {0x2D27, 0x2D27, -7264, 0}, {0x2D2D, 0x2D2D, -7264, 0}, {0xA640, 0xA66D, ALT, ALT},
    {0xA680, 0xA69B, ALT, ALT}, {0xA722, 0xA72F, ALT, ALT}, {0xA732, 0xA76F, ALT, ALT},
    {0xA779, 0xA77C, ALT, ALT}, {0xA77D, 0xA77D, 0, -35332}, {0xA77E, 0xA787, ALT, ALT},
    {0xA78B, 0xA78C, ALT, ALT}, {0xA78D, 0xA78D, 0, -42280}, {0xA790, 0xA793, ALT, ALT},
    {0xA794, 0xA794, 48, 0}, {0xA796, 0xA7A9, ALT, ALT}, {0xA7AA, 0xA7AA, 0, -42308},
    {0xA7AB, 0xA7AB, 0, -42319}, {0xA7AC, 0xA7AC, 0, -42315}, {0xA7AD, 0xA7AD, 0, -42305},
    {0xA7AE, 0xA7AE, 0, -42308}, {0xA7B0, 0xA7B0, 0, -42258}, {0xA7B1, 0xA7B1, 0, -42282},
    {0xA7B2, 0xA7B2, 0, -42261}, {0xA7B3, 0xA7B3, 0, 928}, {0xA7B4, 0xA7BF, ALT, ALT},
    {0xA7C2, 0xA7C3, ALT, ALT}, {0xA7C4, 0xA7C4, 0, -48}, {0xA7C5, 0xA7C5, 0, -42307},
    {0xA7C6, 0xA7C6, 0, -35384}, {0xA7C7, 0xA7CA, ALT, ALT}, {0xA7F5, 0xA7F6, ALT, ALT},
    {0xAB53, 0xAB53, -928, 0}, {0xAB70, 0xABBF, -38864, 0}, {0xFF21, 0xFF3A, 0, 32},
    {0xFF41, 0xFF5A, -32, 0}, {0x10400, 0x10427, 0, 40}, {0x10428, 0x1044F, -40, 0},
    {0x104B0, 0x104D3, 0, 40}, {0x104D8, 0x104FB, -40, 0}, {0x10C80, 0x10CB2, 0, 64},
    {0x10CC0, 0x10CF2, -64, 0}, {0x118A0, 0x118BF, 0, 32}, {0x118C0, 0x118DF, -32, 0},
    {0x16E40, 0x16E5F, 0, 32}, {0x16E60, 0x16E7F, -32, 0}, {0x1E900, 0x1E921, 0, 34},
    {0x1E922, 0x1E943, -34, 0},
};
/* clang-format on */
static const size_t ncase_ranges = sizeof(case_ranges) / sizeof(case_ranges[0]);

static uint32_t case_to(uint32_t cp, bool upper)
{
    size_t lo = 0, hi = ncase_ranges;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct case_range *r = &case_ranges[mid];
        if (cp < r->lo) {
            hi = mid;
        } else if (cp > r->hi) {
            lo = mid + 1;
        } else {
            int32_t d = upper ? r->upper : r->lower;
            if (d == ALT) {
                uint32_t base = r->lo + ((cp - r->lo) & ~1u);
                return upper ? base : base + 1;
            }
            return (uint32_t)((int64_t)cp + d);
        }
    }
    return cp;
}

static uint32_t utf8_decode(const unsigned char *p, size_t len)
{
    switch (len) {
    case 1:
        return p[0];
    case 2:
        return (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f);
    case 3:
        return (uint32_t)(p[0] & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
    default:
        return (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3f) << 12 |
               (uint32_t)(p[2] & 0x3f) << 6 | (p[3] & 0x3f);
    }
}

static int utf8_put(struct bs_buf *out, uint32_t cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | cp >> 6);
        b[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | cp >> 12);
        b[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (char)(0xf0 | cp >> 18);
        b[1] = (char)(0x80 | (cp >> 12 & 0x3f));
        b[2] = (char)(0x80 | (cp >> 6 & 0x3f));
        b[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return bs_buf_append(out, b, n);
}

/* out = s[0..n) case-mapped as Go's strings.ToUpper/ToLower. */
static int case_map(const char *s, size_t n, bool upper, struct bs_buf *out)
{
    const unsigned char *p = (const unsigned char *)s;
    int rc;

    bs_buf_reset(out);
    if ((rc = bs_buf_append(out, "", 0)))
        return rc;
    for (size_t i = 0; i < n;) {
        if (p[i] < 0x80) {
            char c = (char)p[i++];
            if (upper && c >= 'a' && c <= 'z')
                c = (char)(c - 'a' + 'A');
            else if (!upper && c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            rc = bs_buf_putc(out, c);
        } else {
            size_t len = labels_utf8_len(p + i, n - i);
            if (len == 0) {
                rc = utf8_put(out, 0xfffd);
                i++;
            } else {
                rc = utf8_put(out, case_to(utf8_decode(p + i, len), upper));
                i += len;
            }
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* --------------------------------------------------------- name checks */

static bool is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Prometheus's relabelTarget pattern,
 *   ^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$
 * with ASCII \w. It accepts exactly the non-empty sequences of word
 * characters, "$word+" and "${word+}" that do not start with a digit.
 * Checked by hand: the nested quantifiers would backtrack exponentially. */
static bool template_valid(const char *s)
{
    size_t i = 0;
    if (s[0] == '\0' || (s[0] >= '0' && s[0] <= '9'))
        return false;
    while (s[i]) {
        if (s[i] == '$') {
            size_t j;
            if (s[i + 1] == '{') {
                for (j = i + 2; is_word(s[j]); j++)
                    ;
                if (j == i + 2 || s[j] != '}')
                    return false;
                i = j + 1;
            } else {
                for (j = i + 1; is_word(s[j]); j++)
                    ;
                if (j == i + 1)
                    return false;
                i = j;
            }
        } else if (is_word(s[i])) {
            i++;
        } else {
            return false;
        }
    }
    return true;
}

/* Is the code point a Unicode letter or decimal digit (Go's
 * unicode.IsLetter || unicode.IsDigit)? Asked of PCRE2's tables, through a
 * pattern compiled once per process. */
static pcre2_code *letter_re;
static pthread_once_t letter_once = PTHREAD_ONCE_INIT;

static void letter_re_init(void)
{
    int errcode;
    PCRE2_SIZE erroff;
    letter_re =
        pcre2_compile((PCRE2_SPTR) "[\\p{L}\\p{Nd}]", PCRE2_ZERO_TERMINATED,
                      PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED, &errcode, &erroff, NULL);
}

/* Length of the template-name character at p (0 when none): ASCII word
 * characters, or a valid UTF-8 letter or digit. */
static size_t name_char_len(const char *p, pcre2_match_data *md)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t len;
    if (u[0] < 0x80)
        return is_word(p[0]) ? 1 : 0;
    len = labels_utf8_len(u, strnlen(p, 4));
    if (len == 0 || !md)
        return 0;
    pthread_once(&letter_once, letter_re_init);
    if (!letter_re)
        return 0;
    return pcre2_match(letter_re, u, len, 0, PCRE2_NO_UTF_CHECK, md, NULL) > 0 ? len : 0;
}

/* ---------------------------------------------------------- apply state */

/* Scratch space for one labels_relabel_apply call. */
struct ctx {
    pcre2_match_data *md;      /* sized for the largest group count */
    pcre2_match_data *name_md; /* for name_char_len() */
    PCRE2_SIZE *ov;
    uint32_t ngroups; /* pairs valid in ov after the last match */
    bool mapped;      /* subject was cleaned; offsets need map */
    size_t *map;      /* cleaned offset -> original offset */
    size_t map_cap;
    struct bs_buf clean, val, tgt, res;
    struct label *snap;
    size_t snap_cap;
};

static void ctx_fini(struct ctx *x)
{
    pcre2_match_data_free(x->md);
    pcre2_match_data_free(x->name_md);
    free(x->map);
    free(x->snap);
    bs_buf_fini(&x->clean);
    bs_buf_fini(&x->val);
    bs_buf_fini(&x->tgt);
    bs_buf_fini(&x->res);
}

/* Match re against s[0..n). Returns 1 (captures in x), 0 (no match) or
 * BS_ENOMEM. Match-time failures such as PCRE2's match limit count as no
 * match. */
static int rx_match(struct ctx *x, const pcre2_code *re, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    const char *subj = s;
    size_t subj_n = n;
    int rc;

    x->mapped = false;
    if (!labels_utf8_valid(s, n)) {
        bs_buf_reset(&x->clean);
        if (n > (SIZE_MAX - 1) / 3 / sizeof(size_t))
            return BS_ENOMEM;
        if (x->map_cap < 3 * n + 1) {
            size_t *m = realloc(x->map, (3 * n + 1) * sizeof(*m));
            if (!m)
                return BS_ENOMEM;
            x->map = m;
            x->map_cap = 3 * n + 1;
        }
        for (size_t i = 0; i < n;) {
            size_t len = labels_utf8_len(p + i, n - i), at = x->clean.len;
            if (len == 0) {
                if (bs_buf_append(&x->clean, "\xef\xbf\xbd", 3))
                    return BS_ENOMEM;
                len = 1;
            } else if (bs_buf_append(&x->clean, s + i, len)) {
                return BS_ENOMEM;
            }
            for (size_t k = at; k < x->clean.len; k++)
                x->map[k] = i;
            i += len;
        }
        x->map[x->clean.len] = n;
        subj = x->clean.data;
        subj_n = x->clean.len;
        x->mapped = true;
    }
    rc =
        pcre2_match(re, (PCRE2_SPTR)(subj ? subj : ""), subj_n, 0, PCRE2_NO_UTF_CHECK, x->md, NULL);
    if (rc == PCRE2_ERROR_NOMEMORY)
        return BS_ENOMEM;
    if (rc <= 0)
        return 0;
    x->ov = pcre2_get_ovector_pointer(x->md);
    x->ngroups = pcre2_get_ovector_count(x->md);
    return 1;
}

/* Bounds of group i of the last match in the original subject, or false
 * when the group does not exist or did not take part. */
static bool rx_group(const struct ctx *x, uint32_t i, size_t *start, size_t *end)
{
    if (i >= x->ngroups || x->ov[2 * i] == PCRE2_UNSET)
        return false;
    *start = x->ov[2 * i];
    *end = x->ov[2 * i + 1];
    if (x->mapped) {
        *start = x->map[*start];
        *end = x->map[*end];
    }
    return true;
}

/* out = tpl expanded as Go's Regexp.ExpandString against the last match of
 * re on src (see the essay above). */
static int expand(struct ctx *x, const pcre2_code *re, const char *tpl, const char *src,
                  struct bs_buf *out)
{
    int rc;

    bs_buf_reset(out);
    if ((rc = bs_buf_append(out, "", 0)))
        return rc;
    for (;;) {
        const char *d = strchr(tpl, '$'), *p, *q;
        bool brace;
        size_t len, start, end;
        long num = 0;

        if (!d)
            return bs_buf_puts(out, tpl);
        if ((rc = bs_buf_append(out, tpl, (size_t)(d - tpl))))
            return rc;
        tpl = d + 1;
        if (*tpl == '$') {
            if ((rc = bs_buf_putc(out, '$')))
                return rc;
            tpl++;
            continue;
        }
        brace = *tpl == '{';
        p = tpl + brace;
        for (q = p; (len = name_char_len(q, x->name_md)) > 0; q += len)
            ;
        if (q == p || (brace && *q != '}')) {
            /* Not a reference: the '$' is literal text. */
            if ((rc = bs_buf_putc(out, '$')))
                return rc;
            continue;
        }
        tpl = q + brace;
        for (const char *c = p; c < q; c++) {
            if (*c < '0' || *c > '9' || num >= 100000000) {
                num = -1;
                break;
            }
            num = num * 10 + (*c - '0');
        }
        if (p[0] == '0' && q - p > 1)
            num = -1;
        if (num < 0) {
            char name[RELABEL_GROUP_NAME_MAX];
            int g;
            if ((size_t)(q - p) >= sizeof(name))
                continue;
            memcpy(name, p, (size_t)(q - p));
            name[q - p] = '\0';
            g = pcre2_substring_number_from_name(re, (PCRE2_SPTR)name);
            if (g <= 0)
                continue;
            num = g;
        }
        if (rx_group(x, (uint32_t)num, &start, &end) &&
            (rc = bs_buf_append(out, src + start, end - start)))
            return rc;
    }
}

/* ----------------------------------------------------------- configs */

void labels_relabel_config_fini(struct labels_relabel_config *c)
{
    for (size_t i = 0; i < c->nsource_labels; i++)
        free(c->source_labels[i]);
    free(c->source_labels);
    free(c->separator);
    free(c->regex);
    free(c->target_label);
    free(c->replacement);
    pcre2_code_free(c->re_);
    memset(c, 0, sizeof(*c));
}

/* Fill err with before + s quoted as Go's %q + after; returns BS_EINVAL
 * (BS_ENOMEM when even that fails). */
static int err_quoted(struct bs_error *err, const char *before, const char *s, const char *after)
{
    struct bs_buf q;
    bs_buf_init(&q, 0);
    if (labels_quote(&q, s, strlen(s)) != 0) {
        bs_buf_fini(&q);
        return bs_error_set(err, BS_ENOMEM, "out of memory");
    }
    bs_error_set(err, BS_EINVAL, "%s%s%s", before, q.data, after);
    bs_buf_fini(&q);
    return BS_EINVAL;
}

static char *dup_or(const char *s, const char *dflt)
{
    return strdup(s ? s : dflt);
}

/* Prometheus's Validate() for a config whose fields are filled in. */
static int validate(const struct labels_relabel_config *c, const struct labels_relabel_spec *spec,
                    struct bs_error *err)
{
    enum labels_relabel_action a = c->action;
    const char *an = labels_relabel_action_name(a);
    bool needs_target = a == LABELS_RELABEL_REPLACE || a == LABELS_RELABEL_HASHMOD ||
                        a == LABELS_RELABEL_LOWERCASE || a == LABELS_RELABEL_UPPERCASE ||
                        a == LABELS_RELABEL_KEEPEQUAL || a == LABELS_RELABEL_DROPEQUAL;
    bool value_only = a == LABELS_RELABEL_LOWERCASE || a == LABELS_RELABEL_UPPERCASE ||
                      a == LABELS_RELABEL_KEEPEQUAL || a == LABELS_RELABEL_DROPEQUAL;
    char after[128];

    if (c->modulus == 0 && a == LABELS_RELABEL_HASHMOD)
        return bs_error_set(err, BS_EINVAL,
                            "relabel configuration for hashmod requires non-zero modulus");
    if (needs_target && c->target_label[0] == '\0')
        return bs_error_set(err, BS_EINVAL,
                            "relabel configuration for %s action requires 'target_label' value",
                            an);
    snprintf(after, sizeof(after), " is invalid 'target_label' for %s action", an);
    if ((a == LABELS_RELABEL_REPLACE || value_only) && !template_valid(c->target_label))
        return err_quoted(err, "", c->target_label, after);
    if (value_only && strcmp(c->replacement, "$1") != 0)
        return bs_error_set(err, BS_EINVAL, "'replacement' can not be set for %s action", an);
    if (a == LABELS_RELABEL_LABELMAP && !template_valid(c->replacement)) {
        snprintf(after, sizeof(after), " is invalid 'replacement' for %s action", an);
        return err_quoted(err, "", c->replacement, after);
    }
    if (a == LABELS_RELABEL_HASHMOD && !labels_name_valid(c->target_label, strlen(c->target_label)))
        return err_quoted(err, "", c->target_label, after);
    if ((a == LABELS_RELABEL_KEEPEQUAL || a == LABELS_RELABEL_DROPEQUAL) &&
        (spec->regex || c->modulus != 0 || strcmp(c->separator, ";") != 0 ||
         strcmp(c->replacement, "$1") != 0))
        return bs_error_set(
            err, BS_EINVAL,
            "%s action requires only 'source_labels' and `target_label`, and no other fields", an);
    if ((a == LABELS_RELABEL_LABELDROP || a == LABELS_RELABEL_LABELKEEP) &&
        (spec->source_labels || c->target_label[0] != '\0' || c->modulus != 0 ||
         strcmp(c->separator, ";") != 0 || strcmp(c->replacement, "$1") != 0))
        return bs_error_set(err, BS_EINVAL, "%s action requires only 'regex', and no other fields",
                            an);
    return 0;
}

int labels_relabel_config_init(struct labels_relabel_config *c,
                               const struct labels_relabel_spec *spec, struct bs_error *err)
{
    int errcode, rc;
    PCRE2_SIZE erroff;

    memset(c, 0, sizeof(*c));
    if (spec->action) {
        if (labels_relabel_action_parse(spec->action, &c->action) != 0)
            return err_quoted(err, "unknown relabel action ", spec->action, "");
    }
    for (size_t i = 0; i < spec->nsource_labels; i++) {
        const char *ln = spec->source_labels[i];
        if (!labels_name_valid(ln, strlen(ln)))
            return err_quoted(err, "", ln, " is not a valid label name");
    }
    if (spec->nsource_labels) {
        c->source_labels = calloc(spec->nsource_labels, sizeof(*c->source_labels));
        if (!c->source_labels)
            goto nomem;
        for (size_t i = 0; i < spec->nsource_labels; i++) {
            c->source_labels[i] = strdup(spec->source_labels[i]);
            if (!c->source_labels[i])
                goto nomem;
            c->nsource_labels = i + 1;
        }
    }
    c->separator = dup_or(spec->separator, ";");
    c->regex = dup_or(spec->regex, "(.*)");
    c->target_label = dup_or(spec->target_label, "");
    c->replacement = dup_or(spec->replacement, "$1");
    c->modulus = spec->modulus;
    if (!c->separator || !c->regex || !c->target_label || !c->replacement)
        goto nomem;
    c->target_template_ = strchr(c->target_label, '$') != NULL;

    c->re_ = pcre2_compile((PCRE2_SPTR)c->regex, PCRE2_ZERO_TERMINATED,
                           PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_DOLLAR_ENDONLY,
                           &errcode, &erroff, NULL);
    if (!c->re_) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof(msg));
        bs_error_set(err, BS_EPARSE, "error parsing regexp: %s at offset %zu: `%s`", (char *)msg,
                     (size_t)erroff, c->regex);
        labels_relabel_config_fini(c);
        return BS_EPARSE;
    }
    (void)pcre2_jit_compile(c->re_, PCRE2_JIT_COMPLETE);

    if ((rc = validate(c, spec, err)) != 0) {
        labels_relabel_config_fini(c);
        return rc;
    }
    return 0;

nomem:
    labels_relabel_config_fini(c);
    return bs_error_set(err, BS_ENOMEM, "out of memory");
}

/* ------------------------------------------------------------- apply */

uint64_t labels_relabel_hashmod(const char *s, size_t n, uint64_t modulus)
{
    uint8_t sum[16];
    labels_md5(s, n, sum);
    return bs_get_be64(sum + 8) % modulus;
}

/* x->val = the source values joined by the separator. */
static int join_sources(struct ctx *x, const struct labels_relabel_config *c,
                        const struct labels_builder *b)
{
    int rc;
    bs_buf_reset(&x->val);
    if ((rc = bs_buf_append(&x->val, "", 0)))
        return rc;
    for (size_t i = 0; i < c->nsource_labels; i++) {
        const char *v = labels_builder_get(b, c->source_labels[i]);
        if (i > 0 && (rc = bs_buf_puts(&x->val, c->separator)))
            return rc;
        if (v && (rc = bs_buf_puts(&x->val, v)))
            return rc;
    }
    return 0;
}

/* Copy the builder's current (sorted) pairs into x->snap. The strings stay
 * in the builder's arena, which set/del never release, so the snapshot
 * stays valid while the config edits the builder. */
static int snapshot(struct ctx *x, struct labels_builder *b, size_t *n)
{
    struct labels view;
    int rc = labels_builder_labels(b, &view, NULL);
    if (rc)
        return rc;
    if (view.n > x->snap_cap) {
        struct label *s = realloc(x->snap, view.n * sizeof(*s));
        if (!s)
            return BS_ENOMEM;
        x->snap = s;
        x->snap_cap = view.n;
    }
    if (view.n)
        memcpy(x->snap, view.v, view.n * sizeof(*x->snap));
    *n = view.n;
    return 0;
}

static int set_buf(struct labels_builder *b, const char *name, const struct bs_buf *v)
{
    return labels_builder_set(b, name, strlen(name), v->data ? v->data : "", v->len);
}

/* Apply one config. Returns 0 and sets *keep, or a negative code. */
static int apply_one(struct ctx *x, const struct labels_relabel_config *c, struct labels_builder *b,
                     bool *keep)
{
    const pcre2_code *re = c->re_;
    const char *tv;
    size_t n;
    int rc;

    *keep = true;
    if ((rc = join_sources(x, c, b)))
        return rc;
    switch (c->action) {
    case LABELS_RELABEL_KEEP:
    case LABELS_RELABEL_DROP:
        if ((rc = rx_match(x, re, x->val.data, x->val.len)) < 0)
            return rc;
        *keep = (rc == 1) == (c->action == LABELS_RELABEL_KEEP);
        return 0;
    case LABELS_RELABEL_KEEPEQUAL:
    case LABELS_RELABEL_DROPEQUAL:
        tv = labels_builder_get(b, c->target_label);
        *keep = (strcmp(tv ? tv : "", x->val.data) == 0) == (c->action == LABELS_RELABEL_KEEPEQUAL);
        return 0;
    case LABELS_RELABEL_REPLACE:
        if ((rc = rx_match(x, re, x->val.data, x->val.len)) <= 0)
            return rc;
        bs_buf_reset(&x->tgt);
        if (c->target_template_)
            rc = expand(x, re, c->target_label, x->val.data, &x->tgt);
        else
            rc = bs_buf_puts(&x->tgt, c->target_label);
        if (rc)
            return rc;
        if (!labels_name_valid(x->tgt.data, x->tgt.len)) {
            labels_builder_del(b, c->target_label);
            return 0;
        }
        if ((rc = expand(x, re, c->replacement, x->val.data, &x->res)))
            return rc;
        if (x->res.len == 0) {
            labels_builder_del(b, c->target_label);
            return 0;
        }
        return labels_builder_set(b, x->tgt.data, x->tgt.len, x->res.data, x->res.len);
    case LABELS_RELABEL_LOWERCASE:
    case LABELS_RELABEL_UPPERCASE:
        if ((rc =
                 case_map(x->val.data, x->val.len, c->action == LABELS_RELABEL_UPPERCASE, &x->res)))
            return rc;
        return set_buf(b, c->target_label, &x->res);
    case LABELS_RELABEL_HASHMOD: {
        char num[24];
        int len = snprintf(
            num, sizeof(num), "%llu",
            (unsigned long long)labels_relabel_hashmod(x->val.data, x->val.len, c->modulus));
        return labels_builder_set(b, c->target_label, strlen(c->target_label), num, (size_t)len);
    }
    case LABELS_RELABEL_LABELMAP:
    case LABELS_RELABEL_LABELDROP:
    case LABELS_RELABEL_LABELKEEP:
        if ((rc = snapshot(x, b, &n)))
            return rc;
        for (size_t i = 0; i < n; i++) {
            const struct label *l = &x->snap[i];
            if ((rc = rx_match(x, re, l->name, strlen(l->name))) < 0)
                return rc;
            if (c->action == LABELS_RELABEL_LABELMAP) {
                if (rc == 0)
                    continue;
                /* ReplaceAllString with an anchored regex: one match, the
                 * whole name, replaced by the expansion. */
                if ((rc = expand(x, re, c->replacement, l->name, &x->res)))
                    return rc;
                if ((rc = labels_builder_set(b, x->res.data, x->res.len, l->value,
                                             strlen(l->value))))
                    return rc;
            } else if ((rc == 1) == (c->action == LABELS_RELABEL_LABELDROP)) {
                labels_builder_del(b, l->name);
            }
        }
        return 0;
    }
    return BS_EINVAL;
}

int labels_relabel_apply_builder(const struct labels_relabel_config *cfgs, size_t n,
                                 struct labels_builder *b, bool *keep)
{
    struct ctx x;
    uint32_t maxpairs = 1;
    int rc = 0;

    memset(&x, 0, sizeof(x));
    bs_buf_init(&x.clean, 0);
    bs_buf_init(&x.val, 0);
    bs_buf_init(&x.tgt, 0);
    bs_buf_init(&x.res, 0);
    *keep = true;
    for (size_t i = 0; i < n; i++) {
        uint32_t cap = 0;
        if (pcre2_pattern_info(cfgs[i].re_, PCRE2_INFO_CAPTURECOUNT, &cap) == 0 &&
            cap + 1 > maxpairs)
            maxpairs = cap + 1;
    }
    x.md = pcre2_match_data_create(maxpairs, NULL);
    x.name_md = pcre2_match_data_create(1, NULL);
    if (!x.md || !x.name_md) {
        rc = BS_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n && *keep; i++)
        if ((rc = apply_one(&x, &cfgs[i], b, keep)))
            break;
out:
    ctx_fini(&x);
    return rc;
}

int labels_relabel_apply(const struct labels_relabel_config *cfgs, size_t n,
                         const struct labels *in, struct labels_builder *out, bool *keep)
{
    int rc = labels_builder_from(out, in);
    if (rc) {
        *keep = true;
        return rc;
    }
    return labels_relabel_apply_builder(cfgs, n, out, keep);
}
