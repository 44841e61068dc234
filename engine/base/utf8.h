#ifndef SG_UTF8_H
#define SG_UTF8_H
/*
 * utf8.h (internal to engine/): the one definition of well-formed UTF-8 (RFC 3629, Unicode
 * Table 3-7), inline for the tokenizer's per-character loop. The validators built on it,
 * sg_utf8_valid and sg_utf8_floor, are public (sg_engine.h) for the policies, the daemon and
 * the clients.
 */

#include <stddef.h>

/* Length of the well-formed UTF-8 character at p (n bytes available), or 0 if the bytes there
 * are not one (Unicode Table 3-7: no overlongs, no surrogates, nothing above U+10FFFF). */
static inline size_t sg_utf8_char_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];

    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0) {
        if (n < 2 || (p[1] & 0xC0) != 0x80)
            return 0;
        return 2;
    }
    if (c < 0xF0) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0xE0 && p[1] < 0xA0)
            return 0;
        if (c == 0xED && p[1] > 0x9F)
            return 0;
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && p[1] < 0x90)
            return 0;
        if (c == 0xF4 && p[1] > 0x8F)
            return 0;
        return 4;
    }
    return 0;
}

#endif /* SG_UTF8_H */
