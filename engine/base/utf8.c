/* utf8.c: strict UTF-8 validation (see utf8.h; declared in sg_engine.h). */
#include "utf8.h"

#include <stdint.h>

#include "sg_engine.h"

int sg_utf8_valid(const char *s, size_t len, size_t *bad)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        size_t k = sg_utf8_char_len(p + i, len - i);

        if (k == 0) {
            if (bad)
                *bad = i;
            return 0;
        }
        i += k;
    }
    return 1;
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
