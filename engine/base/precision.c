/* precision.c: the one table of compute precision names (sg_precision_name, _parse). */
#include <stddef.h>
#include <string.h>

#include "sg_engine.h"

static const char *const names[SG_PREC_COUNT] = {"f32", "bf16", "int8"};

const char *sg_precision_name(sg_precision p)
{
    return (int)p >= 0 && p < SG_PREC_COUNT ? names[p] : "?";
}

int sg_precision_parse(const char *name, sg_precision *out)
{
    for (int p = 0; name != NULL && p < SG_PREC_COUNT; p++) {
        if (strcmp(name, names[p]) == 0) {
            *out = (sg_precision)p;
            return SG_OK;
        }
    }
    return SG_EINVAL;
}
