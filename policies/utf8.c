/* utf8.c: strict UTF-8 validation (RFC 3629, Unicode table 3-7). */
#include "utf8.h"

#include <stdint.h>

int sg_utf8_valid(const char *s, size_t len, size_t *bad)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;

    while (i < len) {
        uint8_t c = p[i];
        size_t n;
        uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0)
                lo = 0xA0; /* overlong */
            else if (c == 0xED)
                hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0)
                lo = 0x90; /* overlong */
            else if (c == 0xF4)
                hi = 0x8F; /* above U+10FFFF */
        } else {
            goto invalid;
        }
        if (len - i <= n)
            goto invalid;
        if (p[i + 1] < lo || p[i + 1] > hi)
            goto invalid;
        for (size_t k = 2; k <= n; k++)
            if ((p[i + k] & 0xC0) != 0x80)
                goto invalid;
        i += n + 1;
    }
    return 1;

invalid:
    if (bad)
        *bad = i;
    return 0;
}

size_t sg_utf8_floor(const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t j;
    size_t need;

    if (len == 0)
        return 0;
    /* The lead byte of the character that holds byte len-1 (valid UTF-8: at most 3 back). */
    j = len - 1;
    while (j > 0 && (p[j] & 0xC0) == 0x80 && len - 1 - j < 3)
        j--;
    need = p[j] < 0x80 ? 1 : p[j] >= 0xF0 ? 4 : p[j] >= 0xE0 ? 3 : 2;
    return len - j >= need ? len : j;
}
